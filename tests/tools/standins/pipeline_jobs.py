"""Runs a compiled pipeline spec on the rehearsal's Vertex AI stand-in, for tests of single steps."""

from __future__ import annotations

from typing import Any

import requests
from google.cloud import aiplatform

from tools.rehearsal.cloud import LocalCloud


def run_pipeline_job(
    cloud: LocalCloud,
    spec: dict[str, Any],
    job_id: str,
    *,
    project: str,
    region: str,
    pipeline_root: str,
    service_account: str,
) -> dict[str, Any]:
    """Creates the job through the REST API (the SDK's submit would first look for the pipeline
    root's bucket at the real Cloud Storage), waits for it; returns its tasks as the SDK reads them."""
    response = requests.post(
        f"{cloud.vertex_url}/v1/projects/{project}/locations/{region}/pipelineJobs",
        params={"pipelineJobId": job_id},
        json={
            "displayName": spec["pipelineInfo"]["name"],
            "pipelineSpec": spec,
            "runtimeConfig": {"gcsOutputDirectory": pipeline_root},
            "serviceAccount": service_account,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    cloud.pipelines.wait(timeout=300)
    return {task.task_name: task for task in aiplatform.PipelineJob.get(job_id).task_details}
