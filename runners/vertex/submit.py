"""Submits a compiled spec as a Vertex AI PipelineJob and, optionally, follows it to the end."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.config import PipelineConfig, VertexRunnerConfig
from runners.vertex.labels import run_labels
from runners.vertex.spec import CompiledSpec
from runners.vertex.summary import RunReport, evaluator_results, run_duration, write_summary
from runners.vertex.watch import TERMINAL_STATES, state_name, watch

if TYPE_CHECKING:
    from google.cloud import aiplatform

CREATE_ATTEMPTS = 4
MAX_RETRY_DELAY = 60.0


@dataclass(frozen=True)
class SubmitOptions:
    config_name: str
    job_id: str | None = None
    wait: bool = False
    timeout: float | None = None
    poll_interval: float = 30.0
    summary_file: Path | None = None
    commit: str | None = None


@dataclass(frozen=True)
class SubmitResult:
    job_id: str
    state: str
    timed_out: bool
    error: str | None

    @property
    def failed(self) -> bool:
        return self.state in TERMINAL_STATES and self.state != "SUCCEEDED"


def new_job_id(pipeline_name: str, config_name: str, now: dt.datetime | None = None) -> str:
    """'my-pipeline-vertex-dev-20261127-153000-1a2b': unique per submission, valid as a job ID."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline_name}-{config_name}-{stamp}-{secrets.token_hex(2)}"[:128]


def console_url(runner: VertexRunnerConfig, job_id: str) -> str:
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{runner.region}/pipelines/runs/{job_id}"
        f"?project={runner.project}"
    )


def job_labels(config: PipelineConfig, spec: CompiledSpec, options: SubmitOptions) -> dict[str, str]:
    runner = _vertex(config)
    return run_labels(runner.labels, config_name=options.config_name, image=spec.image, commit=options.commit)


def build_job(config: PipelineConfig, spec: CompiledSpec, options: SubmitOptions) -> aiplatform.PipelineJob:
    from google.cloud import aiplatform

    runner = _vertex(config)
    return aiplatform.PipelineJob(
        display_name=f"{config.pipeline_name}-{options.config_name}",
        template_path=str(spec.path),
        job_id=options.job_id or new_job_id(config.pipeline_name, options.config_name),
        pipeline_root=runner.pipeline_root,
        labels=job_labels(config, spec, options),
        enable_caching=runner.enable_cache,
        project=runner.project,
        location=runner.region,
    )


def submit_job(
    job: aiplatform.PipelineJob,
    runner: VertexRunnerConfig,
    *,
    retry_delay: float,
    out: TextIO,
) -> aiplatform.PipelineJob:
    """`job.submit(...)` as the runner's service account, in its network.

    The SDK does not retry a create; 429 and 503 are retried here. The job ID is fixed, so a
    create that reached the server before failing shows up as 409 on the retry: that job is used.
    """
    from google.api_core import exceptions
    from google.cloud import aiplatform

    for attempt in range(CREATE_ATTEMPTS):
        try:
            job.submit(service_account=runner.service_account, network=runner.network)
            return job
        except (exceptions.TooManyRequests, exceptions.ServiceUnavailable) as error:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            delay = min(retry_delay * 2**attempt, MAX_RETRY_DELAY)
            out.write(f"  Vertex AI answered {error.code.value} {error.code.phrase}; retrying in {delay:g} s\n")
            time.sleep(delay)
        except exceptions.Conflict:  # 409: AlreadyExists over gRPC, Conflict over REST
            if attempt == 0:
                raise
            name = f"projects/{runner.project}/locations/{runner.region}/pipelineJobs/{job.job_id}"
            out.write(f"  the job was created by the previous attempt; following {job.job_id}\n")
            return aiplatform.PipelineJob.get(name, project=runner.project, location=runner.region)
    raise AssertionError("unreachable")


def submit(config: PipelineConfig, spec: CompiledSpec, options: SubmitOptions, out: TextIO) -> SubmitResult:
    """Submits, then follows the job with `options.wait`; writes the summary file if asked."""
    runner = _vertex(config)
    job = build_job(config, spec, options)
    job_id = job.job_id  # a job fetched again after a retried create has no job_id attribute
    job = submit_job(job, runner, retry_delay=options.poll_interval, out=out)
    url = console_url(runner, job_id)
    out.write(f"Submitted {job.resource_name}\n  console: {url}\n")
    out.flush()
    if not options.wait:
        result = SubmitResult(job_id, state_name(job.gca_resource.state), timed_out=False, error=None)
        _report(job, runner, spec, options, url, result, note="submitted; not followed")
        return result

    watched = watch(job, timeout=options.timeout, poll_interval=options.poll_interval, out=out)
    error = failure_message(job.gca_resource) if watched.state in TERMINAL_STATES else None
    result = SubmitResult(job_id, watched.state, watched.timed_out, error)
    note = f"job left running; --timeout {options.timeout:g} s reached" if watched.timed_out else None
    _report(job, runner, spec, options, url, result, note=note)
    return result


def failure_message(resource: Any) -> str | None:
    """The job's error and the tasks that failed, or None for a job without error.

    `resource` is the job's gca_resource (a PipelineJob message); the root task has no parent.
    """
    message = " ".join(resource.error.message.split())
    if not message:
        return None
    failed = [
        task.task_name
        for task in resource.job_detail.task_details
        if task.parent_task_id and state_name(task.state) == "FAILED"
    ]
    return message + (f" (failed tasks: {', '.join(failed)})" if failed else "")


def _report(
    job: aiplatform.PipelineJob,
    runner: VertexRunnerConfig,
    spec: CompiledSpec,
    options: SubmitOptions,
    url: str,
    result: SubmitResult,
    note: str | None,
) -> None:
    if options.summary_file is None:
        return
    resource = job.gca_resource
    metrics, blessed = evaluator_results(resource)
    report = RunReport(
        job_id=result.job_id,
        console_url=url,
        state=result.state,
        config_name=options.config_name,
        project=runner.project,
        region=runner.region,
        image=spec.image,
        duration=run_duration(resource),
        error=result.error,
        note=note,
        metrics=metrics,
        blessed=blessed,
    )
    write_summary(options.summary_file, report)


def _vertex(config: PipelineConfig) -> VertexRunnerConfig:
    if not isinstance(config.runner, VertexRunnerConfig):
        raise ValueError(f"runner.kind is '{config.runner.kind}'; submitting needs runner.kind 'vertex'")
    return config.runner
