"""Creates or updates the recurring run (PipelineJobSchedule) of an environment from its cron."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import VertexRunnerConfig

if TYPE_CHECKING:
    from google.cloud import aiplatform

# What an update replaces: the timing, and the run itself (spec, image, labels, identity).
UPDATE_MASK = ("cron", "max_concurrent_run_count", "create_pipeline_job_request")


@dataclass(frozen=True)
class ScheduleResult:
    action: str  # "created" or "updated"
    name: str
    state: str


def apply_schedule(
    job: aiplatform.PipelineJob, runner: VertexRunnerConfig, display_name: str, labels: dict[str, str]
) -> ScheduleResult | None:
    """The schedule named `display_name` made to match the config; None when no cron is configured.

    An existing schedule keeps its name, history and paused/active state; its cron, concurrency
    and the pipeline run it starts (spec, labels, service account, network) are replaced.
    """
    from google.cloud import aiplatform

    if runner.schedule is None:
        return None
    existing = aiplatform.PipelineJobSchedule.list(
        filter=f'display_name="{display_name}"', project=runner.project, location=runner.region
    )
    if existing:
        return _update(existing[0], job, runner, display_name, labels)
    schedule = aiplatform.PipelineJobSchedule(
        pipeline_job=job, display_name=display_name, project=runner.project, location=runner.region
    )
    schedule.create(
        cron=runner.schedule.cron,
        max_concurrent_run_count=runner.schedule.max_concurrent_runs,
        service_account=runner.service_account,
        network=runner.network,
    )
    return ScheduleResult("created", schedule.resource_name, schedule.state.name)


def _update(
    current: aiplatform.PipelineJobSchedule,
    job: aiplatform.PipelineJob,
    runner: VertexRunnerConfig,
    display_name: str,
    labels: dict[str, str],
) -> ScheduleResult:
    """SDK 1.70's `PipelineJobSchedule.update()` cannot replace the run, so the schedule service
    client it wraps is called with the whole Schedule and an explicit update mask."""
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import field_mask_pb2

    assert runner.schedule is not None
    pipeline_job = types.PipelineJob(
        runtime_config=job.runtime_config,
        pipeline_spec=job.pipeline_spec,
        labels=labels,
        service_account=runner.service_account,
        network=runner.network or "",
    )
    schedule = types.Schedule(
        name=current.resource_name,
        display_name=display_name,
        cron=runner.schedule.cron,
        max_concurrent_run_count=runner.schedule.max_concurrent_runs,
        create_pipeline_job_request=types.CreatePipelineJobRequest(
            parent=f"projects/{runner.project}/locations/{runner.region}", pipeline_job=pipeline_job
        ),
    )
    updated = current.api_client.update_schedule(
        schedule=schedule, update_mask=field_mask_pb2.FieldMask(paths=list(UPDATE_MASK))
    )
    return ScheduleResult("updated", updated.name, updated.state.name)
