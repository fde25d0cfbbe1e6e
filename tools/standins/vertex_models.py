"""Model Registry, endpoints and online prediction surface of the fake Vertex AI v1 REST API.

Routes, relative to ``/v1/``, with ``{parent}`` = ``projects/{project}/locations/{location}``:

=======  ==============================================  =========================================
POST     {parent}/models:upload                          upload -> Operation (UploadModelResponse)
GET      {parent}/models/ID[@VERSION|@ALIAS]             get one version (no suffix: ``default``)
GET      {parent}/models                                 list: the default version of each model
GET      {parent}/models/ID:listVersions                 every version of a model
POST     {parent}/models/ID@VERSION:mergeVersionAliases  add ``alias`` / remove ``-alias`` -> Model
PATCH    {parent}/models/ID[@VERSION]?updateMask=...     labels, descriptions, displayName -> Model
POST     {parent}/endpoints?endpointId=ID                create -> Operation (Endpoint)
GET      {parent}/endpoints/ID                           get
GET      {parent}/endpoints                              list
PATCH    {parent}/endpoints/ID?updateMask=...            trafficSplit, displayName, ... -> Endpoint
POST     {parent}/endpoints/ID:deployModel               -> Operation (DeployModelResponse)
POST     {parent}/endpoints/ID:undeployModel             -> Operation (UndeployModelResponse)
POST     {parent}/endpoints/ID:predict                   -> PredictResponse
=======  ==============================================  =========================================

Versions: the first upload of a model (``modelId``) creates version 1, which always carries the
``default`` alias; an upload with ``parentModel`` adds the next version. Aliases are unique within a
model: giving one to a version takes it from the version that held it; ``-alias`` removes it; the
``default`` alias can be moved but not removed. Labels belong to each version.

Endpoints follow the v1 traffic rules: a ``trafficSplit`` sums to 100 (or is empty when nothing is
to receive traffic), ``"0"`` in a deployModel split stands for the model being deployed, a model is
undeployed only when it has no traffic left after the call (or is the last one), and entries with 0%
are not kept. A deployment shows in ``deployedModels`` as soon as deployModel is called; the traffic
split changes when its operation completes. :meth:`ModelsSurface.fail_next_deploy` makes the next
deployModel operation end with an error instead: the deployment then disappears again and the
endpoint is exactly as before.

Deployed models are served by their real serving container (``serving_replicas.py``): deployModel
starts the version's ``containerSpec.imageUri`` through a ``ContainerRuntime`` (as the deployed
model's ``serviceAccount``) with the ``AIP_*`` environment Vertex AI sets, ``AIP_STORAGE_URI`` being
the version's ``artifactUri``. Its operation completes when the container's health route answers
200, and fails with FAILED_PRECONDITION ("Model server exited unexpectedly" / "never became ready",
with the container's last log lines) otherwise; an image the runtime does not know fails it too.
Undeploying, :meth:`ModelsSurface.reset` and :meth:`ModelsSurface.close` stop the containers.

predict picks a deployed model at random in proportion to the traffic split (as the service does;
the ``random.Random`` is seeded, see :meth:`ModelsSurface.seed_routing`), forwards
``{"instances", "parameters"}`` to its container's predict route, numbers printed as the service
prints a ``google.protobuf.Value`` (:func:`value_json`), and answers with the container's
``predictions``. Whatever the model accepts or refuses is the model's decision: a container's error
answer (TF Serving's HTTP 400 ``{"error": ...}``) reaches the client as an HTTP 400 error with status
FAILED_PRECONDITION whose message is the container's response body, verbatim (as in
googleapis/python-aiplatform#514); api_core raises ``BadRequest`` for it over REST and
``FailedPrecondition`` over gRPC. A container that cannot be reached gives 503 UNAVAILABLE. Every
prediction is recorded (:attr:`ModelsSurface.predictions`): which deployed model answered, the
container's status and latency.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from tools.standins.containers import ContainerRuntime, ImageNotFound
from tools.standins.serving_replicas import (
    Replica,
    ReplicaFailed,
    ReplicaPool,
    ReplicaUnreachable,
    serving_container,
)
from tools.standins.vertex_core import (
    TYPE_URL_PREFIX,
    ApiError,
    JsonDict,
    OperationRecord,
    Request,
    ServerContext,
    failed_precondition,
    invalid_argument,
    matches_filter,
    not_found,
    paginate,
    snake_to_camel,
)

V1 = TYPE_URL_PREFIX + "google.cloud.aiplatform.v1."
DEFAULT_ALIAS = "default"
ALIAS_PATTERN = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
MODEL_ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
# v1 CreateEndpointRequest.endpoint_id: a letter then up to 63 of [a-z0-9-], or up to 9 digits.
ENDPOINT_ID_PATTERN = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")

_MODEL_MUTABLE_FIELDS = frozenset({"displayName", "description", "labels", "versionDescription"})
_ENDPOINT_MUTABLE_FIELDS = frozenset({"displayName", "description", "labels", "trafficSplit"})

# A deploy operation is completed by its container's health check, never by being polled.
_UNTIL_READY = 2**62
# google.rpc.Code of a failed deployment ("FailedPrecondition: 400 Model server exited unexpectedly").
_DEPLOY_FAILED = 9
_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class PredictionRecord:
    """One predict request: the deployed model that answered, its container's HTTP status
    (503 when the container could not be reached) and the time the container took."""

    endpoint: str
    deployed_model_id: str
    version_id: str
    instances: int
    status: int
    latency_ms: float


@dataclass(frozen=True)
class ModelView:
    """Deep-copied snapshot of a model: every version resource, in version order."""

    name: str
    versions: tuple[JsonDict, ...]

    @property
    def version_ids(self) -> list[str]:
        return [version["versionId"] for version in self.versions]

    @property
    def aliases(self) -> dict[str, str]:
        """alias -> version ID."""
        return {alias: v["versionId"] for v in self.versions for alias in v.get("versionAliases", [])}

    def version(self, version_id: str) -> JsonDict:
        return next(v for v in self.versions if v["versionId"] == str(version_id))


@dataclass(frozen=True)
class DeploymentView:
    deployed_model_id: str
    model: str
    version_id: str
    traffic: int


@dataclass(frozen=True)
class EndpointView:
    """Deep-copied snapshot of an endpoint."""

    name: str
    resource: JsonDict

    @property
    def traffic_split(self) -> dict[str, int]:
        return dict(self.resource.get("trafficSplit", {}))

    @property
    def deployments(self) -> list[DeploymentView]:
        split = self.traffic_split
        return [
            DeploymentView(d["id"], d["model"], d["modelVersionId"], split.get(d["id"], 0))
            for d in self.resource.get("deployedModels", [])
        ]

    @property
    def traffic_by_version(self) -> dict[str, int]:
        """version ID -> percent of traffic, for every deployed version (0 included)."""
        return {d.version_id: d.traffic for d in self.deployments}


@dataclass
class _Model:
    name: str
    parent: str
    versions: dict[str, JsonDict] = field(default_factory=dict)

    def view(self) -> ModelView:
        ordered = sorted(self.versions.values(), key=lambda v: int(v["versionId"]))
        return ModelView(self.name, tuple(copy.deepcopy(ordered)))

    def holder_of(self, alias: str) -> JsonDict | None:
        return next((v for v in self.versions.values() if alias in v.get("versionAliases", [])), None)


@dataclass
class _Endpoint:
    name: str
    parent: str
    resource: JsonDict


@dataclass
class _PendingDeploy:
    operation: OperationRecord
    endpoint: str
    deployed_model_id: str
    traffic_split: dict[str, int] | None


class ModelsSurface:
    """State and handlers for models, endpoints and predictions.

    Serving containers are started by ``replicas`` (a :class:`ReplicaPool`, e.g. one that keeps
    replicas warm across a test session), or by a pool of its own on ``runtime``; with neither,
    every deployment fails as an image pull would. Call :meth:`close` when done: the server's
    ``stop()`` does not know its surfaces' containers.

    Test-facing methods take the server lock, so they are safe while the SDK is talking to the
    server from another thread.
    """

    def __init__(
        self,
        runtime: ContainerRuntime | None = None,
        *,
        replicas: ReplicaPool | None = None,
        routing_seed: int | None = 0,
        predict_timeout: float = 60.0,
        default_page_size: int = 100,
    ) -> None:
        self._owns_pool = replicas is None and runtime is not None
        self.replica_pool = replicas if replicas is not None else (ReplicaPool(runtime) if runtime else None)
        self.predict_timeout = predict_timeout
        self.default_page_size = default_page_size
        self._ctx: ServerContext | None = None
        self._models: dict[str, _Model] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._pending: list[_PendingDeploy] = []
        self._deploy_failures: list[tuple[JsonDict, int]] = []
        self._replicas: dict[str, Replica] = {}  # deployed model ID -> its serving container
        self._predictions: list[PredictionRecord] = []
        self._rng = random.Random(routing_seed)
        self._ids = itertools.count(1)

    # -- wiring -------------------------------------------------------------

    def register(self, context: ServerContext) -> None:
        self._ctx = context
        parent = "projects/{project}/locations/{location}"
        model = parent + "/models/{model}"
        endpoint = parent + "/endpoints/{endpoint}"
        add = context.router.add
        add("POST", parent + "/models:upload", self._upload, "models.upload")
        add("GET", parent + "/models", self._list_models, "models.list")
        add("GET", model + ":listVersions", self._list_versions, "models.listVersions")
        add("POST", model + ":mergeVersionAliases", self._merge_aliases, "models.mergeVersionAliases")
        add("GET", model, self._get_model, "models.get")
        add("PATCH", model, self._patch_model, "models.patch")
        add("POST", parent + "/endpoints", self._create_endpoint, "endpoints.create")
        add("GET", parent + "/endpoints", self._list_endpoints, "endpoints.list")
        add("GET", endpoint, self._get_endpoint, "endpoints.get")
        add("PATCH", endpoint, self._patch_endpoint, "endpoints.patch")
        add("POST", endpoint + ":deployModel", self._deploy, "endpoints.deployModel")
        add("POST", endpoint + ":undeployModel", self._undeploy, "endpoints.undeployModel")
        add("POST", endpoint + ":predict", self._predict, "endpoints.predict")

    @property
    def ctx(self) -> ServerContext:
        if self._ctx is None:
            raise RuntimeError("ModelsSurface is not registered with a server.")
        return self._ctx

    def reset(self) -> None:
        """Forgets every model and endpoint and stops their serving containers."""
        with self.ctx.lock:
            self._models.clear()
            self._endpoints.clear()
            self._pending.clear()
            self._deploy_failures.clear()
            self._predictions.clear()
            for deployed_id in list(self._replicas):
                self._release(deployed_id)

    def close(self) -> None:
        """Stops the serving containers (all of them when the pool is this surface's own)."""
        lock = self._ctx.lock if self._ctx is not None else threading.RLock()
        with lock:
            for deployed_id in list(self._replicas):
                self._release(deployed_id)
        if self._owns_pool and self.replica_pool is not None:
            self.replica_pool.close()

    # -- test-facing API ----------------------------------------------------

    def model(self, model: str) -> ModelView:
        """Snapshot of a model by ID or full name (project ID or number)."""
        with self.ctx.lock:
            self._settle()
            return self._require_model(model).view()

    def models(self) -> list[ModelView]:
        with self.ctx.lock:
            self._settle()
            return [record.view() for record in self._models.values()]

    def endpoint(self, endpoint: str) -> EndpointView:
        """Snapshot of an endpoint by ID or full name."""
        with self.ctx.lock:
            self._settle()
            record = self._require_endpoint(endpoint)
            return EndpointView(record.name, copy.deepcopy(record.resource))

    def endpoints(self) -> list[EndpointView]:
        with self.ctx.lock:
            self._settle()
            return [EndpointView(r.name, copy.deepcopy(r.resource)) for r in self._endpoints.values()]

    def fail_next_deploy(self, error: JsonDict | str, *, polls: int = 1) -> None:
        """The next deployModel starts normally, then its operation ends with ``error`` after
        ``polls`` GETs; the deployment it added is removed and the traffic split never changes."""
        status = {"code": 13, "message": error} if isinstance(error, str) else copy.deepcopy(error)
        with self.ctx.lock:
            self._deploy_failures.append((status, polls))

    def seed_routing(self, seed: int | None) -> None:
        """Restarts the random choice of the deployed model that answers a predict request."""
        with self.ctx.lock:
            self._rng.seed(seed)

    @property
    def predictions(self) -> list[PredictionRecord]:
        with self.ctx.lock:
            return list(self._predictions)

    def replica(self, deployed_model_id: str) -> Replica | None:
        """The serving container of a deployed model (None before its deployment starts it)."""
        with self.ctx.lock:
            return self._replicas.get(deployed_model_id)

    # -- models -------------------------------------------------------------

    def _upload(self, request: Request) -> JsonDict:
        self._settle()
        parent = self._parent(request)
        body = request.json_body()
        model = body.get("model")
        if not isinstance(model, dict):
            raise invalid_argument("UploadModelRequest.model is required.")
        if not model.get("displayName"):
            raise invalid_argument("Model.displayName is required.")
        if model.get("artifactUri") and not model.get("containerSpec", {}).get("imageUri"):
            raise invalid_argument("Model.containerSpec.imageUri is required for a custom model.")
        _check_labels(model.get("labels", {}))
        aliases = list(model.get("versionAliases", []))
        for alias in aliases:
            if not ALIAS_PATTERN.fullmatch(alias):
                raise invalid_argument(f"Invalid version alias {alias!r}.")
        parent_model = body.get("parentModel")
        if parent_model:
            record = self._models.get(self.ctx.identity.canonical_name(parent_model))
            if record is None or record.parent != parent:
                raise not_found(parent_model)
            version_id = str(max(int(v) for v in record.versions) + 1)
        else:
            model_id = body.get("modelId") or str(next(self._ids) + 4_000_000_000_000_000_000)
            if not MODEL_ID_PATTERN.fullmatch(model_id) and not model_id.isdigit():
                raise invalid_argument(f"Invalid modelId {model_id!r}.")
            name = f"{parent}/models/{model_id}"
            if name in self._models:
                raise ApiError(409, f"Model {name} already exists.", "ALREADY_EXISTS")
            record = _Model(name, parent)
            version_id = "1"
            if DEFAULT_ALIAS not in aliases:
                aliases.append(DEFAULT_ALIAS)
        now = self.ctx.now()
        resource = copy.deepcopy(model)
        resource.update(
            {
                "name": record.name,
                "versionId": version_id,
                "versionAliases": [],
                "createTime": record.versions["1"]["createTime"] if record.versions else now,
                "updateTime": now,
                "versionCreateTime": now,
                "versionUpdateTime": now,
                "etag": f"etag-{version_id}",
                "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
                "modelSourceInfo": {"sourceType": "CUSTOM"},
            }
        )
        self._models[record.name] = record
        record.versions[version_id] = resource
        self._give_aliases(record, resource, aliases)
        operation = self.ctx.operations.create(
            record.name,
            metadata_type=V1 + "UploadModelOperationMetadata",
            response={"@type": V1 + "UploadModelResponse", "model": record.name, "modelVersionId": version_id},
        )
        return operation.to_json()

    def _get_model(self, request: Request) -> JsonDict:
        self._settle()
        record, version = self._version_from_path(request)
        return copy.deepcopy(version)

    def _list_models(self, request: Request) -> JsonDict:
        self._settle()
        parent = self._parent(request)
        items = [
            default
            for record in self._models.values()
            if record.parent == parent
            and (default := record.holder_of(DEFAULT_ALIAS)) is not None
            and self._matches(default, request.query.get("filter"))
        ]
        page, token = paginate(items, request, self.default_page_size)
        return _list_body("models", page, token)

    def _list_versions(self, request: Request) -> JsonDict:
        self._settle()
        record = self._model_from_path(request)
        if "@" in request.params["model"]:
            raise invalid_argument("listVersions takes a model name without a version.")
        versions = [v for v in record.view().versions if self._matches(v, request.query.get("filter"))]
        page, token = paginate(versions, request, self.default_page_size)
        return _list_body("models", page, token)

    def _merge_aliases(self, request: Request) -> JsonDict:
        self._settle()
        _, _, suffix = request.params["model"].partition("@")
        if not suffix.isdigit():
            raise invalid_argument("mergeVersionAliases needs a model name with a version ID (models/ID@1).")
        record, version = self._version_from_path(request)
        changes = request.json_body().get("versionAliases", [])
        if not changes:
            raise invalid_argument("versionAliases is required.")
        added = {c for c in changes if not c.startswith("-")}
        removed = {c[1:] for c in changes if c.startswith("-")}
        for alias in added | removed:
            if not ALIAS_PATTERN.fullmatch(alias):
                raise invalid_argument(f"Invalid version alias {alias!r}.")
        cancelled = added & removed  # adding and removing the same alias cancel out
        added, removed = added - cancelled, removed - cancelled
        if DEFAULT_ALIAS in removed and DEFAULT_ALIAS in version.get("versionAliases", []):
            raise failed_precondition("The default alias cannot be removed; give it to another version.")
        version["versionAliases"] = [a for a in version.get("versionAliases", []) if a not in removed]
        self._give_aliases(record, version, sorted(added))
        version["versionUpdateTime"] = self.ctx.now()
        return copy.deepcopy(version)

    def _patch_model(self, request: Request) -> JsonDict:
        self._settle()
        _, version = self._version_from_path(request)
        body = request.json_body()
        mask = _update_mask(request)
        unsupported = sorted(set(mask) - _MODEL_MUTABLE_FIELDS)
        if unsupported:
            raise invalid_argument(f"Fields {unsupported} cannot be updated.")
        if "labels" in mask:
            _check_labels(body.get("labels", {}))
        _apply_mask(version, body, mask)
        version["versionUpdateTime"] = version["updateTime"] = self.ctx.now()
        return copy.deepcopy(version)

    def _give_aliases(self, record: _Model, version: JsonDict, aliases: Iterable[str]) -> None:
        for alias in aliases:
            holder = record.holder_of(alias)
            if holder is version:
                continue
            if holder is not None:
                holder["versionAliases"] = [a for a in holder["versionAliases"] if a != alias]
            version.setdefault("versionAliases", []).append(alias)

    # -- endpoints ----------------------------------------------------------

    def _create_endpoint(self, request: Request) -> JsonDict:
        self._settle()
        parent = self._parent(request)
        body = request.json_body()
        if not body.get("displayName"):
            raise invalid_argument("Endpoint.displayName is required.")
        _check_labels(body.get("labels", {}))
        endpoint_id = request.query.get("endpointId") or str(next(self._ids) + 100_000_000)
        if not ENDPOINT_ID_PATTERN.fullmatch(endpoint_id):
            raise invalid_argument(f"Invalid endpointId {endpoint_id!r}.")
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self._endpoints:
            raise ApiError(409, f"Endpoint {name} already exists.", "ALREADY_EXISTS")
        now = self.ctx.now()
        resource = copy.deepcopy(body)
        for output_only in ("deployedModels", "trafficSplit"):
            resource.pop(output_only, None)
        resource.update({"name": name, "createTime": now, "updateTime": now, "etag": "etag-1"})
        self._endpoints[name] = _Endpoint(name, parent, resource)
        operation = self.ctx.operations.create(
            name,
            metadata_type=V1 + "CreateEndpointOperationMetadata",
            response={"@type": V1 + "Endpoint", **copy.deepcopy(resource)},
        )
        return operation.to_json()

    def _get_endpoint(self, request: Request) -> JsonDict:
        self._settle()
        return copy.deepcopy(self._endpoint_from_path(request).resource)

    def _list_endpoints(self, request: Request) -> JsonDict:
        self._settle()
        parent = self._parent(request)
        items = [
            r.resource
            for r in self._endpoints.values()
            if r.parent == parent and self._matches(r.resource, request.query.get("filter"))
        ]
        page, token = paginate(items, request, self.default_page_size)
        return _list_body("endpoints", page, token)

    def _patch_endpoint(self, request: Request) -> JsonDict:
        self._settle()
        record = self._endpoint_from_path(request)
        body = request.json_body()
        mask = _update_mask(request)
        unsupported = sorted(set(mask) - _ENDPOINT_MUTABLE_FIELDS)
        if unsupported:
            raise invalid_argument(f"Fields {unsupported} cannot be updated.")
        if "labels" in mask:
            _check_labels(body.get("labels", {}))
        if "trafficSplit" in mask:
            split = _traffic_split(body.get("trafficSplit", {}))
            _check_split(split, {d["id"] for d in _deployed(record)}, allow_empty=True)
            body = {**body, "trafficSplit": split}
        _apply_mask(record.resource, body, mask)
        _drop_zero_traffic(record.resource)
        record.resource["updateTime"] = self.ctx.now()
        return copy.deepcopy(record.resource)

    def _deploy(self, request: Request) -> JsonDict:
        self._settle()
        record = self._endpoint_from_path(request)
        body = request.json_body()
        deployed = body.get("deployedModel")
        if not isinstance(deployed, dict) or not deployed.get("model"):
            raise invalid_argument("DeployModelRequest.deployedModel.model is required.")
        model, version = self._resolve_version(deployed["model"], request)
        resources = deployed.get("dedicatedResources", {})
        if not resources.get("machineSpec", {}).get("machineType"):
            raise invalid_argument(f"Model {model.name} requires dedicatedResources with a machineSpec.machineType.")
        minimum = int(resources.get("minReplicaCount", 0))
        if minimum < 1 or int(resources.get("maxReplicaCount", minimum)) < minimum:
            raise invalid_argument("dedicatedResources needs 1 <= minReplicaCount <= maxReplicaCount.")
        existing = {d["id"] for d in _deployed(record)}
        split = _traffic_split(body.get("trafficSplit", {}))
        deployed_id = str(next(self._ids) + 8_000_000_000_000_000_000)
        if split:
            _check_split(split, existing | {"0"}, allow_empty=False)
            split = {deployed_id if key == "0" else key: value for key, value in split.items()}
        now = self.ctx.now()
        resource = copy.deepcopy(deployed)
        resource.update(
            {
                "id": deployed_id,
                "model": model.name,
                "modelVersionId": version["versionId"],
                "displayName": deployed.get("displayName") or version.get("displayName", ""),
                "createTime": now,
            }
        )
        record.resource.setdefault("deployedModels", []).append(resource)
        version.setdefault("deployedModels", []).append({"endpoint": record.name, "deployedModelId": deployed_id})
        failure, polls = self._deploy_failures.pop(0) if self._deploy_failures else (None, None)
        operation = self.ctx.operations.create(
            record.name,
            metadata_type=V1 + "DeployModelOperationMetadata",
            response={"@type": V1 + "DeployModelResponse", "deployedModel": copy.deepcopy(resource)},
            error=failure,
            polls_until_done=polls if failure is not None else _UNTIL_READY,
        )
        if failure is None:
            self._start_serving(operation, record, resource, version)
        self._pending.append(_PendingDeploy(operation, record.name, deployed_id, split or None))
        self._settle()
        return operation.to_json()

    def _start_serving(
        self, operation: OperationRecord, record: _Endpoint, deployed: JsonDict, version: JsonDict
    ) -> None:
        """Starts the deployment's serving container; its health check completes ``operation``."""
        deployed_id = deployed["id"]
        if self.replica_pool is None:
            self._finish(operation, "failed to pull image: the fake Vertex AI server has no container runtime")
            return
        resources = deployed.get("dedicatedResources", {}).get("machineSpec", {})
        spec, health_route, predict_route = serving_container(
            version.get("containerSpec", {}),
            artifact_uri=version.get("artifactUri", ""),
            endpoint_id=record.name.rsplit("/", 1)[1],
            deployed_model_id=deployed_id,
            project_number=self.ctx.identity.project_number,
            machine_type=resources.get("machineType", ""),
            accelerator_type=resources.get("acceleratorType"),
        )
        try:
            replica = self.replica_pool.launch(
                spec,
                name=f"deployed-model-{deployed_id}",
                health_route=health_route,
                predict_route=predict_route,
                service_account=deployed.get("serviceAccount") or None,
            )
        except ImageNotFound as error:
            self._finish(operation, str(error))
            return
        self._replicas[deployed_id] = replica
        if replica.ready and replica.healthy():  # a warm replica of the same model
            self._finish(operation, None)
            return
        threading.Thread(
            target=self._await_ready, args=(operation, deployed_id, replica), name=f"deploy-{deployed_id}", daemon=True
        ).start()

    def _await_ready(self, operation: OperationRecord, deployed_id: str, replica: Replica) -> None:
        assert self.replica_pool is not None
        try:
            self.replica_pool.wait_ready(replica)
            error = None
        except ReplicaFailed as failure:
            error = _deploy_failure_message(failure, replica)
        with self.ctx.lock:
            if error is not None and self._replicas.get(deployed_id) is replica:
                self._release(deployed_id)
            self._finish(operation, error)

    def _finish(self, operation: OperationRecord, error: str | None) -> None:
        """Completes a deploy operation now (the deployment itself is updated by `_settle`)."""
        if error is not None:
            operation.error = {"code": _DEPLOY_FAILED, "message": error}
        operation.polls_until_done = operation.polls

    def _release(self, deployed_id: str) -> None:
        replica = self._replicas.pop(deployed_id, None)
        if replica is not None and self.replica_pool is not None:
            self.replica_pool.release(replica)

    def _undeploy(self, request: Request) -> JsonDict:
        self._settle()
        record = self._endpoint_from_path(request)
        body = request.json_body()
        deployed_id = str(body.get("deployedModelId", ""))
        ids = [d["id"] for d in _deployed(record)]
        if deployed_id not in ids:
            raise not_found(f"{record.name}/deployedModels/{deployed_id}")
        remaining = set(ids) - {deployed_id}
        split = _traffic_split(body.get("trafficSplit", {}))
        if split:
            if split.get(deployed_id, 0):
                raise invalid_argument(f"The undeployed model {deployed_id} cannot keep traffic.")
            split.pop(deployed_id, None)
            _check_split(split, remaining, allow_empty=False)
        else:
            current = dict(record.resource.get("trafficSplit", {}))
            if current.get(deployed_id, 0) and remaining:
                raise failed_precondition(
                    f"Deployed model {deployed_id} has {current[deployed_id]}% of the traffic; "
                    "give it to other deployed models first or pass a trafficSplit."
                )
            split = {key: value for key, value in current.items() if key != deployed_id}
        self._remove_deployment(record, deployed_id)
        record.resource["trafficSplit"] = split if remaining else {}
        _drop_zero_traffic(record.resource)
        record.resource["updateTime"] = self.ctx.now()
        operation = self.ctx.operations.create(
            record.name,
            metadata_type=V1 + "UndeployModelOperationMetadata",
            response={"@type": V1 + "UndeployModelResponse"},
        )
        return operation.to_json()

    def _settle(self) -> None:
        """Apply the outcome of deploy operations that have completed since the last request."""
        still_running = []
        for pending in self._pending:
            if not pending.operation.done:
                still_running.append(pending)
                continue
            record = self._endpoints.get(pending.endpoint)
            if record is None:
                continue
            if pending.operation.error is not None:
                self._remove_deployment(record, pending.deployed_model_id)
            elif pending.traffic_split is not None:
                record.resource["trafficSplit"] = dict(pending.traffic_split)
                _drop_zero_traffic(record.resource)
            record.resource["updateTime"] = self.ctx.now()
        self._pending = still_running

    def _remove_deployment(self, record: _Endpoint, deployed_id: str) -> None:
        self._release(deployed_id)
        removed = [d for d in _deployed(record) if d["id"] == deployed_id]
        record.resource["deployedModels"] = [d for d in _deployed(record) if d["id"] != deployed_id]
        if not record.resource["deployedModels"]:
            record.resource.pop("deployedModels")
        for deployment in removed:
            model = self._models.get(deployment["model"])
            version = model.versions.get(deployment["modelVersionId"]) if model else None
            if version is not None:
                refs = [r for r in version.get("deployedModels", []) if r["deployedModelId"] != deployed_id]
                version["deployedModels"] = refs
                if not refs:
                    version.pop("deployedModels")

    # -- predictions --------------------------------------------------------

    def _predict(self, request: Request) -> JsonDict:
        self._settle()
        record = self._endpoint_from_path(request)
        body = request.json_body()
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise invalid_argument("PredictRequest.instances must be a non-empty list.")
        deployment = self._route(record)
        deployed_id, version_id = deployment["id"], deployment["modelVersionId"]
        replica = self._replicas.get(deployed_id)
        if replica is None:
            raise ApiError(503, f"Deployed model {deployed_id} has no serving replica.", "UNAVAILABLE")
        payload = '{"instances": ' + value_json(instances)
        if "parameters" in body:
            payload += ', "parameters": ' + value_json(body["parameters"])
        started = time.monotonic()
        try:
            status, answer = replica.predict((payload + "}").encode(), self.predict_timeout)
        except ReplicaUnreachable as error:
            status, answer = 503, str(error).encode()
        latency_ms = (time.monotonic() - started) * 1000
        self._predictions.append(
            PredictionRecord(record.name, deployed_id, version_id, len(instances), status, latency_ms)
        )
        if status == 503:
            raise ApiError(503, f"The model server of deployed model {deployed_id} is unavailable.", "UNAVAILABLE")
        if status != 200:
            raise ApiError(400, answer.decode("utf-8", "replace"), "FAILED_PRECONDITION")
        try:
            predictions = json.loads(answer)["predictions"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                500, f"The model server answered without predictions: {answer[:200]!r}", "INTERNAL"
            ) from None
        model = self._models[deployment["model"]]
        return {
            "predictions": predictions,
            "deployedModelId": deployed_id,
            "model": deployment["model"],
            "modelDisplayName": model.versions[version_id].get("displayName", ""),
            "modelVersionId": version_id,
        }

    def _route(self, record: _Endpoint) -> JsonDict:
        """A deployed model drawn at random with the traffic split's weights."""
        split = record.resource.get("trafficSplit", {})
        serving = [d for d in _deployed(record) if split.get(d["id"], 0) > 0]
        if not serving:
            raise failed_precondition(f"Endpoint {record.name} has no deployed model that receives traffic.")
        slot = self._rng.randrange(sum(split[d["id"]] for d in serving))
        for deployment in serving:
            slot -= split[deployment["id"]]
            if slot < 0:
                return deployment
        return serving[-1]

    # -- lookups ------------------------------------------------------------

    def _parent(self, request: Request) -> str:
        return self.ctx.identity.location_path(request.params["project"], request.params["location"])

    def _matches(self, resource: JsonDict, expression: str | None) -> bool:
        return matches_filter(resource, expression, self.ctx.identity.canonical_name)

    def _model_from_path(self, request: Request) -> _Model:
        model_id = request.params["model"].partition("@")[0]
        name = f"{self._parent(request)}/models/{model_id}"
        record = self._models.get(name)
        if record is None:
            raise not_found(name)
        return record

    def _version_from_path(self, request: Request) -> tuple[_Model, JsonDict]:
        record = self._model_from_path(request)
        _, _, suffix = request.params["model"].partition("@")
        return record, self._version_of(record, suffix or DEFAULT_ALIAS)

    def _version_of(self, record: _Model, suffix: str) -> JsonDict:
        version = record.versions.get(suffix) if suffix.isdigit() else record.holder_of(suffix)
        if version is None:
            raise not_found(f"{record.name}@{suffix}")
        return version

    def _resolve_version(self, name: str, request: Request) -> tuple[_Model, JsonDict]:
        """A versioned model name from a request body (``projects/p/locations/l/models/ID@2``)."""
        base, _, suffix = self.ctx.identity.canonical_name(name).partition("@")
        record = self._models.get(base)
        if record is None or record.parent != self._parent(request):
            raise not_found(base)
        return record, self._version_of(record, suffix or DEFAULT_ALIAS)

    def _endpoint_from_path(self, request: Request) -> _Endpoint:
        name = f"{self._parent(request)}/endpoints/{request.params['endpoint']}"
        record = self._endpoints.get(name)
        if record is None:
            raise not_found(name)
        return record

    def _require_model(self, ref: str) -> _Model:
        name = self.ctx.identity.canonical_name(ref) if "/" in ref else None
        record = (
            self._models.get(name)
            if name
            else next((r for r in self._models.values() if r.name.rsplit("/", 1)[1] == ref), None)
        )
        if record is None:
            raise KeyError(f"No model {ref!r}; known: {list(self._models)}")
        return record

    def _require_endpoint(self, ref: str) -> _Endpoint:
        name = self.ctx.identity.canonical_name(ref) if "/" in ref else None
        record = (
            self._endpoints.get(name)
            if name
            else next((r for r in self._endpoints.values() if r.name.rsplit("/", 1)[1] == ref), None)
        )
        if record is None:
            raise KeyError(f"No endpoint {ref!r}; known: {list(self._endpoints)}")
        return record


def _deployed(record: _Endpoint) -> list[JsonDict]:
    return record.resource.get("deployedModels", [])


def _traffic_split(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise invalid_argument("trafficSplit must be a map of deployed model ID to percent.")
    try:
        return {str(key): int(value) for key, value in raw.items()}
    except (TypeError, ValueError):
        raise invalid_argument(f"trafficSplit values must be integers, got {raw!r}.") from None


def _check_split(split: dict[str, int], known_ids: set[str], *, allow_empty: bool) -> None:
    if not split and allow_empty:
        return
    unknown = sorted(set(split) - known_ids)
    if unknown:
        raise invalid_argument(f"trafficSplit names deployed models that do not exist: {unknown}.")
    if any(value < 0 or value > 100 for value in split.values()):
        raise invalid_argument(f"trafficSplit percentages must be between 0 and 100, got {split}.")
    if sum(split.values()) != 100:
        raise invalid_argument(f"trafficSplit must add up to 100, got {sum(split.values())}: {split}.")


def _drop_zero_traffic(resource: JsonDict) -> None:
    resource["trafficSplit"] = {key: value for key, value in resource.get("trafficSplit", {}).items() if value}
    if not resource["trafficSplit"]:
        resource.pop("trafficSplit")


def _check_labels(labels: object) -> None:
    if not isinstance(labels, dict):
        raise invalid_argument("labels must be a map.")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(str(key)) or not LABEL_VALUE.fullmatch(str(value)):
            raise invalid_argument(f"Invalid label {key!r}: {value!r}.")


def _update_mask(request: Request) -> tuple[str, ...]:
    mask = tuple(snake_to_camel(p.strip()) for p in request.query.get("updateMask", "").split(",") if p.strip())
    if not mask:
        raise invalid_argument("updateMask is required.")
    return mask


def _apply_mask(resource: JsonDict, body: JsonDict, mask: tuple[str, ...]) -> None:
    for path in mask:
        if path in body:
            resource[path] = copy.deepcopy(body[path])
        else:
            resource.pop(path, None)


def value_json(value: object) -> str:
    """JSON of a ``google.protobuf.Value`` as the service prints it for the container.

    Instances arrive as Values, whose numbers are doubles; Google's C++ proto3 JSON printer writes
    a double with 15 significant digits (17 when 15 do not round-trip), so ``12.0`` goes out as
    ``12``, which TF Serving accepts for an int64 input (the Python SDK itself sends ``12.0``).
    Google's own MLOps sample (GoogleCloudPlatform/mlops-with-vertex-ai, model_deployment_tests.py)
    relies on this: it predicts with int features against an int64 ``serving_default`` on a TF
    Serving image. Integers beyond 2**53 lose precision, as in a Value.
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {value_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(value_json(item) for item in value) + "]"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        return json.dumps(number)
    text = f"{number:.15g}"
    return text if float(text) == number else f"{number:.17g}"


def _deploy_failure_message(failure: ReplicaFailed, replica: Replica) -> str:
    """Vertex AI's deployment errors, with the container log's place and tail (the real service
    links its Cloud Logging entries instead)."""
    if failure.exit_code is not None:
        headline = "Model server exited unexpectedly."
    else:
        headline = (
            "Model server never became ready. "
            "Please validate that your model file or container configuration are valid."
        )
    tail = "\n".join(failure.log_tail.splitlines()[-_LOG_TAIL_LINES:])
    return f"{headline} Model server logs can be found at {replica.container.log_path} ({failure}); last lines:\n{tail}"


def _list_body(key: str, page: list[JsonDict], token: str | None) -> JsonDict:
    body: JsonDict = {key: copy.deepcopy(page)} if page else {}
    if token:
        body["nextPageToken"] = token
    return body
