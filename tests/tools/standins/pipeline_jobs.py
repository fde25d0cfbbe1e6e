"""Runs a compiled pipeline spec on the rehearsal's Vertex AI stand-in, for tests of single steps,
as runs of the dev environment (configs/vertex-dev.yaml) would."""

from __future__ import annotations

from typing import Any

import requests
from google.cloud import aiplatform

from tests.pipeline.expected import vertex_config
from tools.rehearsal.cloud import LocalCloud

PROJECT = "my-tfx-dev"
REGION = "us-central1"
BUCKET = "my-tfx-dev-pipelines"
SERVICE_ACCOUNT = "tfx-pipelines@my-tfx-dev.iam.gserviceaccount.com"
SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
DEV = vertex_config("dev")
PIPELINE_ROOT = f"gs://{BUCKET}/{DEV.pipeline_name}"
PIPELINE_IMAGE_REPOSITORY = f"{REGION}-docker.pkg.dev/{PROJECT}/pipelines/{DEV.pipeline_name}"
# Two scheduled runs a day apart, named as `python -m pipeline submit` names them.
FIRST_JOB = f"{DEV.pipeline_name}-vertex-dev-20261130-030000-aa11"
SECOND_JOB = f"{DEV.pipeline_name}-vertex-dev-20261201-030000-bb22"


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


def run_dev_job(cloud: LocalCloud, spec: dict[str, Any], job_id: str) -> dict[str, Any]:
    """`run_pipeline_job` in the dev project, under its pipeline root, as the pipelines' service account."""
    return run_pipeline_job(
        cloud,
        spec,
        job_id,
        project=PROJECT,
        region=REGION,
        pipeline_root=PIPELINE_ROOT,
        service_account=SERVICE_ACCOUNT,
    )
