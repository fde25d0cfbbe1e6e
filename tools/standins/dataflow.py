"""Dataflow stand-in: the v1b3 REST surface Beam's DataflowRunner talks to, running each job here.

Beam 2.59's `DataflowApplicationClient` (apitools over httplib2) submits a Runner v2 job: a `Job`
without steps whose `environment.sdkPipelineOptions.options.pipelineUrl` names the runner API
pipeline it staged on GCS, one worker pool with the SDK container image, and the worker settings
(service account, subnetwork, IP configuration, machine type, ...). This module answers the calls
it makes, on `projects/{project}/locations/{region}/jobs...`:

* create (`POST .../jobs`, `?view` accepted), get, list, update (cancel through
  `requestedState: JOB_STATE_CANCELLED`), messages list (`startTime`, `endTime`,
  `minimumImportance`, `pageSize`, `pageToken`) and metrics get;
* every request needs an `Authorization: Bearer` token (401 with Google's texts otherwise); with a
  `TokenRegistry` (`metadata.py`) the token must be one it issued, and the job records who
  submitted it;
* create validates like the service (see `validate_job`): job name, the URL's region (and the body's
  location/projectId against the URL), temp/staging locations in
  `storage.googleapis.com/{bucket}/{object}` form, worker service account, subnetwork form and
  region, labels, worker counts; a refused job gets a 400 whose message has Dataflow's `The workflow
  could not be created. Causes: ...` shape. A second job with the name of an active one is answered
  with that job (its clientRequestId differs, which Beam reports as "There is already active job
  named ..."); a retried create (same clientRequestId) gets the same job back.

A created job goes JOB_STATE_PENDING -> RUNNING and runs: one worker container of the job's SDK
image, started through the `ContainerRuntime` as the job's worker service account, running
`tools/standins/dataflow_worker.py` (Beam's boot + SDK harness, the pipeline on FnApiRunner). Exit 0
-> JOB_STATE_DONE; otherwise JOB_STATE_FAILED with JOB_MESSAGE_ERROR messages carrying the worker's
traceback (what `DataflowRunner.wait_until_finish` raises) and a JOB_MESSAGE_BASIC with the worker
log tail. An image the runtime does not know fails the job as an image pull does; a subnetwork
missing from `known_subnetworks` fails it as Compute Engine refuses the worker VM. Cancel stops the
worker (JOB_STATE_CANCELLING -> CANCELLED).

`DataflowService.captured` keeps every request as received; `service.job(job_id)` returns the
typed `SubmittedJob` summary. Texts that are not the service's verbatim are the stand-in's own
wording of what it checked; they are marked in `validate_job`.

Wiring (rehearsal: Beam's default endpoint through the TLS proxy of `network.py`):

    service = DataflowService(runtime, state_dir / "dataflow", tokens=network.tokens)
    server = DataflowServer(service).start()
    network.route("dataflow.googleapis.com", http=server.address)

Without the proxy, `DataflowServer(service, port=80)` and `--dataflow_endpoint=http://localhost`
work too (Beam refuses a port in that URL); Beam then sends `workerPools[].kind: local` and skips
its client-side validation of service options, since it no longer sees the Dataflow service.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import random
import re
import secrets
import subprocess
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tools.standins.containers import (
    ContainerRuntime,
    ContainerSpec,
    ImageNotFound,
    RunningContainer,
    stand_in_programs,
)
from tools.standins.http_service import LoopbackHttpServer
from tools.standins.metadata import TokenRegistry, derived_project_number
from tools.standins.vertex_core import ApiError, compile_template, error_body

_LOGGER = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# Job.name, from the v1b3 reference: "must match the regular expression [a-z]([-a-z0-9]{0,1022}[a-z0-9])?".
JOB_NAME = re.compile(r"[a-z]([-a-z0-9]{0,1022}[a-z0-9])?")
REGION = re.compile(r"[a-z]+(-[a-z]+)+[0-9]+")
SERVICE_ACCOUNT = re.compile(r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}")
# tempStoragePrefix and package locations (v1b3 reference): "storage.googleapis.com/{bucket}/{object}" or
# "{bucket}.storage.googleapis.com/{object}".
STORAGE_PATH = re.compile(
    r"storage\.googleapis\.com/(?P<bucket>[^/]+)/(?P<object>.*)|(?P<vbucket>[^/]+)\.storage\.googleapis\.com/(?P<vobject>.*)"
)
BUCKET = re.compile(r"[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]")
# Dataflow's --subnetwork: "regions/REGION/subnetworks/NAME" or the full Compute Engine URL.
SUBNETWORK = re.compile(
    r"(?:https://www\.googleapis\.com/compute/v1/projects/(?P<project>[^/]+)/)?regions/(?P<region>[^/]+)/subnetworks/(?P<name>[^/]+)"
)
# Resource labels: keys start with a lowercase letter; keys and values use lowercase letters, digits, _ and -;
# at most 63 characters each; at most 64 labels.
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64
MAX_WORKERS_PER_JOB = 1000

ACTIVE_STATES = frozenset(
    {"JOB_STATE_PENDING", "JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING", "JOB_STATE_DRAINING"}
)
TERMINAL_STATES = frozenset(
    {"JOB_STATE_DONE", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_UPDATED", "JOB_STATE_DRAINED"}
)
IMPORTANCE_ORDER = (
    "JOB_MESSAGE_DEBUG",
    "JOB_MESSAGE_DETAILED",
    "JOB_MESSAGE_BASIC",
    "JOB_MESSAGE_WARNING",
    "JOB_MESSAGE_ERROR",
)

# Google's texts for a missing or unknown OAuth token.
MISSING_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
WORKER_PROGRAM = ("python", "-m", "tools.standins.dataflow_worker")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _trace_id() -> str:
    return secrets.token_hex(8)


def workflow_not_created(cause: str) -> ApiError:
    """A refused create, in the shape Dataflow answers it."""
    return ApiError(
        400,
        f"({_trace_id()}): The workflow could not be created. Causes: ({_trace_id()}): {cause}",
        "INVALID_ARGUMENT",
    )


def gs_path(storage_path: str | None) -> str | None:
    """`storage.googleapis.com/b/o` (Beam's form of a gs:// location) back to `gs://b/o`."""
    if not storage_path:
        return None
    match = STORAGE_PATH.fullmatch(storage_path)
    if match is None:
        return storage_path
    bucket = match.group("bucket") or match.group("vbucket")
    obj = match.group("object") if match.group("bucket") else match.group("vobject")
    return f"gs://{bucket}/{obj}"


@dataclass(frozen=True)
class SubmittedJob:
    """What a create request asked for, read from the request body as received."""

    job_id: str
    name: str
    project: str
    region: str
    job_type: str | None
    worker_image: str | None
    sdk_harness_images: tuple[str, ...]
    service_account: str | None
    subnetwork: str | None
    network: str | None
    ip_configuration: str | None
    temp_location: str | None
    temp_storage_prefix: str | None
    staging_location: str | None
    pipeline_url: str | None
    machine_type: str | None
    max_workers: int | None
    num_workers: int | None
    disk_size_gb: int | None
    worker_region: str | None
    worker_zone: str | None
    labels: Mapping[str, str]
    experiments: tuple[str, ...]
    service_options: tuple[str, ...]
    sdk: str | None
    client_request_id: str | None
    submitted_by: str | None
    options: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_request(
        cls, job_id: str, project: str, region: str, body: Mapping[str, Any], submitted_by: str | None
    ) -> SubmittedJob:
        environment = body.get("environment") or {}
        pools = environment.get("workerPools") or [{}]
        pool = pools[0]
        options = (environment.get("sdkPipelineOptions") or {}).get("options") or {}
        harness_images = tuple(
            image.get("containerImage", "") for p in pools for image in p.get("sdkHarnessContainerImages") or []
        )
        worker_image = (
            (harness_images[0] if harness_images else None)
            or pool.get("workerHarnessContainerImage")
            or options.get("sdk_container_image")
        )
        autoscaling = pool.get("autoscalingSettings") or {}
        user_agent = environment.get("userAgent") or {}
        return cls(
            job_id=job_id,
            name=body.get("name", ""),
            project=project,
            region=region,
            job_type=body.get("type"),
            worker_image=worker_image,
            sdk_harness_images=harness_images,
            service_account=environment.get("serviceAccountEmail"),
            subnetwork=pool.get("subnetwork"),
            network=pool.get("network"),
            ip_configuration=pool.get("ipConfiguration"),
            temp_location=gs_path(environment.get("tempStoragePrefix")),
            temp_storage_prefix=environment.get("tempStoragePrefix"),
            staging_location=options.get("staging_location"),
            pipeline_url=options.get("pipelineUrl"),
            machine_type=pool.get("machineType"),
            max_workers=_int_or_none(autoscaling.get("maxNumWorkers")),
            num_workers=_int_or_none(pool.get("numWorkers")),
            disk_size_gb=_int_or_none(pool.get("diskSizeGb")),
            worker_region=environment.get("workerRegion"),
            worker_zone=environment.get("workerZone"),
            labels=dict(body.get("labels") or {}),
            experiments=tuple(environment.get("experiments") or ()),
            service_options=tuple(environment.get("serviceOptions") or ()),
            sdk=" ".join(filter(None, (user_agent.get("name"), user_agent.get("version")))) or None,
            client_request_id=body.get("clientRequestId"),
            submitted_by=submitted_by,
            options=options,
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def validate_job(project: str, region: str, body: Mapping[str, Any]) -> None:
    """Raises the 400 the service answers for a job it will not create.

    The causes are the stand-in's wording of what the service checks (the service's texts for these
    are not published); the envelope "The workflow could not be created. Causes: ..." is Dataflow's.
    """
    if not REGION.fullmatch(region):
        raise ApiError(400, f"The location '{region}' is not a valid Dataflow region.", "INVALID_ARGUMENT")
    if body.get("location") and body["location"] != region:
        raise workflow_not_created(
            f"The job's location {body['location']} does not match the location {region} in the request URL."
        )
    if body.get("projectId") and body["projectId"] != project:
        raise workflow_not_created(
            f"The job's projectId {body['projectId']} does not match the project {project} in the request URL."
        )
    name = body.get("name") or ""
    if not JOB_NAME.fullmatch(name):
        raise workflow_not_created(
            f"Invalid job name '{name}': it must match the regular expression [a-z]([-a-z0-9]{{0,1022}}[a-z0-9])?."
        )
    environment = body.get("environment") or {}
    _validate_storage_path("tempStoragePrefix", environment.get("tempStoragePrefix"), required=True)
    account = environment.get("serviceAccountEmail")
    if account is not None and not SERVICE_ACCOUNT.fullmatch(account):
        raise workflow_not_created(f"Invalid service account email '{account}': a service account is an email address.")
    _validate_labels(body.get("labels") or {})
    pools = environment.get("workerPools") or []
    if not pools:
        raise workflow_not_created("The job has no worker pool.")
    worker_region = environment.get("workerRegion") or _zone_region(environment.get("workerZone")) or region
    for pool in pools:
        _validate_pool(pool, worker_region)


def _validate_storage_path(what: str, value: str | None, *, required: bool = False) -> None:
    if not value:
        if required:
            raise workflow_not_created(f"Missing {what}: Dataflow needs a Cloud Storage location for temporary files.")
        return
    match = STORAGE_PATH.fullmatch(value)
    bucket = match and (match.group("bucket") or match.group("vbucket"))
    if not match or not bucket or not BUCKET.fullmatch(bucket):
        raise workflow_not_created(
            f"Invalid {what} '{value}': expected a Cloud Storage path of the form "
            "storage.googleapis.com/{bucket}/{object} or {bucket}.storage.googleapis.com/{object}."
        )


def _validate_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise workflow_not_created(f"A job can have at most {MAX_LABELS} labels; got {len(labels)}.")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise workflow_not_created(
                f"Invalid label key '{key}': keys must start with a lowercase letter and contain only lowercase "
                "letters, digits, underscores and dashes, at most 63 characters."
            )
        if not LABEL_VALUE.fullmatch(value):
            raise workflow_not_created(
                f"Invalid value '{value}' for label '{key}': values contain only lowercase letters, digits, "
                "underscores and dashes, at most 63 characters."
            )


def _validate_pool(pool: Mapping[str, Any], worker_region: str) -> None:
    for package in pool.get("packages") or []:
        _validate_storage_path(f"package location for {package.get('name')}", package.get("location"), required=True)
    maximum = _int_or_none((pool.get("autoscalingSettings") or {}).get("maxNumWorkers"))
    count = _int_or_none(pool.get("numWorkers"))
    if maximum is not None and not 0 <= maximum <= MAX_WORKERS_PER_JOB:
        raise workflow_not_created(f"maxNumWorkers {maximum} is outside 0..{MAX_WORKERS_PER_JOB}.")
    if count is not None and maximum and count > maximum:
        raise workflow_not_created(f"numWorkers {count} exceeds maxNumWorkers {maximum}.")
    disk = _int_or_none(pool.get("diskSizeGb"))
    if disk is not None and disk < 0:
        raise workflow_not_created(f"Invalid diskSizeGb {disk}.")
    subnetwork = pool.get("subnetwork")
    if subnetwork:
        match = SUBNETWORK.fullmatch(subnetwork)
        if match is None:
            raise workflow_not_created(
                f"Invalid subnetwork '{subnetwork}': use regions/REGION/subnetworks/SUBNETWORK or "
                "https://www.googleapis.com/compute/v1/projects/HOST_PROJECT_ID/regions/REGION/subnetworks/SUBNETWORK."
            )
        if match.group("region") != worker_region:
            raise workflow_not_created(
                f"The subnetwork {subnetwork} is in region {match.group('region')}, but the workers of this job run "
                f"in region {worker_region}: the subnetwork must be in the workers' region."
            )
    images = [image.get("containerImage") for image in pool.get("sdkHarnessContainerImages") or []]
    if any(not image for image in images):
        raise workflow_not_created("SDK harness container image has to be a non-empty string.")


def _zone_region(zone: str | None) -> str | None:
    return zone.rsplit("-", 1)[0] if zone else None


@dataclass(frozen=True)
class CapturedRequest:
    """One request as the stand-in received it (the bearer token is replaced by its identity)."""

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    identity: str | None
    status: int


@dataclass
class _Job:
    summary: SubmittedJob
    request: JsonDict
    create_time: dt.datetime
    state: str = "JOB_STATE_PENDING"
    state_time: dt.datetime = field(default_factory=_now)
    start_time: dt.datetime | None = None
    requested_state: str | None = None
    messages: list[JsonDict] = field(default_factory=list)
    container: RunningContainer | None = None
    work_dir: Path | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return self.summary.job_id


class DataflowService:
    """The jobs of every project and region, their requests, messages and workers."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        state_dir: Path,
        *,
        tokens: TokenRegistry | None = None,
        known_service_accounts: Collection[str] | None = None,
        known_subnetworks: Collection[str] | None = None,
        project_numbers: Mapping[str, str] | None = None,
        start_delay_seconds: float = 0.2,
        max_job_seconds: float = 1800.0,
        messages_page_size: int = 50,
        log_tail_lines: int = 30,
    ) -> None:
        self.runtime = runtime
        self.state_dir = state_dir
        self.tokens = tokens
        self.known_service_accounts = None if known_service_accounts is None else set(known_service_accounts)
        self.known_subnetworks = None if known_subnetworks is None else set(known_subnetworks)
        self.project_numbers = dict(project_numbers or {})
        self.start_delay_seconds = start_delay_seconds
        self.max_job_seconds = max_job_seconds
        self.messages_page_size = messages_page_size
        self.log_tail_lines = log_tail_lines
        self._jobs: dict[str, _Job] = {}
        self._captured: list[CapturedRequest] = []
        self._lock = threading.RLock()
        self._message_ids = itertools.count(1)
        state_dir.mkdir(parents=True, exist_ok=True)

    # -- for tests and the rehearsal report ------------------------------------------------------

    @property
    def captured(self) -> list[CapturedRequest]:
        with self._lock:
            return list(self._captured)

    def created(self) -> list[SubmittedJob]:
        """Every job created, oldest first."""
        with self._lock:
            return [job.summary for job in self._jobs.values()]

    def job(self, job_id: str) -> SubmittedJob:
        return self._job(job_id).summary

    def request_body(self, job_id: str) -> JsonDict:
        """The create request's body exactly as received."""
        return self._job(job_id).request

    def state(self, job_id: str) -> str:
        return self._job(job_id).state

    def messages(self, job_id: str) -> list[JsonDict]:
        with self._lock:
            return list(self._job(job_id).messages)

    def log_path(self, job_id: str) -> Path | None:
        container = self._job(job_id).container
        return container.log_path if container else None

    def wait(self, job_id: str, timeout: float | None = None) -> str:
        """Blocks until the job is terminal; returns its state."""
        job = self._job(job_id)
        if not job.finished.wait(timeout):
            raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
        return job.state

    def close(self) -> None:
        """Stops every running worker."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
            if job.container is not None:
                job.container.stop()

    # -- the API ----------------------------------------------------------------------------------

    def record(self, request: CapturedRequest) -> None:
        with self._lock:
            self._captured.append(request)

    def identity(self, authorization: str | None) -> str | None:
        """Who sent the request; raises the 401 Google answers without a valid bearer token."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, MISSING_CREDENTIALS, "UNAUTHENTICATED")
        if self.tokens is None:
            return None
        identity = self.tokens.identity(token.strip())
        if identity is None:
            raise ApiError(401, INVALID_CREDENTIALS, "UNAUTHENTICATED")
        return identity

    def create_job(
        self, project: str, region: str, body: JsonDict, query: Mapping[str, str], identity: str | None
    ) -> JsonDict:
        validate_job(project, region, body)
        account = (body.get("environment") or {}).get("serviceAccountEmail")
        if account and self.known_service_accounts is not None and account not in self.known_service_accounts:
            raise workflow_not_created(f"Current user cannot act as service account {account}.")
        with self._lock:
            for job in self._jobs.values():
                same_place = job.summary.project == project and job.summary.region == region
                if (
                    same_place
                    and body.get("clientRequestId")
                    and job.summary.client_request_id == body["clientRequestId"]
                ):
                    return self._view(job, query.get("view"))
                if same_place and job.summary.name == body.get("name") and job.state in ACTIVE_STATES:
                    return self._view(job, query.get("view"))
            created = _now()
            job_id = f"{created:%Y-%m-%d_%H_%M_%S}-{random.randrange(10**18, 10**19)}"
            job = _Job(SubmittedJob.from_request(job_id, project, region, body, identity), body, created)
            job.work_dir = self.state_dir / "jobs" / job_id
            job.work_dir.mkdir(parents=True)
            (job.work_dir / "request.json").write_text(json.dumps(body, indent=1))
            self._jobs[job_id] = job
        threading.Thread(target=self._execute, args=(job,), name=f"dataflow-{job_id}", daemon=True).start()
        return self._view(job, query.get("view"))

    def get_job(self, project: str, region: str, job_id: str, query: Mapping[str, str]) -> JsonDict:
        return self._view(self._job_at(project, region, job_id), query.get("view"))

    def list_jobs(self, project: str, region: str, query: Mapping[str, str]) -> JsonDict:
        wanted = query.get("filter", "ALL")
        with self._lock:
            jobs = [
                job
                for job in self._jobs.values()
                if job.summary.project == project
                and job.summary.region == region
                and (wanted in ("ALL", "UNKNOWN") or (job.state in TERMINAL_STATES) == (wanted == "TERMINATED"))
                and (not query.get("name") or job.summary.name == query["name"])
            ]
        jobs.sort(key=lambda job: job.create_time, reverse=True)
        page, token = _page(jobs, query, default_size=25)
        answer: JsonDict = {"jobs": [self._view(job, query.get("view")) for job in page]} if page else {}
        if token:
            answer["nextPageToken"] = token
        return answer

    def list_messages(self, project: str, region: str, job_id: str, query: Mapping[str, str]) -> JsonDict:
        job = self._job_at(project, region, job_id)
        minimum = IMPORTANCE_ORDER.index(query.get("minimumImportance", "JOB_MESSAGE_DEBUG"))
        start, end = query.get("startTime"), query.get("endTime")
        with self._lock:
            selected = [
                message
                for message in job.messages
                if IMPORTANCE_ORDER.index(message["messageImportance"]) >= minimum
                and (not start or message["time"] >= _normalise_time(start))
                and (not end or message["time"] < _normalise_time(end))
            ]
        page, token = _page(selected, query, default_size=self.messages_page_size)
        answer: JsonDict = {"jobMessages": page} if page else {}
        if token:
            answer["nextPageToken"] = token
        return answer

    def get_metrics(self, project: str, region: str, job_id: str) -> JsonDict:
        self._job_at(project, region, job_id)
        # The worker reports no counters to the stand-in (gap: Beam's result.metrics() queries come back empty).
        return {"metricTime": _timestamp(_now()), "metrics": []}

    def update_job(self, project: str, region: str, job_id: str, body: JsonDict, query: Mapping[str, str]) -> JsonDict:
        job = self._job_at(project, region, job_id)
        requested = body.get("requestedState")
        if requested is None:
            raise ApiError(400, "The stand-in updates only requestedState.", "INVALID_ARGUMENT")
        with self._lock:
            if job.state in TERMINAL_STATES:
                raise ApiError(
                    400,
                    f"({_trace_id()}): Workflow modification failed. Causes: ({_trace_id()}): "
                    f"Job {job_id} has already finished in state {job.state}.",
                    "FAILED_PRECONDITION",
                )
            if requested == "JOB_STATE_CANCELLED":
                job.requested_state = requested
                self._message(job, "JOB_MESSAGE_BASIC", f"Cancel request is committed for workflow job: {job_id}.")
                self._set_state(job, "JOB_STATE_CANCELLING")
                job.cancel.set()
                if job.container is not None:
                    threading.Thread(target=job.container.stop, daemon=True).start()
            elif requested == "JOB_STATE_DRAINING" and job.summary.job_type != "JOB_TYPE_STREAMING":
                raise ApiError(400, "Only streaming jobs can be drained.", "FAILED_PRECONDITION")
            else:
                raise ApiError(400, f"The stand-in does not support requestedState {requested}.", "INVALID_ARGUMENT")
        return self._view(job, query.get("view"))

    # -- running a job ----------------------------------------------------------------------------

    def _execute(self, job: _Job) -> None:
        try:
            self._run_worker(job)
        except Exception as error:  # a stand-in bug must still end the job
            _LOGGER.exception("job %s", job.id)
            self._fail(job, f"Workflow failed. Causes: internal error of the Dataflow stand-in: {error!r}")
        finally:
            job.finished.set()

    def _run_worker(self, job: _Job) -> None:
        summary = job.summary
        if job.cancel.wait(self.start_delay_seconds):
            self._finish(job, "JOB_STATE_CANCELLED")
            return
        worker_region = summary.worker_region or _zone_region(summary.worker_zone) or summary.region
        with self._lock:
            job.start_time = _now()
            self._set_state(job, "JOB_STATE_RUNNING")
            self._message(job, "JOB_MESSAGE_BASIC", f"Worker configuration: {summary.machine_type} in {worker_region}.")
            self._message(job, "JOB_MESSAGE_BASIC", f"Starting 1 workers in {worker_region}...")
        if summary.subnetwork and self.known_subnetworks is not None and not self._subnetwork_known(summary):
            resource = self._subnetwork_resource(summary)
            self._fail(job, f"Workflow failed. Causes: The resource '{resource}' was not found")
            return
        image = summary.worker_image or ""
        try:
            spec = self._worker_spec(job, image)
        except ImageNotFound as error:
            self._fail(
                job,
                f"Workflow failed. Causes: The worker could not start the SDK harness container: {error}. Check "
                f"that the image exists and that the worker service account {self._worker_account(summary)} can "
                "read it.",
                details=[
                    f'Error syncing pod, skipping: failed to "StartContainer" for "sdk-0-0" with ErrImagePull: '
                    f'"failed to pull and unpack image {image}: not found"'
                ],
            )
            return
        job.container = self.runtime.start(
            spec, name=f"{summary.name}-harness", service_account=self._worker_account(summary)
        )
        with self._lock:
            self._message(
                job,
                "JOB_MESSAGE_BASIC",
                "All workers have finished the startup processes and began to receive work requests.",
            )
        try:
            exit_code = job.container.wait(self.max_job_seconds)
        except subprocess.TimeoutExpired:
            job.container.stop()
            self._fail(
                job, f"Workflow failed. Causes: the job ran longer than the stand-in's {self.max_job_seconds} s."
            )
            return
        if job.cancel.is_set():
            self._finish(job, "JOB_STATE_CANCELLED")
        elif exit_code == 0:
            self._finish(job, "JOB_STATE_DONE")
        else:
            self._worker_failed(job, exit_code)

    def _worker_spec(self, job: _Job, image_reference: str) -> ContainerSpec:
        image = self.runtime.image(image_reference)
        assert job.work_dir is not None
        semi_persistent = job.work_dir / "semi"
        semi_persistent.mkdir(exist_ok=True)
        pythonpath = [image.env.get("PYTHONPATH", ""), str(stand_in_programs(self.state_dir))]
        env = {
            "PYTHONPATH": os.pathsep.join(part for part in pythonpath if part),
            "PIPELINE_OPTIONS": json.dumps({"options": dict(job.summary.options)}),
            "SEMI_PERSISTENT_DIRECTORY": str(semi_persistent),
            "DATAFLOW_WORKER_IMAGE": image_reference,
            "DATAFLOW_WORKER_ERROR_FILE": str(job.work_dir / "error.txt"),
            "DATAFLOW_JOB_ID": job.id,
        }
        return ContainerSpec(image=image_reference, command=WORKER_PROGRAM, env=env)

    def _worker_account(self, summary: SubmittedJob) -> str:
        """The job's worker service account, or the Compute Engine default one as on Dataflow."""
        if summary.service_account:
            return summary.service_account
        number = self.project_numbers.get(summary.project) or derived_project_number(summary.project)
        return f"{number}-compute@developer.gserviceaccount.com"

    def _subnetwork_resource(self, summary: SubmittedJob) -> str:
        match = SUBNETWORK.fullmatch(summary.subnetwork or "")
        assert match is not None
        project = match.group("project") or summary.project
        return f"projects/{project}/regions/{match.group('region')}/subnetworks/{match.group('name')}"

    def _subnetwork_known(self, summary: SubmittedJob) -> bool:
        assert self.known_subnetworks is not None
        return (
            summary.subnetwork in self.known_subnetworks or self._subnetwork_resource(summary) in self.known_subnetworks
        )

    def _worker_failed(self, job: _Job, exit_code: int) -> None:
        assert job.work_dir is not None and job.container is not None
        error_file = job.work_dir / "error.txt"
        traceback_text = error_file.read_text().strip() if error_file.exists() else ""
        tail = job.container.log_tail(self.log_tail_lines)
        with self._lock:
            if tail:
                self._message(job, "JOB_MESSAGE_BASIC", f"Worker log (last {self.log_tail_lines} lines):\n{tail}")
        if traceback_text:
            root_cause = traceback_text.splitlines()[-1]
            worker_error = f"Error message from worker: {traceback_text}"
        else:
            root_cause = f"SDK harness sdk-0-0 exited with code {exit_code}"
            worker_error = (
                "Error message from worker: SDK harness sdk-0-0 disconnected. This usually means that the process "
                "running the pipeline code has crashed. Inspect the Worker Logs and the Diagnostics tab to determine "
                f"the cause of the crash. (exit code {exit_code})"
            )
        self._fail(
            job,
            "Workflow failed. Causes: The job failed because a work item has failed. The work item was attempted on "
            f"these workers: {job.summary.name}-harness Root cause: {root_cause}",
            details=[worker_error],
        )

    def _fail(self, job: _Job, cause: str, details: Collection[str] = ()) -> None:
        with self._lock:
            for detail in details:
                self._message(job, "JOB_MESSAGE_ERROR", detail)
            self._message(job, "JOB_MESSAGE_ERROR", cause)
        self._finish(job, "JOB_STATE_FAILED")

    def _finish(self, job: _Job, state: str) -> None:
        with self._lock:
            if job.container is not None:
                self._message(job, "JOB_MESSAGE_BASIC", "Stopping worker pool...")
                self._message(job, "JOB_MESSAGE_BASIC", "Worker pool stopped.")
            self._set_state(job, state)

    def _set_state(self, job: _Job, state: str) -> None:
        job.state = state
        job.state_time = _now()
        _LOGGER.info("Dataflow job %s (%s): %s", job.id, job.summary.name, state)

    def _message(self, job: _Job, importance: str, text: str) -> None:
        job.messages.append(
            {
                "id": str(next(self._message_ids)),
                "time": _timestamp(_now()),
                "messageImportance": importance,
                "messageText": text,
            }
        )

    # -- lookups and views ------------------------------------------------------------------------

    def _job(self, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def _job_at(self, project: str, region: str, job_id: str) -> _Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.summary.project != project or job.summary.region != region:
            raise ApiError(
                404,
                f"({_trace_id()}): Information about job {job_id} could not be found in our system. Please double "
                "check that the API being used is projects.locations.jobs.get "
                "(https://cloud.google.com/dataflow/docs/reference/rest/v1b3/projects.locations.jobs/get). If the API "
                "being used is projects.locations.jobs.get, please double check the id is correct. If it is please "
                "contact customer support.",
                "NOT_FOUND",
            )
        return job

    def _view(self, job: _Job, view: str | None) -> JsonDict:
        with self._lock:
            summary = job.summary
            answer: JsonDict = {
                "id": job.id,
                "projectId": summary.project,
                "name": summary.name,
                "type": summary.job_type or "JOB_TYPE_BATCH",
                "location": summary.region,
                "currentState": job.state,
                "currentStateTime": _timestamp(job.state_time),
                "createTime": _timestamp(job.create_time),
                "labels": dict(summary.labels),
                "jobMetadata": {
                    "sdkVersion": {"versionDisplayName": summary.sdk or "", "sdkSupportStatus": "SUPPORTED"}
                },
            }
            if summary.client_request_id:
                answer["clientRequestId"] = summary.client_request_id
            if job.start_time:
                answer["startTime"] = _timestamp(job.start_time)
            if job.requested_state:
                answer["requestedState"] = job.requested_state
            if view in ("JOB_VIEW_ALL", "JOB_VIEW_DESCRIPTION"):
                answer["environment"] = job.request.get("environment", {})
                answer["steps"] = job.request.get("steps", [])
            return answer


def _normalise_time(value: str) -> str:
    """An RFC 3339 time in the fixed-width form the messages carry, so string order is time order."""
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _timestamp(moment.astimezone(dt.timezone.utc))


def _page(items: list[Any], query: Mapping[str, str], default_size: int) -> tuple[list[Any], str | None]:
    start = int(query.get("pageToken") or 0)
    size = int(query.get("pageSize") or default_size) or default_size
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


# -- HTTP front end -------------------------------------------------------------------------------

_JOBS = "v1b3/projects/{project}/locations/{location}/jobs"
_ROUTES: list[tuple[str, Any, str]] = [
    ("POST", compile_template(_JOBS), "create"),
    ("GET", compile_template(_JOBS), "list"),
    ("GET", compile_template(_JOBS + "/{job_id}"), "get"),
    ("PUT", compile_template(_JOBS + "/{job_id}"), "update"),
    ("GET", compile_template(_JOBS + "/{job_id}/messages"), "messages"),
    ("GET", compile_template(_JOBS + "/{job_id}/metrics"), "metrics"),
]


def _dispatch(service: DataflowService, method: str, path: str, query: dict[str, str], body: Any, identity: str | None):
    for route_method, pattern, action in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if route_method != method:
            continue
        p = match.groupdict()
        project, region = p["project"], p["location"]
        if action == "create":
            if not isinstance(body, dict):
                raise ApiError(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
            return service.create_job(project, region, body, query, identity)
        if action == "list":
            return service.list_jobs(project, region, query)
        if action == "get":
            return service.get_job(project, region, p["job_id"], query)
        if action == "update":
            return service.update_job(project, region, p["job_id"], body if isinstance(body, dict) else {}, query)
        if action == "messages":
            return service.list_messages(project, region, p["job_id"], query)
        return service.get_metrics(project, region, p["job_id"])
    raise ApiError(404, f"Method not found: {method} /{path}", "NOT_FOUND")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ESF"

    def _handle(self) -> None:
        service: DataflowService = self.server.owner  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        identity: str | None = None
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise ApiError(400, f"Invalid JSON payload received. {error}", "INVALID_ARGUMENT") from error
            identity = service.identity(self.headers.get("Authorization"))
            status, answer = 200, _dispatch(service, self.command, parts.path.lstrip("/"), query, body, identity)
        except ApiError as error:
            status, answer = error.http_status, error_body(error.http_status, error.message, error.status)
        service.record(CapturedRequest(self.command, parts.path, query, body, identity, status))
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: object) -> None:
        _LOGGER.debug("dataflow: " + format, *args)


class DataflowServer:
    """The stand-in's plain-HTTP front end (the TLS proxy forwards dataflow.googleapis.com to it)."""

    def __init__(self, service: DataflowService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self._http = LoopbackHttpServer(_Handler, service, host=host, port=port)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def address(self) -> tuple[str, int]:
        return self._http.address

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> DataflowServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self.service.close()
        self._http.stop()

    def __enter__(self) -> DataflowServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
