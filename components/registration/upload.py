"""Uploads a SavedModel as a new version of the registry model, through the Vertex AI SDK.

The first upload creates the model under its fixed ID (version 1, which Vertex AI gives the
`default` alias); every later upload adds a version to it (`parent_model`) without moving
`default`, which promotion keeps on the production version. Each new version takes the
`candidate` alias from the version that held it.

The version's serving container (`serving_container_settings`): with `tf-serving`, TensorFlow
Serving's own image as a custom container, started as `tensorflow_model_server` with Vertex AI's
`$(VAR)` references, which Vertex AI expands before the container starts (ModelContainerSpec):
the REST port is `$(AIP_HTTP_PORT)`, the first of `ports` (SERVING_PORT), and the model is read
from `$(AIP_STORAGE_URI)`, Vertex AI's copy of the version's artifactUri; health and predict go
to TF Serving's own routes for the model. With `prebuilt`, Google's prebuilt TensorFlow image,
which needs nothing but the image.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from components.cloud_labels import sanitize_labels
from components.registration.settings import BLESSED_LABEL, CANDIDATE_ALIAS, TF_SERVING, RegistrySettings
from components.serving_checks import Task

UNKNOWN = "unknown"
# The container port Vertex AI sends health checks and predictions to, and sets as AIP_HTTP_PORT;
# TF Serving's REST API listens there through `--rest_api_port=$(AIP_HTTP_PORT)`.
SERVING_PORT = 8080
TF_SERVING_COMMAND = "tensorflow_model_server"  # /usr/bin in the tensorflow/serving image
# A version's description is kept short enough to read in the console's list of versions.
MAX_DESCRIPTION = 1000
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredVersion:
    model: str  # projects/<project number>/locations/<region>/models/<model id>
    version_id: str

    @property
    def versioned_name(self) -> str:
        return f"{self.model}@{self.version_id}"


def register_version(
    settings: RegistrySettings, artifact_uri: str, labels: Mapping[str, str], description: str
) -> RegisteredVersion:
    """Uploads the SavedModel folder `artifact_uri` as a new version of `settings.model_id`."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    init_sdk(settings)
    where = {"project": settings.project, "location": settings.region}
    upload = {
        **serving_container_settings(settings),
        "artifact_uri": artifact_uri,
        "display_name": settings.display_name,
        "labels": dict(labels),
        "version_description": description,
        **where,
    }
    try:
        parent = aiplatform.Model(settings.model_id, **where)
    except exceptions.NotFound:
        try:
            _LOG.info("Model %s is not in the registry yet: uploading version 1", settings.model_id)
            model = aiplatform.Model.upload(model_id=settings.model_id, version_aliases=[CANDIDATE_ALIAS], **upload)
            return RegisteredVersion(model.resource_name, model.version_id)
        except exceptions.Conflict:  # another run created it meanwhile
            parent = aiplatform.Model(settings.model_id, **where)
    model = aiplatform.Model.upload(
        parent_model=parent.resource_name, is_default_version=False, version_aliases=[CANDIDATE_ALIAS], **upload
    )
    return RegisteredVersion(model.resource_name, model.version_id)


def serving_container_settings(settings: RegistrySettings) -> dict[str, object]:
    """The `serving_container_*` arguments of `aiplatform.Model.upload` for the configured container."""
    if settings.serving_container != TF_SERVING:
        return {"serving_container_image_uri": settings.serving_image}
    name = settings.serving_model_name
    return {
        "serving_container_image_uri": settings.serving_image,
        "serving_container_command": [TF_SERVING_COMMAND],
        "serving_container_args": [
            f"--model_name={name}",
            "--model_base_path=$(AIP_STORAGE_URI)",
            "--rest_api_port=$(AIP_HTTP_PORT)",
        ],
        "serving_container_ports": [SERVING_PORT],
        "serving_container_predict_route": f"/v1/models/{name}:predict",
        "serving_container_health_route": f"/v1/models/{name}",
    }


def init_sdk(settings: RegistrySettings) -> None:
    """The Vertex AI SDK for the registry's project and region, over its REST transport (HTTPS/1.1)
    instead of its gRPC default: the same API, and the one the offline rehearsal's Vertex AI
    stand-in serves (docs/vertex.md). The project is given, so the SDK need not look it up."""
    from google.cloud import aiplatform

    aiplatform.init(project=settings.project, location=settings.region, api_transport="rest")


def provenance_labels(settings: RegistrySettings, output_uri: str) -> dict[str, str]:
    """Labels of a new version: blessed, and the pipeline job, git commit and image it came from.

    The job ID is read from the output artifact's path; the commit and image digest from the
    labels `python -m pipeline submit` (or the schedule) gave that job. Unknown values say so.
    """
    job_id = pipeline_job_id(settings.pipeline_root, output_uri)
    job_labels = _pipeline_job_labels(settings, job_id) if job_id else {}
    image_digest = job_labels.get("image_digest") or _short_digest(settings.pipeline_image)
    return sanitize_labels(
        {
            BLESSED_LABEL: "true",
            "pipeline_job": job_id or UNKNOWN,
            "git_commit": job_labels.get("git_commit") or UNKNOWN,
            "image_digest": image_digest or UNKNOWN,
        }
    )


def pipeline_job_id(pipeline_root: str, artifact_uri: str) -> str | None:
    """The run that wrote `artifact_uri`: Vertex AI Pipelines writes artifacts to
    `<pipeline root>/<project number>/<job ID>/<task>_<id>/<output>`."""
    prefix = pipeline_root.rstrip("/") + "/"
    if not artifact_uri.startswith(prefix):
        return None
    parts = artifact_uri[len(prefix) :].split("/")
    return parts[1] if len(parts) >= 3 and parts[0].isdigit() and parts[1] else None


def version_description(metrics: Mapping[str, float | None], task: Task | None = None) -> str:
    """What the version is ({task}) and its eval metrics; an undefined metric says so."""
    shown = ", ".join(f"{name} {_metric_text(name, value)}" for name, value in metrics.items())
    what = f" Task: {task.describe()}." if task else ""
    text = f"Blessed by the Evaluator.{what} Eval metrics: {shown or 'not recorded'}"
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def _metric_text(name: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    return f"{value:.0f}" if "count" in name and float(value).is_integer() else f"{value:.4f}"


def _pipeline_job_labels(settings: RegistrySettings, job_id: str) -> dict[str, str]:
    from google.api_core import exceptions
    from google.cloud import aiplatform

    init_sdk(settings)
    try:
        job = aiplatform.PipelineJob.get(job_id, project=settings.project, location=settings.region)
    except exceptions.GoogleAPICallError as error:
        _LOG.warning("Cannot read the labels of pipeline job %s (%s); provenance labels say unknown", job_id, error)
        return {}
    return dict(job.labels)


def _short_digest(image: str | None) -> str | None:
    """The first 12 hex digits of an image's sha256 digest, as in the pipeline run's labels."""
    return image.rsplit("@sha256:", 1)[1][:12] if image and "@sha256:" in image else None
