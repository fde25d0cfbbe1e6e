"""Vertex AI Training stand-in: CustomJobs over gRPC and REST that run their container here.

One :class:`CustomJobService` holds the jobs; two front ends share it:

* gRPC, ``google.cloud.aiplatform.v1.JobService`` (Create/Get/List/Cancel/DeleteCustomJob, and
  ``google.longrunning.Operations.GetOperation`` for the delete operation), as TFX's Vertex
  Trainer calls it through ``gapic.JobServiceClient``: ``serve_grpc(service)``.
* REST, ``{parent}/customJobs`` on ``FakeVertexServer``, as the aiplatform SDK's REST transport
  calls it: ``FakeVertexServer(surfaces=[CustomJobsSurface(service)])``.

Creation validates like the service (field violations answered as ``INVALID_ARGUMENT`` with
``List of found errors:\\t1.Field: ...; Message: ...\\t`` and a ``google.rpc.BadRequest``),
names the job ``projects/{project NUMBER}/locations/{location}/customJobs/{numeric id}`` and
runs it: ``JOB_STATE_QUEUED`` -> ``PENDING`` -> ``RUNNING`` -> ``SUCCEEDED`` / ``FAILED`` /
``CANCELLED`` (via ``CANCELLING``), with create/start/end/update times.

Only replica 0 of worker pool 0 (the primary replica, ``workerpool0-0``) runs, through the
``ContainerRuntime`` (``containers.py``), as the job's service account or, when none is given,
the project's Vertex AI Custom Code Service Agent. Further replicas and pools are accepted,
described in ``CLUSTER_SPEC``/``TF_CONFIG``, and not run. The container gets the environment
Vertex AI Training documents: ``CLUSTER_SPEC`` on every job, ``TF_CONFIG`` only for jobs with
more than one replica, ``AIP_MODEL_DIR``/``AIP_CHECKPOINT_DIR``/``AIP_TENSORBOARD_LOG_DIR`` when
``base_output_directory`` is set, plus ``CLOUD_ML_PROJECT_ID`` (the project number),
``CLOUD_ML_REGION`` and ``CLOUD_ML_JOB_ID`` (read by the aiplatform SDK and its
``training_utils``). A non-zero exit fails the job with Vertex's message, the log tail included;
an image the runtime does not know fails it as an image pull would; a cancel terminates the
process. ``python_package_spec`` pools are valid but not run here (the job fails saying so).

Where a text below is not the service's verbatim (pull failures, cancellation, service account
and network formats), it says what the stand-in checks; ``job(name).log_path`` points at the
container's log for tests and the rehearsal report. With ``identify`` (an ``Authorization`` header
-> service account function such as ``metadata.TokenRegistry.identity_from_header``) calls
without a known bearer token are refused as UNAUTHENTICATED and ``job(name).created_by`` says who
created each job.

Rehearsal wiring (TFX's VertexJobClient hard-codes ``{region}-aiplatform.googleapis.com``)::

    jobs = CustomJobService(runtime, identify=tokens.identity_from_header)
    grpc_server = serve_grpc(jobs).start()
    vertex_server.install(CustomJobsSurface(jobs))           # same store over REST
    proxy.route("us-central1-aiplatform.googleapis.com",
                grpc=("127.0.0.1", grpc_server.port), http=("127.0.0.1", vertex_server.port))

and the Trainer step's container gets ``grpc_proxy=<proxy url>``,
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=<test CA bundle>`` and ``GCE_METADATA_HOST``/``GCE_METADATA_IP``
(google.auth.default() then finds the metadata stand-in's token).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import logging
import re
import subprocess
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.cloud.aiplatform_v1.types import accelerator_type, job_service, job_state
from google.cloud.aiplatform_v1.types import custom_job as custom_job_types
from google.cloud.aiplatform_v1.types import operation as operation_types
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format
from google.rpc import error_details_pb2

from tools.standins.containers import ContainerRuntime, ContainerSpec, ImageNotFound, RunningContainer
from tools.standins.grpc_server import GrpcServer, service, unary_method
from tools.standins.vertex_core import (
    EMPTY_TYPE,
    ApiError,
    JsonDict,
    OperationStore,
    ProjectIdentity,
    Request,
    Response,
    ServerContext,
    error_body,
    failed_precondition,
    invalid_argument,
    matches_filter,
    not_found,
    utc_now,
)

_LOGGER = logging.getLogger(__name__)

CustomJobPb = custom_job_types.CustomJob.pb()
JOB_SERVICE = "google.cloud.aiplatform.v1.JobService"
OPERATIONS_SERVICE = "google.longrunning.Operations"

QUEUED = "JOB_STATE_QUEUED"
PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLING = "JOB_STATE_CANCELLING"
CANCELLED = "JOB_STATE_CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

PRIMARY_REPLICA = "workerpool0-0"
# google.rpc.Code of a replica failure: Vertex reports "Job failed with: code: 3 ...".
REPLICA_FAILURE_CODE = 3
CANCELLED_CODE = 1
INTERNAL_CODE = 13

_PARENT = re.compile(r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)")
_JOB_NAME = re.compile(r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/customJobs/(?P<job_id>[^/]+)")
_MACHINE_TYPE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+")
_SERVICE_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9._+-]*@([a-z0-9-]+\.)*gserviceaccount\.com")
_NETWORK = re.compile(r"projects/[0-9]+/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?")
# Which machine families take which accelerators (Vertex AI "Configure compute resources").
_ACCELERATOR_MACHINES: dict[str, tuple[str, ...]] = {
    "NVIDIA_TESLA_K80": ("n1-",),
    "NVIDIA_TESLA_P4": ("n1-",),
    "NVIDIA_TESLA_P100": ("n1-",),
    "NVIDIA_TESLA_V100": ("n1-",),
    "NVIDIA_TESLA_T4": ("n1-",),
    "NVIDIA_TESLA_A100": ("a2-highgpu-", "a2-megagpu-"),
    "NVIDIA_A100_80GB": ("a2-ultragpu-",),
    "NVIDIA_L4": ("g2-",),
    "NVIDIA_H100_80GB": ("a3-highgpu-",),
}
_LABEL_RULES = (
    "There can be no more than 64 labels attached to a single resource. Label keys and values can only contain "
    "lowercase letters, numbers, dashes and underscores. Label keys must start with a letter or number, must be "
    "less than 64 characters in length, and must be less that 128 bytes in length when encoded in UTF-8. Label "
    "values must be less than 64 characters in length, and must be less that 128 bytes in length when encoded in "
    "UTF-8."
)
REQUIRED = "Required field is not set."
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


# -- validation -------------------------------------------------------------------------------------


class InvalidCustomJob(ApiError):
    """INVALID_ARGUMENT with the field violations, in Vertex AI's ``List of found errors`` form."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        listed = "".join(f"{i}.Field: {path}; Message: {text}\t" for i, (path, text) in enumerate(violations, 1))
        super().__init__(400, f"List of found errors:\t{listed}", "INVALID_ARGUMENT")
        self.violations = violations
        request = error_details_pb2.BadRequest()
        for path, text in violations:
            request.field_violations.add(field=path, description=text)
        self.details = [request]

    def to_response(self) -> Response:
        body = error_body(self.http_status, self.message, self.status)
        body["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": path, "description": text} for path, text in self.violations],
            }
        ]
        return Response(self.http_status, body)


def validate(job: Any) -> None:
    """Refuses ``job`` (a ``CustomJob`` protobuf) the way CreateCustomJob does."""
    violations = _field_violations(job)
    if violations:
        raise InvalidCustomJob(violations)
    for pool in job.job_spec.worker_pool_specs:
        machine = pool.machine_spec
        accelerator = _accelerator_name(machine.accelerator_type)
        families = _ACCELERATOR_MACHINES.get(accelerator, ())
        if families and not machine.machine_type.startswith(families):
            raise invalid_argument(
                f'Accelerator "{accelerator}" is not supported for machine type "{machine.machine_type}".'
            )


def _field_violations(job: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not job.display_name:
        found.append(("display_name", REQUIRED))
    elif len(job.display_name) > 128:
        found.append(("display_name", "The display name can be up to 128 characters long."))
    if not _labels_valid(dict(job.labels)):
        found.append(("labels", _LABEL_RULES))
    spec = job.job_spec
    if not spec.worker_pool_specs:
        found.append(("job_spec.worker_pool_specs", REQUIRED))
    for index, pool in enumerate(spec.worker_pool_specs):
        if index > 0 and pool.ByteSize() == 0:
            continue  # every pool but the first may be skipped with an empty value
        found.extend(_pool_violations(f"job_spec.worker_pool_specs[{index}]", pool))
    if spec.service_account and not _SERVICE_ACCOUNT.fullmatch(spec.service_account):
        found.append(("job_spec.service_account", f"{spec.service_account} is not a valid service account email."))
    if spec.network and not _NETWORK.fullmatch(spec.network):
        found.append(
            (
                "job_spec.network",
                f"Invalid network {spec.network!r}: expected projects/{{project_number}}/global/networks/{{network}}.",
            )
        )
    prefix = spec.base_output_directory.output_uri_prefix
    if spec.HasField("base_output_directory") and not prefix.startswith("gs://"):
        found.append(("job_spec.base_output_directory.output_uri_prefix", "The output URI must start with gs://."))
    return found


def _pool_violations(path: str, pool: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    machine = pool.machine_spec
    if not machine.machine_type:
        found.append((f"{path}.machine_spec.machine_type", REQUIRED))
    elif not _MACHINE_TYPE.fullmatch(machine.machine_type):
        found.append((f"{path}.machine_spec.machine_type", f'Machine type "{machine.machine_type}" is not supported.'))
    if bool(machine.accelerator_type) != bool(machine.accelerator_count):
        found.append(
            (
                f"{path}.machine_spec.accelerator_type",
                "Both `accelerator_type` and `accelerator_count` should be specified or none.",
            )
        )
    if pool.replica_count < 1:
        found.append((f"{path}.replica_count", REQUIRED))
    task = pool.WhichOneof("task")
    if task is None:
        found.append((f"{path}.container_spec", REQUIRED))
    elif task == "container_spec":
        found.extend(_container_violations(f"{path}.container_spec", pool.container_spec))
    else:
        package = pool.python_package_spec
        for name in ("executor_image_uri", "package_uris", "python_module"):
            if not getattr(package, name):
                found.append((f"{path}.python_package_spec.{name}", REQUIRED))
    return found


def _container_violations(path: str, container: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not container.image_uri:
        found.append((f"{path}.image_uri", REQUIRED))
    names = [variable.name for variable in container.env]
    for index, variable in enumerate(container.env):
        if not variable.name:
            found.append((f"{path}.env[{index}].name", REQUIRED))
        if not variable.value:
            found.append((f"{path}.env[{index}].value", REQUIRED))
    if len(set(names)) != len(names):
        found.append((f"{path}.env", "EnvVar names must be unique."))
    return found


def _labels_valid(labels: dict[str, str]) -> bool:
    def allowed(text: str) -> bool:
        return all((c.isalpha() and c == c.lower()) or c.isdigit() or c in "_-" for c in text)

    def short(text: str) -> bool:
        return len(text) < 64 and len(text.encode()) < 128

    return len(labels) <= 64 and all(
        key and (key[0].isalpha() or key[0].isdigit()) and allowed(key) and short(key) and allowed(v) and short(v)
        for key, v in labels.items()
    )


def _accelerator_name(value: int) -> str:
    try:
        return accelerator_type.AcceleratorType(value).name if value else ""
    except ValueError:
        return str(value)


# -- what tests and the rehearsal see ---------------------------------------------------------------


@dataclass(frozen=True)
class CustomJobView:
    """Snapshot of one job: what was requested (``request``), what is served (``resource``), how it ran."""

    name: str
    job_id: str
    request: Any
    resource: Any
    run_as: str
    container_env: dict[str, str]
    log_path: Path | None
    exit_code: int | None
    created_by: str | None

    @property
    def state(self) -> str:
        return job_state.JobState(self.resource.state).name

    @property
    def error_code(self) -> int:
        return self.resource.error.code

    @property
    def error_message(self) -> str:
        return self.resource.error.message

    @property
    def display_name(self) -> str:
        return self.request.display_name

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.request.labels)

    @property
    def primary_pool(self) -> Any:
        return self.request.job_spec.worker_pool_specs[0]

    @property
    def machine_spec(self) -> JsonDict:
        return json_format.MessageToDict(self.primary_pool.machine_spec, preserving_proto_field_name=True)

    @property
    def image_uri(self) -> str:
        return self.primary_pool.container_spec.image_uri

    @property
    def command(self) -> list[str]:
        return list(self.primary_pool.container_spec.command)

    @property
    def args(self) -> list[str]:
        return list(self.primary_pool.container_spec.args)

    @property
    def env(self) -> dict[str, str]:
        """The env of the primary pool's container spec, as requested."""
        return {variable.name: variable.value for variable in self.primary_pool.container_spec.env}

    @property
    def service_account(self) -> str:
        """As requested ('' when unset; see ``run_as`` for the identity the container ran as)."""
        return self.request.job_spec.service_account

    @property
    def network(self) -> str:
        return self.request.job_spec.network

    @property
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


@dataclass
class _JobRecord:
    name: str
    job_id: str
    project_number: str
    location: str
    request: Any
    resource: Any
    run_as: str
    created_by: str | None
    cancel: threading.Event = field(default_factory=threading.Event)
    container: RunningContainer | None = None
    container_env: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        return job_state.JobState(self.resource.state).name

    def view(self) -> CustomJobView:
        request, resource = CustomJobPb(), CustomJobPb()
        request.CopyFrom(self.request)
        resource.CopyFrom(self.resource)
        log_path = self.container.log_path if self.container else None
        return CustomJobView(
            self.name,
            self.job_id,
            request,
            resource,
            self.run_as,
            dict(self.container_env),
            log_path,
            self.exit_code,
            self.created_by,
        )


# -- the service ------------------------------------------------------------------------------------


class CustomJobService:
    """The CustomJob store and executor behind both front ends (thread-safe).

    ``queue_seconds`` keeps new jobs QUEUED that long before they start (0: start at once).
    ``identify`` maps a request's ``Authorization`` header to the caller's service account (e.g.
    ``metadata.TokenRegistry.identity_from_header``); with it, calls without a known token are
    refused as UNAUTHENTICATED and each job records who created it (``created_by``).
    """

    def __init__(
        self,
        runtime: ContainerRuntime,
        identity: ProjectIdentity | None = None,
        *,
        queue_seconds: float = 0.0,
        log_tail_lines: int = 20,
        identify: Callable[[str | None], str | None] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.runtime = runtime
        self.identity = identity or ProjectIdentity()
        self.queue_seconds = queue_seconds
        self.log_tail_lines = log_tail_lines
        self._clock = clock
        self._identify = identify
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, _JobRecord] = {}
        self._ids = itertools.count(1_234_567_890_123_456_001)

    # -- the API, shared by gRPC and REST -----------------------------------------------------------

    def caller(self, authorization: str | None) -> str | None:
        """Who sent a request (None without ``identify``); refuses an unknown or missing token."""
        if self._identify is None:
            return None
        identity = self._identify(authorization)
        if identity is None:
            raise ApiError(401, UNAUTHENTICATED_MESSAGE, "UNAUTHENTICATED")
        return identity

    def create(self, parent: str, job: Any, *, created_by: str | None = None) -> Any:
        project, location = _parse(_PARENT, parent, "parent")
        validate(job)
        known = project in (self.identity.project_id, self.identity.project_number)
        number = self.identity.project_number if known else project
        job_id = str(next(self._ids))
        name = f"{self.identity.location_path(project, location)}/customJobs/{job_id}"
        resource = _copy(job)
        for output_only in ("error", "start_time", "end_time", "web_access_uris"):
            resource.ClearField(output_only)
        resource.name = name
        resource.state = job_state.JobState.JOB_STATE_QUEUED
        now = self._clock()
        resource.create_time.FromDatetime(now)
        resource.update_time.FromDatetime(now)
        run_as = job.job_spec.service_account or f"service-{number}@gcp-sa-aiplatform-cc.iam.gserviceaccount.com"
        record = _JobRecord(name, job_id, number, location, _copy(job), resource, run_as, created_by)
        with self._lock:
            self._jobs[name] = record
            record.thread = threading.Thread(target=self._execute, args=(record,), name=f"custom-job-{job_id}")
            record.thread.daemon = True
            record.thread.start()
            return _copy(resource)

    def get(self, name: str) -> Any:
        with self._lock:
            return _copy(self._record(name).resource)

    def list(self, parent: str, *, filter: str = "", page_size: int = 0, page_token: str = "") -> tuple[list[Any], str]:
        project, location = _parse(_PARENT, parent, "parent")
        prefix = self.identity.location_path(project, location) + "/customJobs/"
        if page_token and not page_token.isdigit():
            raise invalid_argument(f"Invalid page token {page_token!r}.")
        with self._lock:
            jobs = [
                _copy(record.resource)
                for record in self._jobs.values()
                if record.name.startswith(prefix) and matches_filter(json_format.MessageToDict(record.resource), filter)
            ]
        start, size = int(page_token or 0), page_size or 100
        next_token = str(start + size) if start + size < len(jobs) else ""
        return jobs[start : start + size], next_token

    def cancel(self, name: str) -> None:
        with self._lock:
            record = self._record(name)
            if record.state in TERMINAL_STATES or record.state == CANCELLING:
                raise failed_precondition(f"CustomJob {record.name} is already in state {record.state}.")
            self._set_state(record, CANCELLING)
            record.cancel.set()

    def delete(self, name: str) -> str:
        """Removes a job in a final state; returns its name (the owner of the delete operation)."""
        with self._lock:
            record = self._record(name)
            if record.state not in TERMINAL_STATES:
                raise failed_precondition(
                    f"CustomJob {record.name} is in state {record.state}; only a job in a final state can be deleted."
                )
            del self._jobs[record.name]
            return record.name

    # -- for tests and the rehearsal ------------------------------------------------------------------

    def job(self, job: str) -> CustomJobView:
        """A job by resource name (project ID or number) or by numeric ID."""
        with self._lock:
            return self._record(job).view()

    def jobs(self) -> list[CustomJobView]:
        with self._lock:
            return [record.view() for record in self._jobs.values()]

    def wait(self, job: str, timeout: float = 120.0, states: frozenset[str] = TERMINAL_STATES) -> CustomJobView:
        """Blocks until the job reaches one of ``states``; raises TimeoutError with its state."""
        with self._changed:
            record = self._record(job)
            if not self._changed.wait_for(lambda: record.state in states, timeout):
                raise TimeoutError(f"{record.name} is still {record.state} after {timeout} s")
            return record.view()

    def log_path(self, job: str) -> Path | None:
        return self.job(job).log_path

    def close(self, timeout: float = 15.0) -> None:
        """Cancels what still runs and waits for the job threads."""
        with self._lock:
            records = list(self._jobs.values())
            for record in records:
                if record.state not in TERMINAL_STATES and record.state != CANCELLING:
                    self._set_state(record, CANCELLING)
                record.cancel.set()
        for record in records:
            if record.thread is not None:
                record.thread.join(timeout)

    # -- execution ------------------------------------------------------------------------------------

    def _execute(self, record: _JobRecord) -> None:
        try:
            self._run_primary_replica(record)
        except Exception:
            _LOGGER.error("custom job %s: stand-in failure\n%s", record.name, traceback.format_exc())
            self._finish(record, FAILED, INTERNAL_CODE, "Internal error occurred for the current attempt.")

    def _run_primary_replica(self, record: _JobRecord) -> None:
        if record.cancel.wait(self.queue_seconds) or not self._advance(record, PENDING):
            self._finish_cancelled(record)
            return
        pool = record.request.job_spec.worker_pool_specs[0]
        if pool.WhichOneof("task") != "container_spec":
            message = "python_package_spec worker pools are not run by the rehearsal's Vertex AI Training stand-in."
            self._finish(record, FAILED, REPLICA_FAILURE_CODE, message)
            return
        container_spec = pool.container_spec
        env = {variable.name: variable.value for variable in container_spec.env}
        env.update(self._service_env(record))
        spec = ContainerSpec(container_spec.image_uri, tuple(container_spec.command), tuple(container_spec.args), env)
        with self._lock:
            record.container_env = env
        try:
            replica = f"{record.job_id}-{PRIMARY_REPLICA}"
            container = self.runtime.start(spec, name=replica, service_account=record.run_as)
        except ImageNotFound as error:
            self._finish(record, FAILED, REPLICA_FAILURE_CODE, _pull_failure(spec.image, error))
            return
        except (OSError, ValueError) as error:
            message = _start_failure(spec, error) + self._logs_hint(record)
            self._finish(record, FAILED, REPLICA_FAILURE_CODE, message)
            return
        with self._lock:
            record.container = container
        self._advance(record, RUNNING)
        exit_code = _wait_or_stop(container, record.cancel)
        with self._lock:
            record.exit_code = exit_code
        if record.cancel.is_set():
            self._finish_cancelled(record)
        elif exit_code == 0:
            self._finish(record, SUCCEEDED)
        else:
            tail = _log_tail(container.log_path, self.log_tail_lines)
            message = _exit_failure(exit_code, tail) + self._logs_hint(record)
            self._finish(record, FAILED, REPLICA_FAILURE_CODE, message)

    def _service_env(self, record: _JobRecord) -> dict[str, str]:
        spec = record.request.job_spec
        env = {
            "CLOUD_ML_PROJECT_ID": record.project_number,
            "CLOUD_ML_REGION": record.location,
            "CLOUD_ML_JOB_ID": record.job_id,
        }
        job = json_format.MessageToDict(spec, preserving_proto_field_name=True)
        hosts = _cluster_hosts(record.job_id, spec)
        env["CLUSTER_SPEC"] = json.dumps(
            {"cluster": hosts, "environment": "cloud", "task": {"type": "workerpool0", "index": 0}, "job": job}
        )
        if sum(len(replicas) for replicas in hosts.values()) > 1:
            roles = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps"}
            tf_cluster = {roles[pool]: replicas for pool, replicas in hosts.items() if pool in roles}
            env["TF_CONFIG"] = json.dumps(
                {"cluster": tf_cluster, "task": {"type": "chief", "index": 0}, "environment": "cloud", "job": job}
            )
        prefix = spec.base_output_directory.output_uri_prefix.rstrip("/")
        if prefix:
            env["AIP_MODEL_DIR"] = f"{prefix}/model/"
            env["AIP_CHECKPOINT_DIR"] = f"{prefix}/checkpoints/"
            env["AIP_TENSORBOARD_LOG_DIR"] = f"{prefix}/logs/"
        return env

    def _logs_hint(self, record: _JobRecord) -> str:
        job_id = record.job_id
        return (
            "\nTo find out more about why your job exited please check the logs: "
            f"https://console.cloud.google.com/logs/viewer?project={record.project_number}"
            f"&resource=ml_job%2Fjob_id%2F{job_id}&advancedFilter=resource.type%3D%22ml_job%22%0A"
            f"resource.labels.job_id%3D%22{job_id}%22"
        )

    # -- state ----------------------------------------------------------------------------------------

    def _advance(self, record: _JobRecord, state: str) -> bool:
        """Moves a job that is not being cancelled to ``state``; False when it is being cancelled."""
        with self._lock:
            if record.cancel.is_set():
                return False
            if state == RUNNING:
                record.resource.start_time.FromDatetime(self._clock())
            self._set_state(record, state)
            return True

    def _finish_cancelled(self, record: _JobRecord) -> None:
        self._finish(record, CANCELLED, CANCELLED_CODE, "CANCELED")

    def _finish(self, record: _JobRecord, state: str, code: int = 0, message: str = "") -> None:
        with self._lock:
            if code:
                record.resource.error.code = code
                record.resource.error.message = message
            record.resource.end_time.FromDatetime(self._clock())
            self._set_state(record, state)

    def _set_state(self, record: _JobRecord, state: str) -> None:
        record.resource.state = job_state.JobState[state]
        record.resource.update_time.FromDatetime(self._clock())
        self._changed.notify_all()

    def _record(self, job: str) -> _JobRecord:
        if "/" not in job:
            found = next((record for record in self._jobs.values() if record.job_id == job), None)
        else:
            _parse(_JOB_NAME, job, "name")
            found = self._jobs.get(self.identity.canonical_name(job))
        if found is None:
            raise not_found(job)
        return found


def _parse(pattern: re.Pattern[str], value: str, what: str) -> tuple[str, str]:
    match = pattern.fullmatch(value)
    if match is None:
        raise invalid_argument(f"Invalid {what} {value!r}.")
    return match.group("project"), match.group("location")


def _copy(message: Any) -> Any:
    result = type(message)()
    result.CopyFrom(message)
    return result


def _cluster_hosts(job_id: str, spec: Any) -> dict[str, list[str]]:
    """Replica addresses as Vertex AI names them (cmle-training-workerpoolN-<hash>-R:2222)."""
    suffix = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return {
        f"workerpool{index}": [f"cmle-training-workerpool{index}-{suffix}-{r}:2222" for r in range(pool.replica_count)]
        for index, pool in enumerate(spec.worker_pool_specs)
        if pool.replica_count
    }


def _wait_or_stop(container: RunningContainer, cancel: threading.Event) -> int:
    """The container's exit status (128 + signal when killed), stopping it once ``cancel`` is set."""
    while True:
        try:
            code = container.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                container.stop()
                code = container.wait()
                break
    return 128 - code if code < 0 else code


def _exit_failure(exit_code: int, log_tail: str) -> str:
    message = f"The replica {PRIMARY_REPLICA} exited with a non-zero status of {exit_code}. Termination reason: Error. "
    return message + (f"\n{log_tail}\n" if log_tail else "")


def _start_failure(spec: ContainerSpec, error: Exception) -> str:
    program = (spec.command or spec.args or ("",))[0]
    reason = (
        f'exec: "{program}": executable file not found in $PATH: unknown'
        if isinstance(error, FileNotFoundError)
        else str(error)
    )
    return (
        f"The replica {PRIMARY_REPLICA} exited with a non-zero status of 128. Termination reason: StartError. \n"
        f" Termination log message: failed to create containerd task: failed to create shim task: OCI runtime "
        f"create failed: runc create failed: unable to start container process: {reason}\n"
    )


def _pull_failure(image: str, error: ImageNotFound) -> str:
    # No verbatim Vertex text for this case was found; it names the replica, the image and the cause.
    return (
        f"The replica {PRIMARY_REPLICA} could not be started: unable to pull image {image!r}. "
        f"Make sure the image exists and that Vertex AI can read it. ({error})"
    )


def _log_tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    rows = text.rstrip().splitlines()
    if rows and rows[0].startswith("$ "):  # the runtime's own first line: the command it ran
        rows = rows[1:]
    return "\n".join(rows[-lines:])


# -- REST front end (FakeVertexServer surface) ---------------------------------------------------------


class CustomJobsSurface:
    """``{parent}/customJobs`` routes of the fake Vertex AI REST API, backed by a CustomJobService.

    =======  ==========================================  ==========================
    POST     {parent}/customJobs                         create -> CustomJob
    GET      {parent}/customJobs/ID                      get
    GET      {parent}/customJobs                         list (filter, pageToken)
    POST     {parent}/customJobs/ID:cancel               cancel -> Empty
    DELETE   {parent}/customJobs/ID                      delete -> Operation
    =======  ==========================================  ==========================
    """

    def __init__(self, jobs: CustomJobService) -> None:
        self.jobs = jobs
        self._operations: OperationStore | None = None

    def register(self, context: ServerContext) -> None:
        if context.identity != self.jobs.identity:
            raise ValueError("CustomJobsSurface: the server and the CustomJobService must share one ProjectIdentity.")
        self._operations = context.operations
        parent = "projects/{project}/locations/{location}/customJobs"
        context.router.add("POST", parent, self._create, name="customJobs.create")
        context.router.add("GET", parent, self._list, name="customJobs.list")
        context.router.add("GET", parent + "/{job}", self._get, name="customJobs.get")
        context.router.add("POST", parent + "/{job}:cancel", self._cancel, name="customJobs.cancel")
        context.router.add("DELETE", parent + "/{job}", self._delete, name="customJobs.delete")

    def _create(self, request: Request) -> JsonDict:
        created_by = self._caller(request)
        job = CustomJobPb()
        try:
            json_format.ParseDict(request.json_body(), job)
        except json_format.ParseError as error:
            raise invalid_argument(f"Invalid JSON payload received. {error}") from error
        return _to_json(self.jobs.create(_parent_of(request), job, created_by=created_by))

    def _get(self, request: Request) -> JsonDict:
        self._caller(request)
        return _to_json(self.jobs.get(request.path))

    def _list(self, request: Request) -> JsonDict:
        self._caller(request)
        jobs, next_token = self.jobs.list(
            _parent_of(request),
            filter=request.query.get("filter", ""),
            page_size=int(request.query.get("pageSize") or 0),
            page_token=request.query.get("pageToken", ""),
        )
        body: JsonDict = {"customJobs": [_to_json(job) for job in jobs]}
        if next_token:
            body["nextPageToken"] = next_token
        return body

    def _cancel(self, request: Request) -> JsonDict:
        self._caller(request)
        self.jobs.cancel(request.path.removesuffix(":cancel"))
        return {}

    def _delete(self, request: Request) -> JsonDict:
        self._caller(request)
        owner = self.jobs.delete(request.path)
        assert self._operations is not None
        record = self._operations.create(
            owner, metadata_type=OperationStore.DELETE_METADATA_TYPE, response={"@type": EMPTY_TYPE}
        )
        return record.to_json()

    def _caller(self, request: Request) -> str | None:
        authorization = next((v for k, v in request.headers.items() if k.lower() == "authorization"), None)
        return self.jobs.caller(authorization)


def _parent_of(request: Request) -> str:
    return f"projects/{request.params['project']}/locations/{request.params['location']}"


def _to_json(job: Any) -> JsonDict:
    return json_format.MessageToDict(job)


# -- gRPC front end ---------------------------------------------------------------------------------


class _GrpcOperations:
    """Delete operations, answered done at once (``Operation.result()`` never has to poll)."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._operations: dict[str, operations_pb2.Operation] = {}

    def delete_done(self, owner: str) -> operations_pb2.Operation:
        metadata = operation_types.DeleteOperationMetadata.pb()()
        now: dt.datetime = self._clock()
        metadata.generic_metadata.create_time.FromDatetime(now)
        metadata.generic_metadata.update_time.FromDatetime(now)
        with self._lock:
            operation = operations_pb2.Operation(name=f"{owner}/operations/{next(self._ids)}", done=True)
            operation.metadata.Pack(metadata)
            operation.response.Pack(empty_pb2.Empty())
            self._operations[operation.name] = operation
            return copy.deepcopy(operation)

    def get(self, request: operations_pb2.GetOperationRequest, _context: grpc.ServicerContext) -> Any:
        with self._lock:
            found = self._operations.get(request.name)
        if found is None:
            raise not_found(request.name)
        return copy.deepcopy(found)


def job_service_handlers(jobs: CustomJobService) -> list[grpc.GenericRpcHandler]:
    """``JobService`` CustomJob methods and ``Operations.GetOperation`` for ``GrpcServer``."""
    operations = _GrpcOperations(jobs._clock)
    requests = job_service

    def caller(context: grpc.ServicerContext) -> str | None:
        authorization = next((v for k, v in context.invocation_metadata() if k == "authorization"), None)
        return jobs.caller(authorization if isinstance(authorization, str) else None)

    def create(request: Any, context: grpc.ServicerContext) -> Any:
        return jobs.create(request.parent, request.custom_job, created_by=caller(context))

    def get(request: Any, context: grpc.ServicerContext) -> Any:
        caller(context)
        return jobs.get(request.name)

    def delete(request: Any, context: grpc.ServicerContext) -> operations_pb2.Operation:
        caller(context)
        return operations.delete_done(jobs.delete(request.name))

    def list_jobs(request: Any, context: grpc.ServicerContext) -> Any:
        caller(context)
        found, next_token = jobs.list(
            request.parent, filter=request.filter, page_size=request.page_size, page_token=request.page_token
        )
        return requests.ListCustomJobsResponse.pb()(custom_jobs=found, next_page_token=next_token)

    def cancel(request: Any, context: grpc.ServicerContext) -> empty_pb2.Empty:
        caller(context)
        jobs.cancel(request.name)
        return empty_pb2.Empty()

    methods = {
        "CreateCustomJob": unary_method(create, requests.CreateCustomJobRequest.pb(), CustomJobPb),
        "GetCustomJob": unary_method(get, requests.GetCustomJobRequest.pb(), CustomJobPb),
        "ListCustomJobs": unary_method(
            list_jobs, requests.ListCustomJobsRequest.pb(), requests.ListCustomJobsResponse.pb()
        ),
        "CancelCustomJob": unary_method(cancel, requests.CancelCustomJobRequest.pb(), empty_pb2.Empty),
        "DeleteCustomJob": unary_method(delete, requests.DeleteCustomJobRequest.pb(), operations_pb2.Operation),
    }
    get_operation = unary_method(operations.get, operations_pb2.GetOperationRequest, operations_pb2.Operation)
    return [service(JOB_SERVICE, methods), service(OPERATIONS_SERVICE, {"GetOperation": get_operation})]


def serve_grpc(jobs: CustomJobService, host: str = "127.0.0.1", port: int = 0) -> GrpcServer:
    """A (not yet started) gRPC server for ``jobs``; ``with serve_grpc(jobs) as server: server.target``."""
    return GrpcServer(job_service_handlers(jobs), host, port)
