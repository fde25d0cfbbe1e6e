"""Vertex ML Metadata, as far as pipeline runs use it: artifacts, their queries, and the cache.

Every output artifact of a pipeline task is recorded here with its schema title, URI, metadata
and state. The URI is the one the service generated unless the executor's executor_output.json
gives another (KFP's launcher merges the executor's artifact into the generated one: a non-empty
`uri` replaces it, `metadata` is merged; Google Cloud Pipeline Components rely on this to point
their outputs at the resources they create).

Resolver tasks query it with the filter the KFP compiler wrote into the spec
(`resolver.outputArtifactQueries`), in the AIP-160 syntax of `metadataStores.artifacts.list`:
terms `field=value` joined by AND, over `schema_title`, `state`, `name`, `display_name`, `uri`
and `metadata.<key>.<number_value|string_value|bool_value>`. The store answers like the service:
over every artifact of the project and region, newest first, whatever pipeline made it.

Executions that succeeded are recorded under their cache key, so that a task with caching on
reuses the outputs of an earlier execution with the same key in a run of the same pipeline.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

LIVE = "LIVE"
PENDING = "PENDING"

_TERM = re.compile(r'\s*([A-Za-z_][\w.]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s"]+)\s*')
_FIELDS = {"schema_title": "schemaTitle", "state": "state", "name": "name", "display_name": "displayName", "uri": "uri"}


class FilterError(ValueError):
    """A filter outside the supported syntax; the message says where."""


@dataclass(frozen=True)
class Term:
    path: tuple[str, ...]
    value: str

    def matches(self, artifact: JsonDict) -> bool:
        if self.path[0] == "metadata":
            if len(self.path) != 3:
                raise FilterError(f"expected metadata.<key>.<kind>_value, got {'.'.join(self.path)}")
            _, key, kind = self.path
            return _metadata_matches(artifact.get("metadata", {}).get(key), kind, self.value)
        return str(artifact.get(_FIELDS[self.path[0]], "")) == self.value


def parse_filter(expression: str) -> list[Term]:
    """`a="x" AND b=y` as terms; anything else (OR, NOT, functions, comparisons) is refused."""
    terms = []
    for part in re.split(r"\s+AND\s+", expression.strip()):
        match = _TERM.fullmatch(part)
        if not match:
            raise FilterError(f"unsupported filter term {part!r} in {expression!r}")
        raw_path, raw_value = match.groups()
        path = tuple(raw_path.split("."))
        if path[0] not in (*_FIELDS, "metadata"):
            raise FilterError(f"unknown artifact field {raw_path!r} in {expression!r}")
        value = bytes(raw_value[1:-1], "utf-8").decode("unicode_escape") if raw_value.startswith('"') else raw_value
        terms.append(Term(path, value))
    return terms


def _metadata_matches(value: Any, kind: str, expected: str) -> bool:
    if value is None:
        return False
    if kind == "number_value":
        try:
            return isinstance(value, int | float) and not isinstance(value, bool) and float(value) == float(expected)
        except ValueError:
            return False
    if kind == "string_value":
        return isinstance(value, str) and value == expected
    if kind == "bool_value":
        return isinstance(value, bool) and str(value).lower() == expected.lower()
    raise FilterError(f"unknown metadata value kind {kind!r}")


@dataclass
class CachedExecution:
    """The outputs a succeeded execution left, by output key."""

    execution: str
    task_name: str
    job: str
    outputs: dict[str, list[JsonDict]]
    parameters: dict[str, Any]


@dataclass
class MetadataStore:
    """Artifacts and cached executions of one project and region (thread-safe)."""

    parent: str  # projects/<number>/locations/<region>
    now: Callable[[], str]
    _artifacts: dict[str, JsonDict] = field(default_factory=dict)
    _cache: dict[tuple[str, str], CachedExecution] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(7_300_000_000_000_000_001))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prefix(self) -> str:
        return f"{self.parent}/metadataStores/default"

    def new_name(self, kind: str) -> str:
        with self._lock:
            return f"{self.prefix}/{kind}/{next(self._ids)}"

    def create_artifact(self, schema_title: str, uri: str, display_name: str, state: str = PENDING) -> JsonDict:
        now = self.now()
        artifact = {
            "name": self.new_name("artifacts"),
            "displayName": display_name,
            "uri": uri,
            "schemaTitle": schema_title,
            "schemaVersion": "0.0.1",
            "state": state,
            "metadata": {},
            "createTime": now,
            "updateTime": now,
        }
        with self._lock:
            self._artifacts[artifact["name"]] = artifact
        return copy.deepcopy(artifact)

    def update_artifact(
        self,
        name: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        state: str | None = None,
        uri: str | None = None,
    ) -> JsonDict:
        """`uri`: an executor may point its output elsewhere; a non-empty one replaces the generated URI."""
        with self._lock:
            artifact = self._artifacts[name]
            if uri:
                artifact["uri"] = uri
            if metadata is not None:
                artifact["metadata"] = copy.deepcopy(dict(metadata))
            if state is not None:
                artifact["state"] = state
            artifact["updateTime"] = self.now()
            return copy.deepcopy(artifact)

    def artifact(self, name: str) -> JsonDict:
        with self._lock:
            return copy.deepcopy(self._artifacts[name])

    def artifacts(self) -> list[JsonDict]:
        with self._lock:
            return [copy.deepcopy(artifact) for artifact in self._artifacts.values()]

    def query(self, expression: str) -> list[JsonDict]:
        """Artifacts matching `expression`, newest first."""
        terms = parse_filter(expression)
        with self._lock:
            found = [a for a in self._artifacts.values() if all(term.matches(a) for term in terms)]
        found.sort(key=lambda a: (a["createTime"], int(a["name"].rsplit("/", 1)[1])), reverse=True)
        return [copy.deepcopy(artifact) for artifact in found]

    def cached(self, pipeline_name: str, cache_key: str) -> CachedExecution | None:
        with self._lock:
            hit = self._cache.get((pipeline_name, cache_key))
            return copy.deepcopy(hit) if hit else None

    def remember(self, pipeline_name: str, cache_key: str, execution: CachedExecution) -> None:
        with self._lock:
            self._cache[(pipeline_name, cache_key)] = copy.deepcopy(execution)
