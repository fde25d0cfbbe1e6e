"""Transport-independent building blocks of the fake Vertex AI REST API.

The HTTP server (``vertex_server.py``) turns every HTTP request into a
:class:`Request`, asks the :class:`Router` for a handler and serialises the
returned :class:`Response`.  Resource families ("surfaces": pipelines and
schedules today, models and endpoints later) live in their own modules and
only depend on this one: a surface receives a :class:`ServerContext` in its
``register`` method and adds routes to ``context.router``.  A new surface
therefore never needs to touch the HTTP or fault-injection code.

Conventions shared by all surfaces
----------------------------------
* Paths are matched *without* the API version prefix.  The REST transport
  of google-cloud-aiplatform talks to ``/v1/...``; its long-running
  operations client uses ``/ui/...`` URIs; ``/v1beta1/...`` is accepted too.
* ``projects/{project}`` accepts the project ID or the project number.
  Resource names in responses use the project *number* by default, like the
  real service does (see :class:`ProjectIdentity`).
* JSON is camelCase, int64 values may arrive as strings, enums arrive as
  integers (the SDK sends ``$alt=json;enum-encoding=int``).  Responses use
  enum *names*, which ``json_format.Parse`` accepts as well and which keeps
  stored state readable in assertions.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, Protocol

JsonDict = dict[str, Any]

API_VERSION_PREFIXES = ("v1", "v1beta1", "ui")

# Canonical google.rpc.Code names used in error bodies, keyed by HTTP status.
_STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# google.rpc.Code numbers, used for the ``error`` field of jobs/operations.
RPC_CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}

TYPE_URL_PREFIX = "type.googleapis.com/"
EMPTY_TYPE = TYPE_URL_PREFIX + "google.protobuf.Empty"


def error_body(http_status: int, message: str, status: str | None = None) -> JsonDict:
    """Google JSON error envelope, as ``api_core`` ``from_http_response`` reads it."""
    return {
        "error": {
            "code": http_status,
            "message": message,
            "status": status or _STATUS_NAMES.get(http_status, HTTPStatus(http_status).name),
        }
    }


class ApiError(Exception):
    """Raised by handlers to answer with a Google-style error response."""

    def __init__(self, http_status: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.status = status

    def to_response(self) -> Response:
        return Response(self.http_status, error_body(self.http_status, self.message, self.status))


def not_found(name: str) -> ApiError:
    return ApiError(404, f"Resource {name!r} was not found.")


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, message, "INVALID_ARGUMENT")


def failed_precondition(message: str) -> ApiError:
    return ApiError(400, message, "FAILED_PRECONDITION")


@dataclass
class Request:
    """One parsed HTTP request, as handlers see it.

    ``path`` is the resource path without leading slash and version prefix
    (``projects/p/locations/l/pipelineJobs/j``); ``params`` holds the named
    groups captured by the matched route.
    """

    method: str
    raw_path: str
    path: str
    api_version: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    def json_body(self) -> JsonDict:
        """The body as a JSON object (empty dict when absent)."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise invalid_argument("Request body must be a JSON object.")
        return self.body


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


HandlerResult = Response | JsonDict
Handler = Callable[[Request], HandlerResult]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def compile_template(template: str) -> re.Pattern[str]:
    """Turn ``projects/{project}/locations/{location}/x/{id}:verb`` into a regex.

    Each ``{name}`` matches one path segment (no ``/`` and no ``:``) and is
    captured under that name.
    """
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/:]+)")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


class Router:
    """Ordered routing table: first route whose method and pattern match wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str | re.Pattern[str],
        handler: Handler,
        name: str | None = None,
    ) -> Route:
        pattern = template if isinstance(template, re.Pattern) else compile_template(template)
        default_name = template if isinstance(template, str) else pattern.pattern
        route = Route(method.upper(), pattern, handler, name or default_name)
        self._routes.append(route)
        return route

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if route.method == method:
                return route, {k: v for k, v in match.groupdict().items() if v is not None}
        if path_matched:
            raise ApiError(405, f"Method {method} is not allowed on {path!r}.")
        raise ApiError(
            501,
            f"The fake Vertex AI server has no handler for {method} {path!r}; "
            "add a route in a surface module (see tools/standins/vertex_core.py).",
        )


@dataclass(frozen=True)
class ProjectIdentity:
    """Maps the project ID and project number of the fake project onto each other.

    The SDK sends whatever the caller configured (usually the ID); the real
    service answers with the number.  ``name_with`` picks the form used in
    resource names returned by the server.  Unknown projects are accepted
    as-is so tests can use several projects.
    """

    project_id: str = "test-project"
    project_number: str = "123456789012"
    name_with: Literal["number", "id"] = "number"

    def canonical(self, project: str) -> str:
        if project in (self.project_id, self.project_number):
            return self.project_number if self.name_with == "number" else self.project_id
        return project

    def location_path(self, project: str, location: str) -> str:
        return f"projects/{self.canonical(project)}/locations/{location}"

    def canonical_name(self, name: str) -> str:
        """Rewrite the project segment of a full resource name to its canonical form."""
        match = re.match(r"projects/([^/]+)(/.*)?$", name)
        if match is None:
            return name
        return f"projects/{self.canonical(match.group(1))}{match.group(2) or ''}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    """Timestamp in the JSON form of ``google.protobuf.Timestamp``."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snake_to_camel(path: str) -> str:
    """``max_concurrent_run_count`` -> ``maxConcurrentRunCount``, per dotted part."""
    return ".".join(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), segment) for segment in path.split("."))


@dataclass
class OperationRecord:
    name: str
    metadata: JsonDict
    response: JsonDict | None
    error: JsonDict | None
    polls_until_done: int
    polls: int = 0

    @property
    def done(self) -> bool:
        return self.polls >= self.polls_until_done

    def to_json(self) -> JsonDict:
        body: JsonDict = {
            "name": self.name,
            "metadata": self.metadata,
            "done": self.done,
        }
        if self.done:
            if self.error is not None:
                body["error"] = self.error
            else:
                body["response"] = self.response or {"@type": EMPTY_TYPE}
        return body


class OperationStore:
    """``google.longrunning.Operation`` resources served under ``.../operations/{id}``.

    ``polls_until_done`` (default for new operations) lets tests make the
    client poll: with N > 0 the creating call returns the operation with
    ``done: false`` and it turns done on the N-th GET.  With 0 (default) it
    is returned done, so ``operation.result()`` does not poll at all.
    """

    GENERIC_METADATA_TYPE = TYPE_URL_PREFIX + "google.cloud.aiplatform.v1.GenericOperationMetadata"
    DELETE_METADATA_TYPE = TYPE_URL_PREFIX + "google.cloud.aiplatform.v1.DeleteOperationMetadata"

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._ids = itertools.count(1000)
        self._ops: dict[str, OperationRecord] = {}
        self.polls_until_done = 0

    def create(
        self,
        owner: str,
        *,
        metadata_type: str,
        response: JsonDict | None = None,
        error: JsonDict | None = None,
        polls_until_done: int | None = None,
    ) -> OperationRecord:
        """Start an operation named ``{owner}/operations/{n}``.

        ``owner`` is a location path or a resource name; ``metadata_type`` is a
        type URL whose message carries ``genericMetadata`` (true for all
        Vertex AI v1 operation metadata types).
        """
        now = rfc3339(self._clock())
        generic = {"createTime": now, "updateTime": now}
        metadata = {"@type": metadata_type}
        if metadata_type == self.GENERIC_METADATA_TYPE:
            metadata.update(generic)
        else:
            metadata["genericMetadata"] = generic
        record = OperationRecord(
            name=f"{owner}/operations/{next(self._ids)}",
            metadata=metadata,
            response=response,
            error=error,
            polls_until_done=self.polls_until_done if polls_until_done is None else polls_until_done,
        )
        self._ops[record.name] = record
        return record

    def poll(self, name: str) -> JsonDict:
        record = self._ops.get(name)
        if record is None:
            raise not_found(name)
        if not record.done:
            record.polls += 1
        return record.to_json()

    def get(self, name: str) -> OperationRecord | None:
        return self._ops.get(name)

    def all(self) -> list[OperationRecord]:
        return list(self._ops.values())


class ServerContext:
    """Everything a surface needs from the server, minus HTTP.

    All handlers run while holding ``lock`` (a re-entrant lock), so surfaces
    can mutate their state without further synchronisation; helpers a
    surface exposes to tests should take the same lock.
    """

    def __init__(
        self,
        identity: ProjectIdentity,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.identity = identity
        self.clock = clock
        self.lock = threading.RLock()
        self.router = Router()
        self.operations = OperationStore(clock)
        self._register_operation_routes()

    def now(self) -> str:
        return rfc3339(self.clock())

    def _register_operation_routes(self) -> None:
        pattern = re.compile(
            r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"
            r"(?:(?P<owner>.+)/)?operations/(?P<operation_id>[^/:]+)"
        )
        self.router.add("GET", pattern, self._get_operation, name="operations.get")

    def _get_operation(self, request: Request) -> JsonDict:
        return self.operations.poll(self.identity.canonical_name(request.path))


class Surface(Protocol):
    """A family of REST resources plugged into the fake server."""

    def register(self, context: ServerContext) -> None:
        """Add routes to ``context.router`` and keep ``context`` for later use."""
        ...


def paginate(items: list[JsonDict], request: Request, default_page_size: int) -> tuple[list[JsonDict], str | None]:
    """Offset-based paging with opaque-looking ``pageToken`` values."""
    token = request.query.get("pageToken") or "0"
    if not token.isdigit():
        raise invalid_argument(f"Invalid page token {token!r}.")
    start = int(token)
    size = int(request.query.get("pageSize") or 0) or default_page_size
    page = items[start : start + size]
    next_token = str(start + size) if start + size < len(items) else None
    return page, next_token


_FILTER_CLAUSE = re.compile(r'^\s*(?P<key>[A-Za-z_][\w.]*)\s*(?P<op>!=|=)\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>\S+))\s*$')


def matches_filter(
    resource: JsonDict,
    expression: str | None,
    normalize_value: Callable[[str], str] = lambda value: value,
) -> bool:
    """Tiny subset of the AIP-160 filter language.

    Supports ``key = value`` / ``key != value`` clauses joined by ``AND``,
    keys in snake_case or camelCase, dotted keys into maps (``labels.env``).
    Clauses it cannot parse are ignored (treated as true) so that richer
    filters sent by the SDK are tolerated rather than rejected.
    ``normalize_value`` is applied to both sides (e.g. to canonicalise
    resource names given with a project ID instead of a number).
    """
    if not expression:
        return True
    for clause in re.split(r"\s+AND\s+", expression.strip()):
        match = _FILTER_CLAUSE.match(clause)
        if match is None:
            continue
        expected = match.group("quoted") if match.group("quoted") is not None else match.group("bare")
        head, _, tail = match.group("key").partition(".")
        actual = _lookup(resource, snake_to_camel(head) + (f".{tail}" if tail else ""))
        equal = actual is not None and normalize_value(str(actual)) == normalize_value(expected)
        if equal != (match.group("op") == "="):
            return False
    return True


def _lookup(resource: JsonDict, dotted: str) -> Any:
    value: Any = resource
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
