"""Pipeline jobs and schedules surface of the fake Vertex AI v1 REST API.

Routes, relative to ``/v1/``, with
``{parent}`` = ``projects/{project}/locations/{location}``:

=======  ==========================================  ===========================
POST     {parent}/pipelineJobs?pipelineJobId=ID      create -> PipelineJob
GET      {parent}/pipelineJobs/ID                    get (advances the script)
GET      {parent}/pipelineJobs                       list (filter, pageToken)
POST     {parent}/pipelineJobs/ID:cancel             cancel -> Empty
DELETE   {parent}/pipelineJobs/ID                    delete -> Operation
POST     {parent}/schedules                          create -> Schedule
GET      {parent}/schedules/ID                       get
GET      {parent}/schedules                          list (filter, pageToken)
PATCH    {parent}/schedules/ID?updateMask=...        update -> Schedule
DELETE   {parent}/schedules/ID                       delete -> Operation
POST     {parent}/schedules/ID:pause|:resume         pause / resume -> Empty
=======  ==========================================  ===========================

With a :class:`JobExecutor` installed (``PipelinesSurface(executor=...)``,
see ``pipeline_runs.py``) a created job is *executed*: its tasks run on this
machine and the job's state and ``jobDetail`` follow the execution.  A job
given a script (below) is played from the script instead, for tests of how
clients handle states that are hard to provoke.

Without an executor, job state is driven by a *script*: a list of ``PipelineState`` names.  The
create call answers with the first state and every GET of that job moves one
step forward; the last state sticks.  With the default script
``PENDING, RUNNING, SUCCEEDED`` a job has succeeded on its second GET; a
script ending in ``RUNNING`` keeps the job running until it is cancelled.
LIST calls never advance a job.  Cancelling appends ``CANCELLING,
CANCELLED`` after the current step, so the next two GETs show both (note
that SDK 1.70's ``PipelineJob.wait()`` raises only for FAILED; a CANCELLED
job ends the wait normally).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tools.standins.vertex_core import (
    ApiError,
    JsonDict,
    OperationStore,
    Request,
    ServerContext,
    failed_precondition,
    invalid_argument,
    matches_filter,
    not_found,
    paginate,
    snake_to_camel,
)

QUEUED = "PIPELINE_STATE_QUEUED"
PENDING = "PIPELINE_STATE_PENDING"
RUNNING = "PIPELINE_STATE_RUNNING"
SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED = "PIPELINE_STATE_FAILED"
CANCELLING = "PIPELINE_STATE_CANCELLING"
CANCELLED = "PIPELINE_STATE_CANCELLED"
PAUSED = "PIPELINE_STATE_PAUSED"

PIPELINE_STATES = (
    QUEUED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    FAILED,
    CANCELLING,
    CANCELLED,
    PAUSED,
)
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
NOT_STARTED_STATES = frozenset({QUEUED, PENDING})
DEFAULT_JOB_STATES: tuple[str, ...] = (PENDING, RUNNING, SUCCEEDED)

# PipelineTaskDetail.State for the tasks of a job in a given PipelineState.
_TASK_STATE = {
    RUNNING: "RUNNING",
    SUCCEEDED: "SUCCEEDED",
    FAILED: "FAILED",
    CANCELLING: "CANCEL_PENDING",
    CANCELLED: "CANCELLED",
    PAUSED: "PAUSED",
}

SCHEDULE_ACTIVE = "ACTIVE"
SCHEDULE_PAUSED = "PAUSED"
SCHEDULE_COMPLETED = "COMPLETED"

# Fields UpdateSchedule may change (camelCase, as in REST update masks).
_SCHEDULE_MUTABLE_FIELDS = frozenset(
    {
        "displayName",
        "startTime",
        "endTime",
        "cron",
        "maxRunCount",
        "maxConcurrentRunCount",
        "allowQueueing",
        "createPipelineJobRequest",
    }
)

_JOB_ID_PATTERN = re.compile(r"[a-z][-a-z0-9]{0,127}")

FAILED_PRECONDITION_CODE = 9
DEFAULT_CANCELLATION = {"code": 1, "message": "The pipeline job was cancelled."}


class Execution(Protocol):
    def cancel(self) -> None: ...


class JobExecutor(Protocol):
    """Runs a created PipelineJob; `publish` merges fields (state, jobDetail, error...) into it."""

    def start(self, job: JsonDict, parent: str, publish: Callable[[JsonDict], None]) -> Execution: ...


def pipeline_state(state: str) -> str:
    """Accept ``"RUNNING"`` as shorthand for ``"PIPELINE_STATE_RUNNING"``."""
    full = state if state.startswith("PIPELINE_STATE_") else f"PIPELINE_STATE_{state}"
    if full not in PIPELINE_STATES:
        raise ValueError(f"Unknown pipeline state {state!r}; expected one of {PIPELINE_STATES}.")
    return full


def _as_error(error: JsonDict | str | None) -> JsonDict | None:
    if isinstance(error, str):
        return {"code": FAILED_PRECONDITION_CODE, "message": error}
    return copy.deepcopy(error)


@dataclass(frozen=True)
class JobScript:
    """How a pipeline job moves through states, see the module docstring.

    ``error`` becomes the job's ``error`` (google.rpc.Status) once it is
    FAILED or CANCELLED.  ``task_details`` replaces the generated
    ``jobDetail.taskDetails`` (camelCase ``PipelineTaskDetail`` dicts), e.g. to
    hand an Evaluator's output artifacts and metrics to the caller.
    """

    states: tuple[str, ...]
    error: JsonDict | None = None
    task_details: tuple[JsonDict, ...] | None = None

    @classmethod
    def build(
        cls,
        states: Sequence[str],
        error: JsonDict | str | None = None,
        task_details: Iterable[JsonDict] | None = None,
    ) -> JobScript:
        if not states:
            raise ValueError("A job script needs at least one state.")
        return cls(
            states=tuple(pipeline_state(s) for s in states),
            error=_as_error(error),
            task_details=None if task_details is None else tuple(copy.deepcopy(list(task_details))),
        )


def _task_caching(spec: JsonDict) -> dict[str, bool | None]:
    """``enableCache`` of every DAG task, keyed ``task`` (root) or ``component/task``.

    This is where ``PipelineJob(enable_caching=...)`` ends up: the SDK writes
    ``cachingOptions: {enableCache: <bool>}`` into every task of the root DAG
    and of every component DAG; with ``enable_caching=None`` the compiled
    per-task settings are sent unchanged.
    """
    result: dict[str, bool | None] = {}
    dags = [("", spec.get("root", {}))] + [
        (f"{name}/", component) for name, component in spec.get("components", {}).items()
    ]
    for prefix, component in dags:
        for task_name, task in component.get("dag", {}).get("tasks", {}).items():
            result[prefix + task_name] = task.get("cachingOptions", {}).get("enableCache")
    return result


@dataclass(frozen=True)
class PipelineJobView:
    """Deep-copied snapshot of a pipeline job for assertions.

    ``request`` is the PipelineJob body exactly as the client sent it (camelCase,
    int64 as strings, enums as ints); ``resource`` is what the server serves now.
    """

    name: str
    job_id: str
    request: JsonDict
    create_query: dict[str, str]
    resource: JsonDict
    get_count: int

    @property
    def state(self) -> str:
        return self.resource["state"]

    @property
    def labels(self) -> dict[str, str]:
        return self.request.get("labels", {})

    @property
    def service_account(self) -> str | None:
        return self.request.get("serviceAccount")

    @property
    def network(self) -> str | None:
        return self.request.get("network")

    @property
    def display_name(self) -> str | None:
        return self.request.get("displayName")

    @property
    def pipeline_spec(self) -> JsonDict:
        return self.request.get("pipelineSpec", {})

    @property
    def runtime_config(self) -> JsonDict:
        return self.request.get("runtimeConfig", {})

    @property
    def gcs_output_directory(self) -> str | None:
        return self.runtime_config.get("gcsOutputDirectory")

    @property
    def parameter_values(self) -> JsonDict:
        return self.runtime_config.get("parameterValues", {})

    @property
    def task_caching(self) -> dict[str, bool | None]:
        return _task_caching(self.pipeline_spec)

    @property
    def enable_caching(self) -> bool | None:
        """True/False if every task agrees, None if tasks differ or none is set."""
        values = set(self.task_caching.values())
        return values.pop() if len(values) == 1 else None


@dataclass(frozen=True)
class ScheduleView:
    """Deep-copied snapshot of a schedule; ``request`` is the create body as sent."""

    name: str
    request: JsonDict
    resource: JsonDict
    updates: tuple[tuple[tuple[str, ...], JsonDict], ...]

    @property
    def state(self) -> str:
        return self.resource["state"]

    @property
    def cron(self) -> str | None:
        return self.resource.get("cron")

    @property
    def max_concurrent_run_count(self) -> int:
        return int(self.resource.get("maxConcurrentRunCount", 0))

    @property
    def pipeline_job(self) -> JsonDict:
        """The ``createPipelineJobRequest.pipelineJob`` currently stored."""
        return self.resource.get("createPipelineJobRequest", {}).get("pipelineJob", {})


@dataclass
class _JobRecord:
    name: str
    job_id: str
    parent: str
    request: JsonDict
    create_query: dict[str, str]
    resource: JsonDict
    states: list[str]
    error: JsonDict | None
    task_details: tuple[JsonDict, ...] | None
    step: int = 0
    get_count: int = 0
    execution: Execution | None = None

    def view(self) -> PipelineJobView:
        return PipelineJobView(
            name=self.name,
            job_id=self.job_id,
            request=copy.deepcopy(self.request),
            create_query=dict(self.create_query),
            resource=copy.deepcopy(self.resource),
            get_count=self.get_count,
        )


@dataclass
class _ScheduleRecord:
    name: str
    parent: str
    request: JsonDict
    resource: JsonDict
    updates: list[tuple[tuple[str, ...], JsonDict]] = field(default_factory=list)

    def view(self) -> ScheduleView:
        return ScheduleView(
            name=self.name,
            request=copy.deepcopy(self.request),
            resource=copy.deepcopy(self.resource),
            updates=tuple((mask, copy.deepcopy(body)) for mask, body in self.updates),
        )


class PipelinesSurface:
    """State and handlers for ``pipelineJobs`` and ``schedules``.

    Test-facing methods (``script_job``, ``job``, ``trigger_schedule``...)
    take the server lock, so they are safe while the SDK is talking to the
    server from another thread.
    """

    def __init__(
        self,
        default_job_states: Sequence[str] = DEFAULT_JOB_STATES,
        default_page_size: int = 100,
        executor: JobExecutor | None = None,
    ) -> None:
        self.executor = executor
        self.default_job_states = tuple(pipeline_state(s) for s in default_job_states)
        self.default_page_size = default_page_size
        self._ctx: ServerContext | None = None
        self._jobs: dict[str, _JobRecord] = {}
        self._schedules: dict[str, _ScheduleRecord] = {}
        self._script_queue: deque[JobScript] = deque()
        self._scripts_by_id: dict[str, JobScript] = {}
        self._schedule_ids = itertools.count(1_000_001)
        self._run_ids = itertools.count(1)

    # -- wiring -------------------------------------------------------------

    def register(self, context: ServerContext) -> None:
        self._ctx = context
        parent = "projects/{project}/locations/{location}"
        job = parent + "/pipelineJobs/{job_id}"
        schedule = parent + "/schedules/{schedule_id}"
        add = context.router.add
        add("POST", parent + "/pipelineJobs", self._create_job, "pipelineJobs.create")
        add("GET", parent + "/pipelineJobs", self._list_jobs, "pipelineJobs.list")
        add("GET", job, self._get_job, "pipelineJobs.get")
        add("DELETE", job, self._delete_job, "pipelineJobs.delete")
        add("POST", job + ":cancel", self._cancel_job, "pipelineJobs.cancel")
        add("POST", parent + "/schedules", self._create_schedule, "schedules.create")
        add("GET", parent + "/schedules", self._list_schedules, "schedules.list")
        add("GET", schedule, self._get_schedule, "schedules.get")
        add("PATCH", schedule, self._patch_schedule, "schedules.patch")
        add("DELETE", schedule, self._delete_schedule, "schedules.delete")
        add("POST", schedule + ":pause", self._pause_schedule, "schedules.pause")
        add("POST", schedule + ":resume", self._resume_schedule, "schedules.resume")

    @property
    def ctx(self) -> ServerContext:
        if self._ctx is None:
            raise RuntimeError("PipelinesSurface is not registered with a server.")
        return self._ctx

    # -- test-facing API ----------------------------------------------------

    def script_job(
        self,
        states: Sequence[str],
        *,
        error: JsonDict | str | None = None,
        task_details: Iterable[JsonDict] | None = None,
        job_id: str | None = None,
    ) -> JobScript:
        """Script the states of a job (see module docstring).

        Without ``job_id`` the script is queued for the next created job
        (FIFO, also used by :meth:`trigger_schedule`).  With the ID of a job
        that does not exist yet, it applies when that job is created; for an
        existing job the next GET returns ``states[0]``.
        """
        script = JobScript.build(states, error, task_details)
        with self.ctx.lock:
            record = self._find_job(job_id) if job_id else None
            if record is not None:
                record.states = record.states[: record.step + 1] + list(script.states)
                record.error, record.task_details = script.error, script.task_details
            elif job_id:
                self._scripts_by_id[job_id] = script
            else:
                self._script_queue.append(script)
        return script

    def set_job_state(self, job: str, state: str, *, error: JsonDict | str | None = None) -> None:
        """Force a job into ``state`` now; it stays there on later GETs."""
        with self.ctx.lock:
            record = self._require_job(job)
            if error is not None:
                record.error = _as_error(error)
            record.states = record.states[: record.step] + [pipeline_state(state)]
            self._enter_state(record, record.states[record.step])

    def job(self, job: str) -> PipelineJobView:
        """Snapshot of a job by ID or full name (project ID or number)."""
        with self.ctx.lock:
            return self._require_job(job).view()

    def jobs(self) -> list[PipelineJobView]:
        with self.ctx.lock:
            return [record.view() for record in self._jobs.values()]

    def schedule(self, schedule: str) -> ScheduleView:
        """Snapshot of a schedule by numeric ID or full name."""
        with self.ctx.lock:
            return self._require_schedule(schedule).view()

    def schedules(self) -> list[ScheduleView]:
        with self.ctx.lock:
            return [record.view() for record in self._schedules.values()]

    def trigger_schedule(self, schedule: str) -> PipelineJobView:
        """Act as the scheduler: start one run of an ACTIVE schedule now."""
        with self.ctx.lock:
            record = self._require_schedule(schedule)
            if record.resource["state"] != SCHEDULE_ACTIVE:
                raise RuntimeError(f"Schedule {record.name} is {record.resource['state']}, not ACTIVE.")
            template = record.resource["createPipelineJobRequest"].get("pipelineJob", {})
            body = copy.deepcopy(template)
            body["scheduleName"] = record.name
            job = self._insert_job(record.parent, self._run_id(template), body, {})
            now = self.ctx.now()
            started = int(record.resource.get("startedRunCount", 0)) + 1
            record.resource["startedRunCount"] = str(started)
            record.resource["lastScheduledRunResponse"] = {
                "scheduledRunTime": now,
                "runResponse": job.name,
            }
            record.resource["updateTime"] = now
            return job.view()

    def reset(self) -> None:
        with self.ctx.lock:
            self._jobs.clear()
            self._schedules.clear()
            self._script_queue.clear()
            self._scripts_by_id.clear()

    # -- pipeline jobs ------------------------------------------------------

    def _create_job(self, request: Request) -> JsonDict:
        parent = self._parent(request)
        body = request.json_body()
        if "pipelineSpec" not in body and "templateUri" not in body:
            raise invalid_argument("PipelineJob needs pipelineSpec or templateUri.")
        job_id = request.query.get("pipelineJobId") or self._run_id(body)
        if not _JOB_ID_PATTERN.fullmatch(job_id):
            raise invalid_argument(f"Invalid pipelineJobId {job_id!r}.")
        return copy.deepcopy(self._insert_job(parent, job_id, body, request.query).resource)

    def _insert_job(self, parent: str, job_id: str, body: JsonDict, query: dict[str, str]) -> _JobRecord:
        name = f"{parent}/pipelineJobs/{job_id}"
        if name in self._jobs:
            raise ApiError(409, f"PipelineJob {name} already exists.")
        script = self._next_script(job_id)
        now = self.ctx.now()
        resource = copy.deepcopy(body)
        resource.pop("state", None)
        resource.update({"name": name, "createTime": now, "updateTime": now})
        if script is None:
            return self._insert_executed_job(parent, job_id, body, query, resource)
        record = _JobRecord(
            name=name,
            job_id=job_id,
            parent=parent,
            request=copy.deepcopy(body),
            create_query=dict(query),
            resource=resource,
            states=list(script.states),
            error=script.error,
            task_details=script.task_details,
        )
        self._jobs[name] = record
        self._enter_state(record, record.states[0])
        return record

    def _next_script(self, job_id: str) -> JobScript | None:
        """The job's script; None when the job is to be executed."""
        if job_id in self._scripts_by_id:
            return self._scripts_by_id.pop(job_id)
        if self._script_queue:
            return self._script_queue.popleft()
        return JobScript(self.default_job_states) if self.executor is None else None

    def _insert_executed_job(
        self, parent: str, job_id: str, body: JsonDict, query: dict[str, str], resource: JsonDict
    ) -> _JobRecord:
        assert self.executor is not None
        spec = body.get("pipelineSpec") or {}
        root = body.get("runtimeConfig", {}).get("gcsOutputDirectory") or spec.get("defaultPipelineRoot")
        if not root:
            raise invalid_argument("The pipeline root is not set: runtimeConfig.gcsOutputDirectory is required.")
        resource["state"] = PENDING
        record = _JobRecord(
            name=resource["name"],
            job_id=job_id,
            parent=parent,
            request=copy.deepcopy(body),
            create_query=dict(query),
            resource=resource,
            states=[PENDING],
            error=None,
            task_details=None,
        )
        self._jobs[record.name] = record

        def publish(fields: JsonDict) -> None:
            with self.ctx.lock:
                record.resource.update(copy.deepcopy(fields))

        record.execution = self.executor.start(copy.deepcopy(resource), parent, publish)
        return record

    def _get_job(self, request: Request) -> JsonDict:
        record = self._job_from_path(request)
        record.get_count += 1
        if record.execution is None and record.step < len(record.states) - 1:
            record.step += 1
            self._enter_state(record, record.states[record.step])
        return copy.deepcopy(record.resource)

    def _list_jobs(self, request: Request) -> JsonDict:
        parent = self._parent(request)
        items = [
            r.resource
            for r in self._jobs.values()
            if r.parent == parent and self._matches(r.resource, request.query.get("filter"))
        ]
        page, token = paginate(items, request, self.default_page_size)
        return _list_body("pipelineJobs", page, token)

    def _cancel_job(self, request: Request) -> JsonDict:
        record = self._job_from_path(request)
        state = record.resource["state"]
        if state in TERMINAL_STATES:
            raise failed_precondition(f"PipelineJob {record.name} is already in state {state}.")
        if record.execution is not None:
            record.resource["state"] = CANCELLING
            record.execution.cancel()
            return {}
        if CANCELLING not in record.states[record.step :]:
            record.states = record.states[: record.step + 1] + [CANCELLING, CANCELLED]
        return {}

    def _delete_job(self, request: Request) -> JsonDict:
        record = self._job_from_path(request)
        if record.resource["state"] not in TERMINAL_STATES:
            raise failed_precondition(f"PipelineJob {record.name} is not in a terminal state.")
        del self._jobs[record.name]
        op = self.ctx.operations.create(record.parent, metadata_type=OperationStore.DELETE_METADATA_TYPE)
        return op.to_json()

    def _enter_state(self, record: _JobRecord, state: str) -> None:
        resource = record.resource
        if resource.get("state") == state:
            return
        now = self.ctx.now()
        resource["state"] = state
        resource["updateTime"] = now
        if state not in NOT_STARTED_STATES:
            resource.setdefault("startTime", now)
            resource["jobDetail"] = self._job_detail(record, state, now)
        if state in TERMINAL_STATES:
            resource["endTime"] = now
        if state == FAILED:
            resource["error"] = _failure(record)
        elif state == CANCELLED:
            resource["error"] = record.error or copy.deepcopy(DEFAULT_CANCELLATION)

    def _job_detail(self, record: _JobRecord, state: str, now: str) -> JsonDict:
        spec = record.resource.get("pipelineSpec") or {}
        pipeline_name = spec.get("pipelineInfo", {}).get("name", record.job_id)
        contexts = record.parent + "/metadataStores/default/contexts/"
        detail: JsonDict = {
            "pipelineContext": {
                "name": contexts + pipeline_name,
                "displayName": pipeline_name,
            },
            "pipelineRunContext": {
                "name": contexts + record.job_id,
                "displayName": record.job_id,
            },
        }
        if record.task_details is not None:
            detail["taskDetails"] = _number_tasks(copy.deepcopy(list(record.task_details)))
        else:
            names = [pipeline_name, *dag_task_order(spec)]
            detail["taskDetails"] = _generated_tasks(names, state, record, now)
        return detail

    # -- schedules ----------------------------------------------------------

    def _create_schedule(self, request: Request) -> JsonDict:
        parent = self._parent(request)
        body = request.json_body()
        _validate_schedule(body)
        name = f"{parent}/schedules/{next(self._schedule_ids)}"
        now = self.ctx.now()
        resource = copy.deepcopy(body)
        resource.update(
            {
                "name": name,
                "state": SCHEDULE_ACTIVE,
                "createTime": now,
                "updateTime": now,
                "startTime": body.get("startTime", now),
                "startedRunCount": "0",
            }
        )
        self._schedules[name] = _ScheduleRecord(name, parent, copy.deepcopy(body), resource)
        return copy.deepcopy(resource)

    def _get_schedule(self, request: Request) -> JsonDict:
        return copy.deepcopy(self._schedule_from_path(request).resource)

    def _list_schedules(self, request: Request) -> JsonDict:
        parent = self._parent(request)
        items = [
            r.resource
            for r in self._schedules.values()
            if r.parent == parent and self._matches(r.resource, request.query.get("filter"))
        ]
        page, token = paginate(items, request, self.default_page_size)
        return _list_body("schedules", page, token)

    def _patch_schedule(self, request: Request) -> JsonDict:
        record = self._schedule_from_path(request)
        body = request.json_body()
        mask = tuple(snake_to_camel(p.strip()) for p in request.query.get("updateMask", "").split(",") if p.strip())
        if not mask:
            raise invalid_argument("updateMask is required.")
        unsupported = sorted(set(mask) - _SCHEDULE_MUTABLE_FIELDS)
        if unsupported:
            raise invalid_argument(f"Fields {unsupported} cannot be updated.")
        for path in mask:
            if path in body:
                record.resource[path] = copy.deepcopy(body[path])
            else:
                record.resource.pop(path, None)
        _validate_schedule(record.resource)
        record.resource["updateTime"] = self.ctx.now()
        record.updates.append((mask, copy.deepcopy(body)))
        return copy.deepcopy(record.resource)

    def _delete_schedule(self, request: Request) -> JsonDict:
        record = self._schedule_from_path(request)
        del self._schedules[record.name]
        op = self.ctx.operations.create(record.parent, metadata_type=OperationStore.DELETE_METADATA_TYPE)
        return op.to_json()

    def _pause_schedule(self, request: Request) -> JsonDict:
        record = self._schedule_from_path(request)
        self._transition_schedule(record, SCHEDULE_ACTIVE, SCHEDULE_PAUSED, "lastPauseTime")
        return {}

    def _resume_schedule(self, request: Request) -> JsonDict:
        record = self._schedule_from_path(request)
        self._transition_schedule(record, SCHEDULE_PAUSED, SCHEDULE_ACTIVE, "lastResumeTime")
        if "catchUp" in request.json_body():
            record.resource["catchUp"] = bool(request.json_body()["catchUp"])
        return {}

    def _transition_schedule(self, record: _ScheduleRecord, expected: str, target: str, time_field: str) -> None:
        state = record.resource["state"]
        if state != expected:
            raise failed_precondition(f"Schedule {record.name} is {state}, expected {expected}.")
        now = self.ctx.now()
        record.resource.update({"state": target, time_field: now, "updateTime": now})

    # -- lookups ------------------------------------------------------------

    def _parent(self, request: Request) -> str:
        return self.ctx.identity.location_path(request.params["project"], request.params["location"])

    def _matches(self, resource: JsonDict, expression: str | None) -> bool:
        return matches_filter(resource, expression, self.ctx.identity.canonical_name)

    def _job_from_path(self, request: Request) -> _JobRecord:
        name = f"{self._parent(request)}/pipelineJobs/{request.params['job_id']}"
        record = self._jobs.get(name)
        if record is None:
            raise not_found(name)
        return record

    def _schedule_from_path(self, request: Request) -> _ScheduleRecord:
        name = f"{self._parent(request)}/schedules/{request.params['schedule_id']}"
        record = self._schedules.get(name)
        if record is None:
            raise not_found(name)
        return record

    def _find_job(self, ref: str) -> _JobRecord | None:
        if "/" in ref:
            return self._jobs.get(self.ctx.identity.canonical_name(ref))
        return next((r for r in self._jobs.values() if r.job_id == ref), None)

    def _require_job(self, ref: str) -> _JobRecord:
        record = self._find_job(ref)
        if record is None:
            known = [r.job_id for r in self._jobs.values()]
            raise KeyError(f"No pipeline job {ref!r}; known: {known}")
        return record

    def _require_schedule(self, ref: str) -> _ScheduleRecord:
        if "/" in ref:
            record = self._schedules.get(self.ctx.identity.canonical_name(ref))
        else:
            record = next(
                (r for r in self._schedules.values() if r.name.endswith(f"/{ref}")),
                None,
            )
        if record is None:
            raise KeyError(f"No schedule {ref!r}; known: {list(self._schedules)}")
        return record

    def _run_id(self, body: JsonDict) -> str:
        """``{pipeline-name}-{timestamp}-{n}``, like Vertex-generated run IDs."""
        raw = body.get("pipelineSpec", {}).get("pipelineInfo", {}).get("name", "pipeline")
        slug = re.sub(r"[^-0-9a-z]+", "-", raw.lower()).strip("-") or "pipeline"
        stamp = self.ctx.clock().astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
        return f"{slug[:100]}-{stamp}-{next(self._run_ids)}"


def dag_task_order(spec: JsonDict) -> list[str]:
    """Root DAG tasks in dependency order (ties by name).

    ``pipelineSpec`` travels as a ``google.protobuf.Struct`` whose keys have
    no order, so the order of ``root.dag.tasks`` in the request is arbitrary;
    ``dependentTasks`` is the only stable ordering information.
    """
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    pending = {name: set(task.get("dependentTasks", [])) & set(tasks) for name, task in tasks.items()}
    order: list[str] = []
    while pending:
        ready = sorted(name for name, deps in pending.items() if not deps) or sorted(pending)[:1]
        for name in ready:
            pending.pop(name)
            order.append(name)
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def _validate_schedule(schedule: JsonDict) -> None:
    if not schedule.get("displayName"):
        raise invalid_argument("Schedule.displayName is required.")
    if not schedule.get("cron"):
        raise invalid_argument("Schedule.cron is required.")
    if "createPipelineJobRequest" not in schedule:
        raise invalid_argument("Schedule.createPipelineJobRequest is required.")
    try:
        max_concurrent = int(schedule.get("maxConcurrentRunCount", 0))
    except (TypeError, ValueError):
        max_concurrent = 0
    if max_concurrent <= 0:
        raise invalid_argument("Schedule.maxConcurrentRunCount must be positive.")


def _list_body(key: str, page: list[JsonDict], token: str | None) -> JsonDict:
    body: JsonDict = {key: copy.deepcopy(page)} if page else {}
    if token:
        body["nextPageToken"] = token
    return body


def _number_tasks(tasks: list[JsonDict]) -> list[JsonDict]:
    for index, task in enumerate(tasks, start=1):
        task.setdefault("taskId", str(index))
    return tasks


def _generated_tasks(names: list[str], state: str, record: _JobRecord, now: str) -> list[JsonDict]:
    """Root task plus one task per root DAG task, mirroring the job state.

    For a failed job the last task fails (carrying the job error) and the
    others succeed, which is the usual shape of a DAG that stopped.
    """
    task_state = _TASK_STATE.get(state, "RUNNING")
    start = record.resource.get("startTime", now)
    tasks: list[JsonDict] = []
    for index, name in enumerate(names, start=1):
        this_state = task_state
        if state == FAILED and 1 < index < len(names):
            this_state = "SUCCEEDED"
        task: JsonDict = {
            "taskId": str(index),
            "taskName": name,
            "state": this_state,
            "createTime": start,
            "startTime": start,
        }
        if index > 1:
            task["parentTaskId"] = "1"
        if state in TERMINAL_STATES:
            task["endTime"] = now
        if this_state == "FAILED":
            task["error"] = _failure(record)
        tasks.append(task)
    return tasks


def _failure(record: _JobRecord) -> JsonDict:
    """Scripted error, or the message Vertex uses when a DAG task fails."""
    if record.error is not None:
        return copy.deepcopy(record.error)
    tasks = dag_task_order(record.resource.get("pipelineSpec", {}))
    failed = tasks[-1] if tasks else "unknown"
    return {
        "code": FAILED_PRECONDITION_CODE,
        "message": "The DAG failed because some tasks failed. " f"The failed tasks are: [{failed}].",
    }
