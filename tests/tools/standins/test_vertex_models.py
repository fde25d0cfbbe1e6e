"""The models, endpoints and predict surface of the fake Vertex AI server, through the real SDK.

Deployed models are real tiny SavedModels served by the TF Serving stand-in (model_server.py) in
their serving container; the replicas are kept warm across the module, so each model starts once.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tensorflow as tf
from google.api_core import exceptions
from google.cloud import aiplatform

from tests.tools.standins.saved_models import fare_probability, save_model, serialized_example, upload_folder
from tools.standins.containers import ContainerRuntime, LocalImage
from tools.standins.fixtures import (
    DEFAULT_PROJECT_NUMBER,
    TF_SERVING_IMAGE,
    VertexStandins,
    serving_runtime,
    vertex_standins,
)
from tools.standins.gcs_emulator import StorageEmulator
from tools.standins.serving_replicas import ReplicaPool
from tools.standins.vertex_models import value_json

PARENT = f"projects/{DEFAULT_PROJECT_NUMBER}/locations/us-central1"
FEATURES = {"fare": tf.float32, "company": tf.string}
INSTANCES = [{"fare": 12.5, "company": "Flash Cab"}, {"fare": 3, "company": ""}]
SCALES = {"1": 10.0, "2": 5.0}  # each version's model answers sigmoid(fare / scale)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("saved-models")
    return {
        "1": save_model(folder / "v1", FEATURES, fare_probability(SCALES["1"])),
        "2": save_model(folder / "v2", FEATURES, fare_probability(SCALES["2"])),
        "examples": save_model(folder / "examples", FEATURES, fare_probability(10.0), default_takes_examples=True),
    }


@pytest.fixture(scope="module")
def replicas(storage_emulator: StorageEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaPool]:
    with ReplicaPool(serving_runtime(tmp_path_factory.mktemp("serving"), storage_emulator.url), keep_warm=True) as pool:
        yield pool


@pytest.fixture
def vertex_env(storage_emulator: StorageEmulator, replicas: ReplicaPool) -> Iterator[VertexStandins]:
    with vertex_standins(storage=storage_emulator, replicas=replicas) as env:
        yield env


@pytest.fixture
def upload(vertex_env: VertexStandins, saved_models: dict[str, Path]):
    client = vertex_env.storage_client()

    def upload_version(
        version: int, *, labels: dict[str, str] | None = None, aliases: list[str] | None = None, model: str = ""
    ) -> aiplatform.Model:
        first = version == 1
        artifacts = upload_folder(client, saved_models[model or str(version)], f"gs://models/my-model/{version}")
        return aiplatform.Model.upload(
            serving_container_image_uri=TF_SERVING_IMAGE,
            artifact_uri=artifacts,
            model_id="my-model" if first else None,
            parent_model=None if first else "my-model",
            is_default_version=first,
            version_aliases=aliases if aliases is not None else ["candidate"],
            labels=labels or {"blessed": "true"},
            display_name="my-model",
        )

    return upload_version


def container_error(error: exceptions.GoogleAPICallError) -> dict:
    """The serving container's JSON answer, which Vertex AI passes on as an HTTP 400
    FAILED_PRECONDITION error (api_core raises BadRequest over REST, FailedPrecondition over gRPC)."""
    body = error.response.json()["error"]
    assert (body["code"], body["status"]) == (400, "FAILED_PRECONDITION")
    return json.loads(body["message"])


def deploy(endpoint: aiplatform.Endpoint, version: str, split: dict[str, int]) -> None:
    model = aiplatform.Model("my-model", version=version)
    endpoint.deploy(model=model, traffic_split=split, machine_type="n1-standard-2")


def deployed_id(vertex_env: VertexStandins, version: str) -> str:
    return next(d.deployed_model_id for d in vertex_env.models.endpoint("ep").deployments if d.version_id == version)


def expected(version: str, instance: dict) -> float:
    return 1 / (1 + math.exp(-instance["fare"] / SCALES[version]))


def probabilities(answer: aiplatform.models.Prediction) -> list[float]:
    """The predictions of a model answering {"probabilities": [batch, 1]}: one [p] per instance."""
    assert all(len(row) == 1 for row in answer.predictions)
    return [row[0] for row in answer.predictions]


def test_versions_aliases_and_labels(vertex_env: VertexStandins, upload) -> None:
    first = upload(1, labels={"blessed": "true", "git_commit": "abc123"})
    second = upload(2, labels={"blessed": "false"})

    assert (first.resource_name, first.version_id) == (f"{PARENT}/models/my-model", "1")
    assert second.version_id == "2"
    model = vertex_env.models.model("my-model")
    assert model.aliases == {"default": "1", "candidate": "2"}  # version 1 always gets default
    assert model.version("1")["labels"] == {"blessed": "true", "git_commit": "abc123"}
    assert model.version("2")["artifactUri"] == "gs://models/my-model/2"
    assert aiplatform.Model("my-model", version="candidate").version_id == "2"
    assert aiplatform.Model("my-model").version_id == "1"  # no version: the default alias
    assert aiplatform.Model("my-model", version="2").labels == {"blessed": "false"}

    registry = aiplatform.models.ModelRegistry("my-model")
    assert [(v.version_id, sorted(v.version_aliases)) for v in registry.list_versions()] == [
        ("1", ["default"]),
        ("2", ["candidate"]),
    ]
    assert [v.version_id for v in registry.list_versions(filter='labels.blessed="true"')] == ["1"]


def test_an_alias_moves_between_versions_and_default_stays(vertex_env: VertexStandins, upload) -> None:
    upload(1)
    upload(2)
    registry = aiplatform.models.ModelRegistry("my-model")

    registry.add_version_aliases(["production"], version="1")
    registry.add_version_aliases(["production", "default"], version="2")
    assert vertex_env.models.model("my-model").aliases == {"production": "2", "default": "2", "candidate": "2"}

    registry.remove_version_aliases(["candidate"], version="2")
    assert "candidate" not in vertex_env.models.model("my-model").aliases
    with pytest.raises(exceptions.BadRequest, match="default alias cannot be removed"):
        registry.remove_version_aliases(["default"], version="2")
    with pytest.raises(exceptions.NotFound):
        aiplatform.Model("my-model", version="candidate")


def test_upload_errors(vertex_env: VertexStandins, upload) -> None:
    with pytest.raises(exceptions.NotFound):
        upload(2)  # no parent yet
    upload(1)
    with pytest.raises(exceptions.Conflict):
        upload(1)  # the model ID exists
    with pytest.raises(exceptions.BadRequest, match="Invalid version alias"):
        upload(2, aliases=["Not-An-Alias"])


def test_deploy_update_undeploy_keep_the_traffic_rules(vertex_env: VertexStandins, upload) -> None:
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
    assert vertex_env.models.model("my-model").version("2")["deployedModels"] == [
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
    assert "deployedModels" not in vertex_env.models.model("my-model").version("2")
    assert vertex_env.models.replica(second) is None


def test_a_deploy_that_fails_midway_leaves_the_endpoint_as_before(vertex_env: VertexStandins, upload) -> None:
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
            "model": f"{PARENT}/models/my-model@2",
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


def test_predict_answers_with_the_models_outputs(vertex_env: VertexStandins, upload) -> None:
    upload(1)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})

    answer = endpoint.predict(instances=INSTANCES, parameters={"ignored": True})

    assert probabilities(answer) == pytest.approx([expected("1", instance) for instance in INSTANCES], rel=1e-6)
    assert (answer.deployed_model_id, answer.model_version_id) == (deployed_id(vertex_env, "1"), "1")
    assert answer.model_resource_name == f"{PARENT}/models/my-model"
    record = vertex_env.models.predictions[-1]
    assert (record.version_id, record.instances, record.status) == ("1", 2, 200)
    assert record.latency_ms > 0


def test_raw_instances_sent_to_a_model_serving_examples_get_tf_servings_error(
    vertex_env: VertexStandins, upload
) -> None:
    upload(1, model="examples")
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})

    with pytest.raises(exceptions.BadRequest) as refused:
        endpoint.predict(instances=INSTANCES)

    message = container_error(refused.value)["error"]
    assert message in {
        f"Failed to process element: 0 key: {key} of 'instances' list. "
        f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}"
        for key in INSTANCES[0]
    }
    assert vertex_env.models.predictions[-1].status == 400

    examples = [{"b64": base64.b64encode(serialized_example(instance, FEATURES)).decode()} for instance in INSTANCES]
    answer = endpoint.predict(instances=examples)  # serving_default takes serialized tf.Examples
    assert probabilities(answer) == pytest.approx([expected("1", instance) for instance in INSTANCES], rel=1e-6)


def test_traffic_is_routed_at_random_by_the_split(vertex_env: VertexStandins, upload) -> None:
    upload(1)
    upload(2)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})
    deploy(endpoint, "2", {deployed_id(vertex_env, "1"): 90, "0": 10})
    vertex_env.models.seed_routing(7)

    answers = [endpoint.predict(instances=INSTANCES[:1]) for _ in range(200)]

    canary = [answer for answer in answers if answer.model_version_id == "2"]
    assert 10 <= len(canary) <= 32  # Binomial(200, 0.1): mean 20, sd 4.2
    assert [r.version_id for r in vertex_env.models.predictions].count("2") == len(canary)
    assert {a.deployed_model_id for a in canary} == {deployed_id(vertex_env, "2")}
    by_version = {answer.model_version_id: probabilities(answer)[0] for answer in answers}
    assert by_version["2"] == pytest.approx(expected("2", INSTANCES[0]), rel=1e-6)
    assert by_version["1"] == pytest.approx(expected("1", INSTANCES[0]), rel=1e-6)


def test_instances_reach_the_container_as_the_service_prints_protobuf_values() -> None:
    instance = {"fare": 12.0, "trip_seconds": 360, "big": 2**53 + 1, "tiny": 0.1 + 0.2, "company": "Café", "ok": True}

    assert value_json([instance, None]) == (
        '[{"fare": 12, "trip_seconds": 360, "big": 9007199254740992, "tiny": 0.30000000000000004, '
        '"company": "Café", "ok": true}, null]'
    )


def test_the_container_serves_tf_servings_own_routes(vertex_env: VertexStandins, upload) -> None:
    upload(1)
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    deploy(endpoint, "1", {"0": 100})
    replica = vertex_env.models.replica(deployed_id(vertex_env, "1"))
    assert replica is not None
    base = f"http://127.0.0.1:{replica.port}/v1/models/default"

    status = requests.get(base, timeout=5).json()
    columnar = requests.post(
        f"{base}:predict", json={"signature_name": "serving_examples", "inputs": [{"b64": ""}]}, timeout=5
    )
    metadata = requests.get(f"{base}/metadata", timeout=5).json()["metadata"]["signature_def"]["signature_def"]
    unknown = requests.post(f"{base}:predict", json={"signature_name": "nope", "instances": [1]}, timeout=5)

    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert columnar.json() == {"outputs": [[0.5]]}  # an empty example: fare 0
    assert sorted(metadata["serving_default"]["inputs"]) == ["company", "fare"]
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"error": 'Serving signature name: "nope" not found in signature def'},
    )


def test_a_model_that_cannot_be_loaded_fails_the_deploy(vertex_env: VertexStandins) -> None:
    aiplatform.Model.upload(
        serving_container_image_uri=TF_SERVING_IMAGE,
        artifact_uri="gs://test-staging-bucket/no-model-here",
        model_id="my-model",
        display_name="my-model",
    )
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")

    with pytest.raises(exceptions.FailedPrecondition, match="Model server exited unexpectedly") as failed:
        deploy(endpoint, "1", {"0": 100})

    assert "Failed to load model default: gs://test-staging-bucket/no-model-here holds no files" in str(failed.value)
    view = vertex_env.models.endpoint("ep")
    assert (view.deployments, view.traffic_split) == ([], {})


# A serving container of our own: health 200 (503 with NEVER_READY), predict answers 400 with its
# AIP_* environment, the identity it runs as and the path it was called on.
ECHO_SERVER = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ready = self.path == os.environ["AIP_HEALTH_ROUTE"] and not os.environ.get("NEVER_READY")
        self.send_response(200 if ready else 503)
        self.end_headers()

    def do_POST(self):
        env = {k: v for k, v in os.environ.items() if k.startswith("AIP_") or k == "RUNS_AS"}
        body = json.dumps({"env": env, "path": self.path}).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
ECHO_IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/serving/echo@sha256:" + "ab" * 32


@pytest.fixture
def echo_env(storage_emulator: StorageEmulator, tmp_path: Path) -> Iterator[VertexStandins]:
    """Fake Vertex AI whose containers are not kept warm, with an echo image, a 2 s health deadline
    and containers told which service account they run as."""
    runtime = ContainerRuntime(tmp_path / "logs", cloud_env=lambda account: {"RUNS_AS": account or "default"})
    runtime.add_image(ECHO_IMAGE, LocalImage(workdir=tmp_path))
    with (
        ReplicaPool(runtime, ready_timeout=2.0) as pool,
        vertex_standins(storage=storage_emulator, replicas=pool) as env,
    ):
        yield env


def upload_echo(model_id: str, env: dict[str, str] | None = None) -> aiplatform.Model:
    return aiplatform.Model.upload(
        serving_container_image_uri=ECHO_IMAGE,
        serving_container_command=["python", "-c", ECHO_SERVER],
        serving_container_args=["$(AIP_HTTP_PORT)"],
        serving_container_environment_variables=env or {},
        serving_container_predict_route="/predict",
        artifact_uri="gs://models/echo",
        model_id=model_id,
        display_name=model_id,
    )


def test_containers_get_vertex_ais_environment_and_stop_when_undeployed(echo_env: VertexStandins) -> None:
    model = upload_echo("echo")
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4", service_account="serve@p.iam.gserviceaccount.com")
    deployed = endpoint.gca_resource.deployed_models[0].id

    with pytest.raises(exceptions.BadRequest) as refused:
        endpoint.predict(instances=[1])
    echoed = container_error(refused.value)
    assert echoed["path"] == "/predict"
    env = echoed["env"]
    assert env.pop("AIP_HTTP_PORT").isdigit()
    assert env == {
        "AIP_MODE": "PREDICTION",
        "AIP_MODE_VERSION": "1.0.0",
        "AIP_FRAMEWORK": "CUSTOM_CONTAINER",
        "AIP_PROJECT_NUMBER": DEFAULT_PROJECT_NUMBER,
        "AIP_ENDPOINT_ID": "ep",
        "AIP_DEPLOYED_MODEL_ID": deployed,
        "AIP_MACHINE_TYPE": "n1-standard-4",
        "AIP_HEALTH_ROUTE": f"/v1/endpoints/ep/deployedModels/{deployed}",
        "AIP_PREDICT_ROUTE": "/predict",
        "AIP_STORAGE_URI": "gs://models/echo",
        "RUNS_AS": "serve@p.iam.gserviceaccount.com",
    }
    replica = echo_env.models.replica(deployed)
    assert replica is not None and replica.exit_code is None

    endpoint.undeploy_all()

    assert replica.container.process.wait(timeout=10) is not None
    assert echo_env.models.replica(deployed) is None


def test_a_container_that_never_becomes_healthy_fails_the_deploy(echo_env: VertexStandins) -> None:
    model = upload_echo("never-ready", env={"NEVER_READY": "1"})
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")

    with pytest.raises(exceptions.FailedPrecondition, match="Model server never became ready") as failed:
        model.deploy(endpoint=endpoint, machine_type="n1-standard-4")

    assert "within 2 s" in str(failed.value)
    assert echo_env.models.endpoint("ep").deployments == []
    assert echo_env.models.replica_pool.replicas == []  # stopped


def test_an_image_the_runtime_does_not_know_fails_the_deploy(vertex_env: VertexStandins) -> None:
    model = aiplatform.Model.upload(
        serving_container_image_uri="us-docker.pkg.dev/vertex-ai/prediction/unknown:latest",
        artifact_uri="gs://models/unknown",
        model_id="unknown",
        display_name="unknown",
    )
    endpoint = aiplatform.Endpoint.create(display_name="ep", endpoint_id="ep")

    with pytest.raises(exceptions.FailedPrecondition, match="failed to pull image"):
        model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
