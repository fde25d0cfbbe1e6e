"""Stateful fake of the Vertex AI v1 REST API on loopback, for the real SDK.

Point ``google-cloud-aiplatform`` at it with::

    aiplatform.init(project="test-project", location="us-central1",
                    api_endpoint=server.base_url, api_transport="rest",
                    credentials=AnonymousCredentials(), staging_bucket="gs://...")

(``tools.standins.fixtures.vertex_standins`` does this plus the storage
emulator).  Surfaces served today: pipelineJobs, schedules and the
long-running operations they create; see ``vertex_pipelines.py``.  Further
surfaces plug in through :meth:`FakeVertexServer.install` or
:meth:`FakeVertexServer.add_route` without changes here: models, endpoints
and predictions (``vertex_models.py``) are installed by ``vertex_standins()``
and by the standalone server below.

What retries on 429/503 over the REST transport (SDK 1.70, api-core 2.24)
-------------------------------------------------------------------------
The GAPIC REST methods for pipelines and schedules have *no* default retry
(``default_retry`` is unset in their transports), so a 429/503 on create,
list, cancel, update, pause, resume or delete surfaces immediately as
``google.api_core.exceptions.TooManyRequests`` / ``ServiceUnavailable``.
The one exception is the SDK's resource *getter*: ``base._get_gca_resource``
(used by ``PipelineJob.get``, ``PipelineJobSchedule.get``, ``job.state``,
``job.wait()``, ``schedule.cron``...) passes ``retry=base._DEFAULT_RETRY``,
an ``api_core.retry.Retry()`` whose predicate ``if_transient_error`` retries
500, 429, 503 and connection errors with jittered exponential backoff
(``uniform(0, 1s)``, then ``uniform(0, 2s)``, ... up to 120 s in total).
Polling a long-running operation (``operation.result()``, e.g. after
``schedule.delete()``) goes through api-core's REST operations client,
``GET /ui/{name=projects/*/locations/*/operations/*}``, whose
``get_operation`` default retry covers 503 only (0.5 s initial, 10 s
deadline); 429 and 500 there raise.  Measured matrix, one injected error
each: retried = PipelineJob get/state/wait, schedule get, operation get
(503 only); raised = pipeline job create, list, cancel; schedule create,
update, pause.  A failed create leaves the SDK object intact, so calling
``job.submit()`` again works.

Fault injection and request log
-------------------------------
``fail_next(method, path_regex, status, times=N)`` answers the next N
matching requests with an error (Google JSON error body) *before* routing, so
they do not change state (a failed GET does not advance a job).  Every
request is appended to :attr:`FakeVertexServer.requests` with the response
status, including injected faults.

To keep a whole local cloud up for commands run by hand, use
``python -m tools.rehearsal --env dev --serve`` (``make rehearse SERVE=1``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from tools.standins.vertex_core import (
    API_VERSION_PREFIXES,
    ApiError,
    Handler,
    JsonDict,
    OperationStore,
    ProjectIdentity,
    Request,
    Response,
    Route,
    ServerContext,
    Surface,
    error_body,
    utc_now,
)
from tools.standins.vertex_pipelines import (
    DEFAULT_JOB_STATES,
    JobExecutor,
    JobScript,
    PipelineJobView,
    PipelinesSurface,
    ScheduleView,
)

_LOGGER = logging.getLogger(__name__)

S = TypeVar("S", bound=Surface)


@dataclass
class Fault:
    """An injected error; ``hits`` counts how many requests it has answered."""

    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int
    body: Any
    headers: dict[str, str]
    hits: int = 0

    @property
    def remaining(self) -> int:
        return self.times - self.hits

    def matches(self, method: str, raw_path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and self.path_regex.search(raw_path) is not None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; ``path`` is the raw URL path (``/v1/projects/...``)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int
    route: str | None
    fault: bool = False


@dataclass
class _Log:
    entries: list[RecordedRequest] = field(default_factory=list)
    handler_errors: list[str] = field(default_factory=list)


class FakeVertexServer:
    """Fake Vertex AI REST server; use as a context manager or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        project_id: str = "test-project",
        project_number: str = "123456789012",
        name_with: Literal["number", "id"] = "number",
        default_job_states: Sequence[str] = DEFAULT_JOB_STATES,
        clock: Callable[[], dt.datetime] = utc_now,
        surfaces: Iterable[Surface] = (),
        pipelines_executor: JobExecutor | None = None,
    ) -> None:
        """`pipelines_executor` runs created pipeline jobs (see pipeline_runs.py); without one, jobs
        follow scripted states."""
        if name_with not in ("number", "id"):
            raise ValueError("name_with must be 'number' or 'id'.")
        identity = ProjectIdentity(project_id, project_number, name_with)
        self.context = ServerContext(identity, clock)
        self.host = host
        self._requested_port = port
        self._faults: list[Fault] = []
        self._log = _Log()
        self._httpd: _VertexHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._surfaces: list[Surface] = []
        self.pipelines = self.install(PipelinesSurface(default_job_states, executor=pipelines_executor))
        for surface in surfaces:
            self.install(surface)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> FakeVertexServer:
        if self._httpd is not None:
            return self
        self._httpd = _VertexHTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-vertex-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeVertexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeVertexServer is not running.")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Value for ``aiplatform.init(api_endpoint=...)``."""
        return f"http://{self.host}:{self.port}"

    # -- extension points ---------------------------------------------------

    def install(self, surface: S) -> S:
        """Register a surface (an object with ``register(context)``) and return it."""
        with self.context.lock:
            surface.register(self.context)
            self._surfaces.append(surface)
        return surface

    def reset(self) -> None:
        """Forget faults, the request log and the state of surfaces that have ``reset()``."""
        with self.context.lock:
            self._faults.clear()
            self._log = _Log()
            for surface in self._surfaces:
                reset = getattr(surface, "reset", None)
                if callable(reset):
                    reset()

    def add_route(
        self,
        method: str,
        template: str | re.Pattern[str],
        handler: Handler,
        name: str | None = None,
    ) -> Route:
        """Add a single route; ``template`` is relative to the version prefix."""
        with self.context.lock:
            return self.context.router.add(method, template, handler, name)

    @property
    def identity(self) -> ProjectIdentity:
        return self.context.identity

    @property
    def operations(self) -> OperationStore:
        return self.context.operations

    # -- fault injection ----------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests matching ``method`` and ``path_regex``
        (``re.search`` on the raw path, e.g. ``r"/pipelineJobs/[^/:]+$"``) with
        ``status``; ``method="*"`` matches any method.  ``body`` defaults to a
        Google JSON error.  Faults are consumed in the order they were added.
        """
        fault = Fault(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            times=times,
            body=body if body is not None else error_body(status, f"Injected fault ({status})."),
            headers=dict(headers or {}),
        )
        with self.context.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.context.lock:
            self._faults.clear()

    # -- request log --------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.context.lock:
            return list(self._log.entries)

    def find_requests(self, method: str | None = None, path_regex: str | None = None) -> list[RecordedRequest]:
        pattern = re.compile(path_regex) if path_regex else None
        return [
            entry
            for entry in self.requests
            if (method is None or entry.method == method.upper()) and (pattern is None or pattern.search(entry.path))
        ]

    def clear_requests(self) -> None:
        with self.context.lock:
            self._log.entries.clear()

    @property
    def handler_errors(self) -> list[str]:
        """Tracebacks of handler bugs (answered as HTTP 500)."""
        with self.context.lock:
            return list(self._log.handler_errors)

    # -- pipelines shortcuts ------------------------------------------------

    def script_job(
        self,
        states: Sequence[str],
        *,
        error: JsonDict | str | None = None,
        task_details: Iterable[JsonDict] | None = None,
        job_id: str | None = None,
    ) -> JobScript:
        """See :meth:`PipelinesSurface.script_job`."""
        return self.pipelines.script_job(states, error=error, task_details=task_details, job_id=job_id)

    def set_job_state(self, job: str, state: str, *, error: JsonDict | str | None = None) -> None:
        self.pipelines.set_job_state(job, state, error=error)

    def job(self, job: str) -> PipelineJobView:
        return self.pipelines.job(job)

    def jobs(self) -> list[PipelineJobView]:
        return self.pipelines.jobs()

    def schedule(self, schedule: str) -> ScheduleView:
        return self.pipelines.schedule(schedule)

    def trigger_schedule(self, schedule: str) -> PipelineJobView:
        return self.pipelines.trigger_schedule(schedule)

    # -- dispatch (transport independent) -----------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> Response:
        """Serve one request; ``target`` is the request-target (path and query)."""
        method = method.upper()
        split = urlsplit(target)
        raw_path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        body, parse_error = _parse_json(raw_body)
        fault = self._take_fault(method, raw_path)
        route_name: str | None = "fault" if fault is not None else None
        if fault is not None:
            response = Response(fault.status, fault.body, dict(fault.headers))
        elif parse_error is not None:
            response = parse_error.to_response()
        else:
            response, route_name = self._route(method, raw_path, query, body, headers)
        entry = RecordedRequest(
            method=method,
            path=raw_path,
            query=query,
            body=body,
            headers=headers,
            status=response.status,
            route=route_name,
            fault=fault is not None,
        )
        with self.context.lock:
            self._log.entries.append(entry)
        return response

    def _take_fault(self, method: str, raw_path: str) -> Fault | None:
        with self.context.lock:
            for fault in self._faults:
                if fault.matches(method, raw_path):
                    fault.hits += 1
                    return fault
        return None

    def _route(
        self,
        method: str,
        raw_path: str,
        query: dict[str, str],
        body: Any,
        headers: dict[str, str],
    ) -> tuple[Response, str | None]:
        version, _, path = raw_path.lstrip("/").partition("/")
        if version not in API_VERSION_PREFIXES or not path:
            return ApiError(404, f"Not a Vertex AI API path: {raw_path!r}.").to_response(), None
        request = Request(method, raw_path, path, version, query, body, headers)
        with self.context.lock:
            try:
                route, request.params = self.context.router.resolve(method, path)
            except ApiError as exc:
                return exc.to_response(), None
            try:
                result = route.handler(request)
            except ApiError as exc:
                return exc.to_response(), route.name
            except Exception:  # a bug in a handler: answer 500 and keep it visible
                trace = traceback.format_exc()
                self._log.handler_errors.append(trace)
                _LOGGER.error("fake Vertex handler %s failed:\n%s", route.name, trace)
                return Response(500, error_body(500, f"Fake server bug in {route.name}.")), route.name
        response = result if isinstance(result, Response) else Response(200, result)
        return response, route.name


def _parse_json(raw_body: bytes) -> tuple[Any, ApiError | None]:
    """Decode a request body; an undecodable body becomes a 400 (and ``None``)."""
    if not raw_body.strip():
        return None, None
    try:
        return json.loads(raw_body), None
    except ValueError as exc:
        return None, ApiError(400, f"Invalid JSON body: {exc}")


class _VertexHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: FakeVertexServer) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _VertexHTTPServer
    # HTTP/1.0: one request per connection, so stop() never waits on idle keep-alives.
    protocol_version = "HTTP/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        response = self.server.app.handle(self.command, self.path, dict(self.headers.items()), raw_body)
        payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    # Names required by BaseHTTPRequestHandler.
    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, fmt: str, *args: object) -> None:
        _LOGGER.debug("%s - %s", self.address_string(), fmt % args)
