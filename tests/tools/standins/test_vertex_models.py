"""The models, endpoints and predict surface of the fake Vertex AI server, through the real SDK."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions
from google.cloud import aiplatform

from models import features
from tools.standins.fixtures import DEFAULT_PROJECT_NUMBER, VertexStandins

SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
PARENT = f"projects/{DEFAULT_PROJECT_NUMBER}/locations/us-central1"
INSTANCE = {key: 1.0 for key in features.RAW_FEATURE_KEYS} | {"payment_type": "Cash", "company": "Flash Cab"}


def upload(version: int, *, labels: dict[str, str] | None = None, aliases: list[str] | None = None) -> aiplatform.Model:
    first = version == 1
    return aiplatform.Model.upload(
        serving_container_image_uri=SERVING_IMAGE,
        artifact_uri=f"gs://models/taxi/{version}",
        model_id="taxi" if first else None,
        parent_model=None if first else "taxi",
        is_default_version=first,
        version_aliases=aliases if aliases is not None else ["candidate"],
        labels=labels or {"blessed": "true"},
        display_name="taxi",
    )


def deploy(endpoint: aiplatform.Endpoint, version: str, split: dict[str, int]) -> None:
    endpoint.deploy(model=aiplatform.Model("taxi", version=version), traffic_split=split, machine_type="n1-standard-2")


def deployed_id(vertex_env: VertexStandins, version: str) -> str:
    return next(d.deployed_model_id for d in vertex_env.models.endpoint("ep").deployments if d.version_id == version)


def test_versions_aliases_and_labels(vertex_env: VertexStandins) -> None:
    first = upload(1, labels={"blessed": "true", "git_commit": "abc123"})
    second = upload(2, labels={"blessed": "false"})

    assert (first.resource_name, first.version_id) == (f"{PARENT}/models/taxi", "1")
    assert second.version_id == "2"
    model = vertex_env.models.model("taxi")
    assert model.aliases == {"default": "1", "candidate": "2"}  # version 1 always gets default
    assert model.version("1")["labels"] == {"blessed": "true", "git_commit": "abc123"}
    assert model.version("2")["artifactUri"] == "gs://models/taxi/2"
    assert aiplatform.Model("taxi", version="candidate").version_id == "2"
    assert aiplatform.Model("taxi").version_id == "1"  # no version: the default alias
    assert aiplatform.Model("taxi", version="2").labels == {"blessed": "false"}

    registry = aiplatform.models.ModelRegistry("taxi")
    assert [(v.version_id, sorted(v.version_aliases)) for v in registry.list_versions()] == [
        ("1", ["default"]),
        ("2", ["candidate"]),
    ]
    assert [v.version_id for v in registry.list_versions(filter='labels.blessed="true"')] == ["1"]


def test_an_alias_moves_between_versions_and_default_stays(vertex_env: VertexStandins) -> None:
    upload(1)
    upload(2)
    registry = aiplatform.models.ModelRegistry("taxi")

    registry.add_version_aliases(["production"], version="1")
    registry.add_version_aliases(["production", "default"], version="2")
    assert vertex_env.models.model("taxi").aliases == {"production": "2", "default": "2", "candidate": "2"}

    registry.remove_version_aliases(["candidate"], version="2")
    assert "candidate" not in vertex_env.models.model("taxi").aliases
    with pytest.raises(exceptions.BadRequest, match="default alias cannot be removed"):
        registry.remove_version_aliases(["default"], version="2")
    with pytest.raises(exceptions.NotFound):
        aiplatform.Model("taxi", version="candidate")


def test_upload_errors(vertex_env: VertexStandins) -> None:
    with pytest.raises(exceptions.NotFound):
        upload(2)  # no parent yet
    upload(1)
    with pytest.raises(exceptions.Conflict):
        upload(1)  # the model ID exists
    with pytest.raises(exceptions.BadRequest, match="Invalid version alias"):
        upload(2, aliases=["Not-An-Alias"])


def test_deploy_update_undeploy_keep_the_traffic_rules(vertex_env: VertexStandins) -> None:
    upload(1)
    upload(2)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep", labels={"env": "test"})
    assert endpoint.resource_name == f"{PARENT}/endpoints/ep"

    deploy(endpoint, "1", {"0": 100})
    first = deployed_id(vertex_env, "1")
    deploy(endpoint, "2", {first: 90, "0": 10})
    second = deployed_id(vertex_env, "2")
    view = vertex_env.models.endpoint("ep")
    assert view.traffic_by_version == {"1": 90, "2": 10}
    assert view.resource["deployedModels"][1]["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-2"}
    assert vertex_env.models.model("taxi").version("2")["deployedModels"] == [
        {"endpoint": f"{PARENT}/endpoints/ep", "deployedModelId": second}
    ]

    with pytest.raises(exceptions.BadRequest, match="add up to 100"):
        endpoint.update(traffic_split={first: 50, second: 40})
    endpoint.update(traffic_split={first: 0, second: 100})
    assert vertex_env.models.endpoint("ep").traffic_split == {second: 100}  # 0% entries are not kept

    with pytest.raises(exceptions.BadRequest, match="has 100% of the traffic"):
        aiplatform.Endpoint("ep").api_client.undeploy_model(endpoint=endpoint.resource_name, deployed_model_id=second)
    aiplatform.Endpoint("ep").undeploy(first, traffic_split={second: 100})
    aiplatform.Endpoint("ep").undeploy(second)  # the last one may keep its traffic
    view = vertex_env.models.endpoint("ep")
    assert (view.deployments, view.traffic_split) == ([], {})
    assert "deployedModels" not in vertex_env.models.model("taxi").version("2")


def test_a_deploy_that_fails_midway_leaves_the_endpoint_as_before(vertex_env: VertexStandins) -> None:
    upload(1)
    upload(2)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})
    before = vertex_env.models.endpoint("ep").resource
    first = deployed_id(vertex_env, "1")
    vertex_env.models.fail_next_deploy("Model server never became ready", polls=1)

    operation = endpoint.api_client.deploy_model(
        endpoint=endpoint.resource_name,
        deployed_model={
            "model": f"{PARENT}/models/taxi@2",
            "dedicated_resources": {"machine_spec": {"machine_type": "n1-standard-2"}, "min_replica_count": 1},
        },
        traffic_split={first: 50, "0": 50},
    )
    midway = vertex_env.models.endpoint("ep")
    assert [d.version_id for d in midway.deployments] == ["1", "2"]  # being deployed, no traffic yet
    assert midway.traffic_by_version == {"1": 100, "2": 0}
    with pytest.raises(exceptions.InternalServerError, match="never became ready"):
        operation.result()

    after = vertex_env.models.endpoint("ep").resource
    assert {k: v for k, v in after.items() if k != "updateTime"} == {
        k: v for k, v in before.items() if k != "updateTime"
    }


def test_predict_routes_by_traffic_and_checks_instances(vertex_env: VertexStandins) -> None:
    upload(1)
    upload(2)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})
    deploy(endpoint, "2", {deployed_id(vertex_env, "1"): 80, "0": 20})

    answers = [endpoint.predict(instances=[INSTANCE, INSTANCE | {"fare": 3.0}]) for _ in range(10)]

    assert {len(a.predictions) for a in answers} == {2}
    assert all(0 <= p[0] <= 1 for a in answers for p in a.predictions)
    by_version = {a.model_version_id: a.predictions for a in answers}
    assert sorted(by_version) == ["1", "2"] and by_version["1"] != by_version["2"]
    assert [r.version_id for r in vertex_env.models.predictions].count("2") == 2  # 20% of 10
    assert answers[0].deployed_model_id == deployed_id(vertex_env, answers[0].model_version_id)

    with pytest.raises(exceptions.BadRequest, match="missing features \\['company'\\]"):
        endpoint.predict(instances=[{k: v for k, v in INSTANCE.items() if k != "company"}])
    with pytest.raises(exceptions.BadRequest, match="expected a number or a string"):
        endpoint.predict(instances=[INSTANCE | {"fare": None}])


def test_scripted_prediction_failures(vertex_env: VertexStandins) -> None:
    upload(1)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})

    vertex_env.models.script_predictions("1", output="wrong_shape")
    assert len(endpoint.predict(instances=[INSTANCE]).predictions[0]) == 2
    vertex_env.models.script_predictions("1", error_status=503)
    url = f"{vertex_env.vertex_url}/v1/{PARENT}/endpoints/ep:predict"
    assert requests.post(url, json={"instances": [INSTANCE]}, timeout=5).status_code == 503
    vertex_env.models.script_predictions("1", delay_seconds=0.2)
    with pytest.raises(requests.Timeout):  # the REST transport does not wrap it
        endpoint.predict(instances=[INSTANCE], timeout=0.05)
    assert [r.status for r in vertex_env.models.predictions] == [200, 503, 200]
