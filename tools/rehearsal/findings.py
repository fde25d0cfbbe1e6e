"""What a rehearsed run did, task by task, and whether the cloud received what the config asks for.

`collect()` joins the PipelineJob as the SDK reads it with what the stand-ins recorded while each
task ran: the Dataflow jobs Beam submitted (matched to a task by the time they were created), the
Vertex AI Training jobs, the containers and their logs. `checks()` compares them with the
environment config: the Dataflow request as the service received it, the training job, and the
registered model version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.registration.models_bucket import TF_SERVING_VERSION
from components.registration.settings import CANDIDATE_ALIAS, TF_SERVING
from pipeline.config import PipelineConfig, VertexRunnerConfig
from tools.rehearsal.cloud import LocalCloud
from tools.standins.dataflow import SubmittedJob
from tools.standins.vertex_jobs import CustomJobView

PRIVATE_IPS = "WORKER_IP_PRIVATE"


@dataclass
class TaskFinding:
    name: str
    state: str
    seconds: float | None
    outputs: dict[str, list[str]]
    error: str | None = None
    image: str | None = None
    ran_as: str | None = None
    logs: list[str] = field(default_factory=list)
    dataflow_jobs: list[SubmittedJob] = field(default_factory=list)
    training_jobs: list[CustomJobView] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str


def collect(cloud: LocalCloud, job: Any) -> list[TaskFinding]:
    """One finding per task of the run (the pipeline's root task left out), in the order they ran."""
    run = cloud.pipelines.runs.get(job.name)
    dataflow = [(created_at(cloud, summary), summary) for summary in cloud.dataflow.created()]
    training = [(_moment(view.resource.create_time.ToDatetime()), view) for view in cloud.training.jobs()]
    findings = []
    for detail in job.task_details:
        if not detail.parent_task_id:
            continue
        start, end = _moment(detail.start_time), _moment(detail.end_time)
        within = _window(start, end)
        record = run.tasks.get(detail.task_name) if run else None
        findings.append(
            TaskFinding(
                name=detail.task_name,
                state=detail.state.name,
                seconds=(end - start).total_seconds() if start and end else None,
                outputs={key: [a.uri for a in listed.artifacts] for key, listed in detail.outputs.items()},
                error=detail.error.message or None,
                image=record.image if record else None,
                ran_as=record.ran_as if record else None,
                logs=list(record.logs) if record else [],
                dataflow_jobs=[summary for moment, summary in dataflow if within(moment)],
                training_jobs=[view for moment, view in training if within(moment)],
            )
        )
    return findings


def created_at(cloud: LocalCloud, summary: SubmittedJob) -> dt.datetime | None:
    resource = cloud.dataflow.get_job(summary.project, summary.region, summary.job_id, {})
    return _moment(resource.get("createTime"))


def checks(config: PipelineConfig, image: str, findings: Sequence[TaskFinding], cloud: LocalCloud) -> list[Check]:
    """Each Dataflow job, training job and the registry against the config (for a succeeded run)."""
    runner = config.runner
    assert isinstance(runner, VertexRunnerConfig)
    results = []
    for finding in findings:
        for job in finding.dataflow_jobs:
            results.append(_dataflow_check(finding.name, job, runner, image))
        for view in finding.training_jobs:
            results.append(_training_check(view, runner, image))
    beam_tasks = [f for f in findings if f.state == "SUCCEEDED" and f.dataflow_jobs]
    if not beam_tasks and any(f.state == "SUCCEEDED" for f in findings if f.name == "CsvExampleGen"):
        results.append(Check(False, "no Dataflow job was submitted by the Beam steps"))
    registration = next((f for f in findings if f.name == "ModelRegistration"), None)
    if config.registry is not None and registration is not None and registration.state == "SUCCEEDED":
        results.append(_registry_check(config, findings, cloud))
    return results


def _dataflow_check(task: str, job: SubmittedJob, runner: VertexRunnerConfig, image: str) -> Check:
    dataflow = runner.dataflow
    expected = {
        "worker image": (job.worker_image, image),
        "service account": (job.service_account, dataflow.service_account),
        "subnetwork": (job.subnetwork, dataflow.subnetwork),
        "IP configuration": (job.ip_configuration, None if dataflow.use_public_ips else PRIVATE_IPS),
        "region": (job.region, runner.region),
        "machine type": (job.machine_type, dataflow.machine_type),
        "max workers": (job.max_workers, dataflow.max_workers),
        "disk size": (job.disk_size_gb, dataflow.disk_size_gb),
    }
    wrong = [f"{name} {got!r} (expected {want!r})" for name, (got, want) in expected.items() if got != want]
    if not (job.temp_location or "").startswith(runner.dataflow_temp_location):
        wrong.append(f"temp location {job.temp_location!r} (expected under {runner.dataflow_temp_location})")
    if not (job.staging_location or "").startswith(runner.dataflow_staging_location):
        wrong.append(f"staging location {job.staging_location!r} (expected {runner.dataflow_staging_location})")
    missing_labels = {k: v for k, v in runner.labels.items() if job.labels.get(k) != v}
    if missing_labels:
        wrong.append(f"labels {dict(job.labels)} lack {missing_labels}")
    what = (
        f"{task}: Dataflow job {job.job_id} in {job.region}: worker image = the pipeline image, "
        f"service account {job.service_account}, subnetwork {job.subnetwork}, "
        f"{'private IPs' if job.ip_configuration == PRIVATE_IPS else 'public IPs'}, temp and staging under the "
        f"pipeline root, labels {', '.join(f'{k}={v}' for k, v in sorted(runner.labels.items()))}"
    )
    return Check(not wrong, what if not wrong else f"{task}: Dataflow job {job.job_id}: " + "; ".join(wrong))


def _training_check(view: CustomJobView, runner: VertexRunnerConfig, image: str) -> Check:
    pool = view.primary_pool
    expected = {
        "image": (pool.container_spec.image_uri, image),
        "service account": (view.run_as, runner.service_account),
        "machine type": (pool.machine_spec.machine_type, runner.training.machine_type),
    }
    wrong = [f"{name} {got!r} (expected {want!r})" for name, (got, want) in expected.items() if got != want]
    missing_labels = {k: v for k, v in runner.labels.items() if view.labels.get(k) != v}
    if missing_labels:
        wrong.append(f"labels {view.labels} lack {missing_labels}")
    what = (
        f"Trainer: Vertex AI Training job {view.job_id} ran the pipeline image on {runner.training.machine_type} "
        f"as {view.run_as}, labelled {', '.join(f'{k}={v}' for k, v in sorted(view.labels.items()))}"
    )
    return Check(not wrong, what if not wrong else f"Trainer: training job {view.job_id}: " + "; ".join(wrong))


def _registry_check(config: PipelineConfig, findings: Sequence[TaskFinding], cloud: LocalCloud) -> Check:
    """The candidate version holds the Trainer's SavedModel, copied into the models bucket."""
    assert config.registry is not None
    registry = config.registry
    trainer = next((f for f in findings if f.name == "Trainer"), None)
    model_uri = (trainer.outputs.get("model") or [None])[0] if trainer else None
    try:
        model = cloud.models.model(registry.model_id)
    except KeyError:
        return Check(False, f"Model Registry: no model {registry.model_id} after a registration step")
    holder = model.aliases.get(CANDIDATE_ALIAS)
    if holder is None:
        return Check(False, f"Model Registry: no version of {registry.model_id} has the alias candidate")
    version = model.version(holder)
    artifact_uri = version.get("artifactUri", "")
    if not artifact_uri.startswith(registry.models_bucket.rstrip("/") + "/"):
        return Check(
            False, f"Model Registry: version {holder} points at {artifact_uri}, not into {registry.models_bucket}"
        )
    saved_model = served_model_folder(artifact_uri, registry.serving_container)
    trained = f"{model_uri}/Format-Serving" if model_uri else ""
    if model_uri is None or file_digests(cloud, saved_model) != file_digests(cloud, trained):
        return Check(False, f"Model Registry: {saved_model} does not hold the files of the trained model {trained}")
    image = version.get("containerSpec", {}).get("imageUri")
    return Check(
        True,
        f"Model Registry: {registry.model_id} version {holder} (alias candidate) holds the trained model, copied to "
        f"{artifact_uri}, served by {image}",
    )


def served_model_folder(artifact_uri: str, serving_container: str) -> str:
    """Where the SavedModel of a version lies: TF Serving reads numbered folders under the base path."""
    return f"{artifact_uri.rstrip('/')}/{TF_SERVING_VERSION}" if serving_container == TF_SERVING else artifact_uri


def file_digests(cloud: LocalCloud, folder: str) -> dict[str, str]:
    """Relative name -> MD5 of every file under a gs:// folder (folder markers left out)."""
    bucket, _, prefix = folder.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/"
    storage = cloud.network.storage
    return {
        name[len(prefix) :]: hashlib.md5(storage.get_object(bucket, name)).hexdigest()
        for name in storage.object_names(bucket, prefix=prefix)
        if not name.endswith("/")
    }


def _moment(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _window(start: dt.datetime | None, end: dt.datetime | None) -> Any:
    def within(moment: dt.datetime | None) -> bool:
        return moment is not None and start is not None and start <= moment and (end is None or moment <= end)

    return within


def log_tail(path: str, lines: int = 12) -> list[str]:
    """The last meaningful lines of a container log (TFX's INFO lines left out)."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    kept = [line for line in text if not line.startswith(("I1", "W1", "INFO:", "WARNING:"))]
    return kept[-lines:]
