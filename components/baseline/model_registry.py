"""The newest model this pipeline registered on Vertex AI, and the statistics of its data, read
through the Vertex AI SDK.

ModelRegistration uploads a model only after the Evaluator blessed it and the serving smoke test
passed, as a new version of the `registry` model labelled `blessed=true` and `pipeline_job=<the
run>`. Newest first (Vertex AI numbers a model's versions 1, 2, ...), each version leads to its run;
a run of this pipeline (the name in its spec) gives the model its ModelRegistration step took as
input: the Trainer's Model artifact, whatever folder the version's own files were copied to; and the
statistics its StatisticsGen step recorded (also when that step came from the cache: the task then
lists the outputs it reused). Versions without the labels, of runs of another pipeline, or of runs
that can no longer be read are passed over; so is the candidate's own version.

SDK calls (google-cloud-aiplatform 1.70, REST transport):
- `ModelRegistry(...).client.list_model_versions`: GET models/ID:listVersions (every version in full)
- `PipelineJob.get(ID)`: GET pipelineJobs/ID (the spec, and each task's input and output artifacts)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from absl import logging
from tfx.types import standard_component_specs

from components.baseline.sources import RegisteredModel, RegistrySource, TrainingStatistics
from components.registration.settings import BLESSED_LABEL

JOB_LABEL = "pipeline_job"  # components/registration/upload.py provenance_labels


def latest_registered_model(source: RegistrySource, candidate_uri: str) -> RegisteredModel | None:
    """The newest version's model, the candidate left out; None if this pipeline registered none."""
    for version, job_id, job in _registered_runs(source):
        model_uri = _input_uri(job, source.registration_task, standard_component_specs.MODEL_KEY)
        if model_uri is not None and model_uri != candidate_uri:
            return RegisteredModel(model_uri, f"{version} (run {job_id})")
    return None


def latest_registered_statistics(source: RegistrySource, statistics_task: str) -> TrainingStatistics | None:
    """The statistics of the newest version's data: its run's `statistics_task` output; None if this
    pipeline registered nothing. A run whose statistics cannot be found is passed over."""
    for version, job_id, job in _registered_runs(source):
        uri = _output_uri(job, statistics_task, standard_component_specs.STATISTICS_KEY)
        if uri is not None:
            return TrainingStatistics(uri, f"the data of {version} (run {job_id})")
    return None


def _registered_runs(source: RegistrySource) -> Iterator[tuple[str, str, Any]]:
    """(version resource name, job id, job resource) of each version this pipeline registered, newest first."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    # REST (HTTPS/1.1) rather than the SDK's gRPC default: the same API, and the one the offline
    # rehearsal's Vertex AI stand-in serves (docs/vertex.md). The project is given: no lookup.
    aiplatform.init(project=source.project, location=source.region, api_transport="rest")
    registry = aiplatform.models.ModelRegistry(source.model_id, project=source.project, location=source.region)
    try:
        versions = list(registry.client.list_model_versions(name=registry.model_resource_name))
    except exceptions.NotFound:  # nothing registered yet: the first upload creates the model
        return
    for version in sorted(versions, key=lambda v: int(v.version_id), reverse=True):
        job_id = version.labels.get(JOB_LABEL)
        if version.labels.get(BLESSED_LABEL) != "true" or not job_id:
            continue
        job = _pipeline_run(source, job_id)
        if job is not None:
            yield f"{registry.model_resource_name}@{version.version_id}", job_id, job


def _pipeline_run(source: RegistrySource, job_id: str) -> Any | None:
    """The run's PipelineJob resource, if it can be read and is a run of this pipeline."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    try:
        job = aiplatform.PipelineJob.get(job_id, project=source.project, location=source.region)
    except exceptions.GoogleAPICallError as error:  # deleted, or a label cut short (63 characters)
        logging.warning("Cannot read pipeline job %s (%s): its registered model is passed over", job_id, error)
        return None
    resource: Any = job.gca_resource
    if resource.pipeline_spec.get("pipelineInfo", {}).get("name") != source.pipeline_name:
        return None
    return resource


def _input_uri(job: Any, task_name: str, key: str) -> str | None:
    for task in job.job_detail.task_details:
        if task.task_name == task_name:
            inputs = task.inputs.get(key)
            if inputs and inputs.artifacts:
                return inputs.artifacts[0].uri
    return None


def _output_uri(job: Any, task_name: str, key: str) -> str | None:
    for task in job.job_detail.task_details:
        if task.task_name == task_name:
            outputs = task.outputs.get(key)
            if outputs and outputs.artifacts:
                return outputs.artifacts[0].uri
    return None
