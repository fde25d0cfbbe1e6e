"""Reads the promotion state and applies plan steps through the Vertex AI SDK.

REST calls each SDK method makes (google-cloud-aiplatform 1.70, `api_transport="rest"`):
- `ModelRegistry(ID).client.list_model_versions`: GET models/ID:listVersions (every version, labels included)
- `Model(ID, version=V)`: GET models/ID@V (V a version ID or an alias)
- `ModelRegistry.add_version_aliases` / `remove_version_aliases`: POST models/ID@V:mergeVersionAliases
  with `alias` / `-alias` (a version takes an alias from the version holding it)
- `Endpoint(ID).gca_resource`: GET endpoints/ID
- `Endpoint.create(endpoint_id=...)`: POST endpoints?endpointId=ID, then polls the operation
- `Endpoint.deploy(...)`: GET endpoints/ID, GET models/ID@V, POST endpoints/ID:deployModel (trafficSplit
  with "0" for the new deployment), polls the operation, GET endpoints/ID
- `Endpoint.update(traffic_split=...)`: PATCH endpoints/ID?updateMask=trafficSplit
- `Endpoint.undeploy(...)`: POST endpoints/ID:undeployModel (with the split left), polls, GET endpoints/ID
- `Endpoint.predict`: POST endpoints/ID:predict
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config import PipelineConfig, VertexRunnerConfig
from pipeline.deploy_config import EndpointConfig, RegistryConfig
from runners.promotion.plan import CreateEndpoint, Deploy, MoveAliases, SetTraffic, SmokeTest, Step, Undeploy
from runners.promotion.smoke import Serving
from runners.promotion.state import Deployment, State


class PromotionError(Exception):
    """A problem with the registry or the endpoint; the message is one line."""


@dataclass(frozen=True)
class Target:
    runner: VertexRunnerConfig
    registry: RegistryConfig
    endpoint: EndpointConfig

    @classmethod
    def of(cls, config: PipelineConfig) -> Target:
        if not isinstance(config.runner, VertexRunnerConfig) or config.registry is None or config.endpoint is None:
            raise ValueError("promotion needs runner 'vertex' and the registry and endpoint sections")
        return cls(config.runner, config.registry, config.endpoint)

    @property
    def where(self) -> dict[str, str]:
        return {"project": self.runner.project, "location": self.runner.region}

    @property
    def endpoint_name(self) -> str:
        return f"projects/{self.runner.project}/locations/{self.runner.region}/endpoints/{self.endpoint.endpoint_id}"


def read_state(target: Target) -> State:
    """The registry model's aliases and the endpoint's deployments and traffic split."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    registry = aiplatform.models.ModelRegistry(target.registry.model_id, **target.where)
    try:
        # The client's list gives every version in full (labels included); list_versions() drops labels.
        versions = list(registry.client.list_model_versions(name=registry.model_resource_name))
    except exceptions.NotFound:
        raise PromotionError(
            f"model {target.registry.model_id} is not in the Model Registry of {target.runner.project} "
            f"({target.runner.region}): a pipeline run registers it when its model is blessed"
        ) from None
    aliases = {alias: version.version_id for version in versions for alias in version.version_aliases}
    labels = {version.version_id: dict(version.labels) for version in versions}
    endpoint = _endpoint(target)
    if endpoint is None:
        return State(target.registry.model_id, target.endpoint_name, False, aliases, labels=labels)
    resource = endpoint.gca_resource
    split = dict(resource.traffic_split)
    deployments = tuple(
        Deployment(
            deployed_model_id=deployed.id,
            model_id=deployed.model.partition("@")[0].rsplit("/", 1)[-1],
            version=deployed.model_version_id or deployed.model.partition("@")[2],
            traffic=int(split.get(deployed.id, 0)),
        )
        for deployed in resource.deployed_models
    )
    return State(target.registry.model_id, resource.name, True, aliases, deployments, labels)


def apply(target: Target, step: Step) -> None:
    """Runs one plan step (SmokeTest is run by the caller)."""
    from google.cloud import aiplatform

    if isinstance(step, CreateEndpoint):
        aiplatform.Endpoint.create(
            display_name=target.endpoint.display_name,
            endpoint_id=target.endpoint.endpoint_id,
            labels=dict(target.runner.labels),
            **target.where,
        )
    elif isinstance(step, Deploy):
        endpoint, ids = _endpoint_and_ids(target)
        split = {ids[v]: percent for v, percent in step.traffic.items() if v != step.version}
        config = target.endpoint
        endpoint.deploy(
            model=aiplatform.Model(target.registry.model_id, version=step.version, **target.where),
            deployed_model_display_name=f"{target.registry.model_id}-v{step.version}",
            traffic_split={**split, "0": step.traffic[step.version]},
            machine_type=config.machine_type,
            min_replica_count=config.min_replicas,
            max_replica_count=config.max_replicas,
            service_account=config.service_account,
        )
    elif isinstance(step, SetTraffic):
        endpoint, ids = _endpoint_and_ids(target)
        endpoint.update(traffic_split={ids[version]: percent for version, percent in step.traffic.items()})
    elif isinstance(step, Undeploy):
        endpoint, ids = _endpoint_and_ids(target)
        if step.version not in ids:
            return  # already gone
        left = {ids[version]: percent for version, percent in step.traffic.items() if version in ids}
        endpoint.undeploy(ids[step.version], traffic_split=left or None)
    elif isinstance(step, MoveAliases):
        registry = aiplatform.models.ModelRegistry(target.registry.model_id, **target.where)
        if step.add:
            registry.add_version_aliases(list(step.add), version=step.version)
        if step.remove:
            registry.remove_version_aliases(list(step.remove), version=step.version)
    elif not isinstance(step, SmokeTest):
        raise TypeError(f"unknown step {step!r}")


def predictor(target: Target) -> tuple[Any, Any]:
    """The endpoint and a `predict(instances)` function for the smoke test."""
    endpoint = _endpoint(target)
    if endpoint is None:
        raise PromotionError(f"endpoint {target.endpoint_name} does not exist")
    timeout = max(10.0, 5 * target.endpoint.smoke_test.max_latency_ms / 1000)

    def predict(instances: Sequence[Any]) -> Any:
        return endpoint.predict(instances=list(instances), timeout=timeout)

    return endpoint, predict


def serving_models(endpoint: Any) -> list[Serving]:
    """The endpoint's deployed models, their versions and traffic percents, as last loaded."""
    resource = endpoint.gca_resource
    split = dict(resource.traffic_split)
    return [
        Serving(deployed.id, deployed.model_version_id, int(split.get(deployed.id, 0)))
        for deployed in resource.deployed_models
    ]


def _endpoint(target: Target) -> Any:
    """The endpoint with its resource loaded, or None when it does not exist."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    endpoint = aiplatform.Endpoint(target.endpoint.endpoint_id, **target.where)
    try:
        endpoint.gca_resource  # noqa: B018  (loads the resource: GET endpoints/ID)
    except exceptions.NotFound:
        return None
    return endpoint


def _endpoint_and_ids(target: Target) -> tuple[Any, dict[str, str]]:
    """The endpoint as it is now, and version -> deployed model ID."""
    endpoint = _endpoint(target)
    if endpoint is None:
        raise PromotionError(f"endpoint {target.endpoint_name} does not exist")
    return endpoint, {deployed.model_version_id: deployed.id for deployed in endpoint.gca_resource.deployed_models}
