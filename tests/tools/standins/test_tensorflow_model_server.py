"""The tensorflow/serving image stand-in (model_server.py, container="tf-serving"), started as Vertex AI
starts a custom serving container: the Model's containerSpec with its $(VAR) references expanded
(serving_replicas.serving_container), the model read from gs:// in the storage emulator."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tensorflow as tf

from tests.tools.standins.saved_models import fare_probability, save_model, upload_folder
from tools.standins.containers import ContainerRuntime
from tools.standins.fixtures import environment_variable
from tools.standins.gcs_emulator import StorageEmulator
from tools.standins.model_server import (
    FlagError,
    latest_version,
    parse_model_server_flags,
    register_tf_serving_image,
)
from tools.standins.serving_replicas import Replica, ReplicaFailed, ReplicaPool, serving_container

NAME = "my-model"
IMAGE = "us-central1-docker.pkg.dev/test-project/dockerhub/tensorflow/serving@sha256:" + "ab" * 32
BUCKET = "models"
FEATURES = {"fare": tf.float32, "company": tf.string}
SCALES = {1: 10.0, 2: 5.0}  # version N answers sigmoid(fare / SCALES[N])
# What components/registration/upload.py registers for serving_container tf-serving.
CONTAINER_SPEC: dict[str, Any] = {
    "imageUri": IMAGE,
    "command": ["tensorflow_model_server"],
    "args": [f"--model_name={NAME}", "--model_base_path=$(AIP_STORAGE_URI)", "--rest_api_port=$(AIP_HTTP_PORT)"],
    "ports": [{"containerPort": 8080}],
    "predictRoute": f"/v1/models/{NAME}:predict",
    "healthRoute": f"/v1/models/{NAME}",
}
NO_VERSION_WARNING = (
    "No versions of servable my-model found under base path {base}. "
    "Did you forget to name your leaf directory as a number (eg. '/1/')?"
)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("tf-serving-models")
    return {
        version: save_model(folder / f"v{version}", FEATURES, fare_probability(scale))
        for version, scale in SCALES.items()
    }


@pytest.fixture(scope="module")
def runtime(storage_emulator: StorageEmulator, tmp_path_factory: pytest.TempPathFactory) -> ContainerRuntime:
    state = tmp_path_factory.mktemp("tf-serving-image")
    runtime = ContainerRuntime(
        state / "logs", cloud_env=lambda _account: {"STORAGE_EMULATOR_HOST": storage_emulator.url}
    )
    register_tf_serving_image(runtime, IMAGE, state, container="tf-serving")
    return runtime


@pytest.fixture
def bucket(storage_emulator: StorageEmulator) -> Iterator[Any]:
    """The emptied emulator with bucket `models`, and a client of it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage_emulator.reset([BUCKET])
    with environment_variable("STORAGE_EMULATOR_HOST", storage_emulator.url):
        yield storage.Client(project="test-project", credentials=AnonymousCredentials())


@pytest.fixture
def pool(runtime: ContainerRuntime) -> Iterator[ReplicaPool]:
    with ReplicaPool(runtime, ready_timeout=120) as replicas:
        yield replicas


def start(pool: ReplicaPool, base_path: str, **changes: Any) -> Replica:
    """The container Vertex AI starts for a version with artifactUri `base_path`."""
    spec, health, predict = serving_container(
        {**CONTAINER_SPEC, **changes},
        artifact_uri=base_path,
        endpoint_id="7",
        deployed_model_id="8",
        project_number="123456789012",
        machine_type="n1-standard-2",
    )
    return pool.launch(spec, name="tf-serving", health_route=health, predict_route=predict)


def log_of(replica: Replica) -> str:
    return replica.container.log_path.read_text()


def wait_for_log(replica: Replica, text: str, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_of(replica)
        if text in log:
            return log
        assert replica.exit_code is None, log
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged within {timeout:.0f} s:\n{log_of(replica)}")


def get(replica: Replica, path: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{replica.port}{path}", timeout=10)


def test_serves_the_highest_numbered_version_under_the_base_path(bucket, pool, saved_models) -> None:
    base = f"gs://{BUCKET}/{NAME}/run-1"
    upload_folder(bucket, saved_models[1], f"{base}/1")
    upload_folder(bucket, saved_models[2], f"{base}/2")
    upload_folder(bucket, saved_models[1], f"{base}/tmp")  # not a number: not a version

    replica = start(pool, base)
    pool.wait_ready(replica)

    status = get(replica, f"/v1/models/{NAME}")
    assert status.json() == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    instances = [{"fare": 12.5, "company": "Flash Cab"}, {"fare": 3.0, "company": ""}]
    code, body = replica.predict(json.dumps({"instances": instances}).encode(), timeout=30)
    assert code == 200
    predictions = [row for (row,) in json.loads(body)["predictions"]]
    assert predictions == pytest.approx([1 / (1 + math.exp(-i["fare"] / SCALES[2])) for i in instances])
    # Only TF Serving's own routes: Vertex AI's default route of the deployed model is not one.
    default_route = get(replica, "/v1/endpoints/7/deployedModels/8")
    assert (default_route.status_code, default_route.json()) == (
        400,
        {"error": "Malformed request: GET /v1/endpoints/7/deployedModels/8"},
    )
    assert get(replica, f"/v1/models/{NAME}/versions/1").status_code == 404
    log = log_of(replica)
    assert log.splitlines()[0] == (
        f"$ tensorflow_model_server --model_name={NAME} --model_base_path={base} --rest_api_port={replica.port}"
    )
    assert f"Successfully loaded servable version {{name: {NAME} version: 2}}" in log
    assert f"Exporting HTTP/REST API at:localhost:{replica.port} ..." in log


@pytest.mark.parametrize(
    ("layout", "logged"),
    [
        ("saved_model_at_the_root", "W tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:257] "
         + NO_VERSION_WARNING),
        ("nothing", "E tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:358] "
         "FileSystemStoragePathSource encountered a filesystem access error: Could not find base path {base} for "
         "servable my-model with error NOT_FOUND: The specified path {base} was not found."),
    ],
)  # fmt: skip
def test_without_a_version_folder_it_waits_and_never_becomes_healthy(
    bucket, runtime, saved_models, layout: str, logged: str
) -> None:
    base = f"gs://{BUCKET}/{NAME}/run-2"
    if layout == "saved_model_at_the_root":  # the prebuilt container's layout
        upload_folder(bucket, saved_models[1], base)

    with ReplicaPool(runtime, ready_timeout=3) as short_pool:
        replica = start(short_pool, base)
        with pytest.raises(ReplicaFailed, match=f"no 200 from GET /v1/models/{NAME} within 3 s"):
            short_pool.wait_ready(replica)

    log = log_of(replica)
    assert log.count(logged.format(base=base)) >= 2  # polled every second, as TF Serving does
    assert "Failed to start server" not in log and "Exporting HTTP/REST API" not in log


def test_a_highest_version_without_a_saved_model_stops_the_server(bucket, pool, saved_models) -> None:
    base = f"gs://{BUCKET}/{NAME}/run-3"
    upload_folder(bucket, saved_models[1], f"{base}/1")
    upload_folder(bucket, saved_models[1] / "variables", f"{base}/3/variables")  # no saved_model.pb

    replica = start(pool, base)
    with pytest.raises(ReplicaFailed, match="exited with status 255"):
        pool.wait_ready(replica)

    assert (
        f"Failed to start server. Error: UNKNOWN: 1 model(s) did not become available: {{{{name: {NAME} version: 3}} "
        "due to error: NOT_FOUND: Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
        f"{base}/3. Check that the directory exists and that you have the right permissions for accessing it.}}, }}"
    ) in log_of(replica)


def test_without_rest_api_port_there_is_no_rest_api(bucket, pool, saved_models) -> None:
    base = f"gs://{BUCKET}/{NAME}/run-4"
    upload_folder(bucket, saved_models[1], f"{base}/1")

    replica = start(pool, base, args=[f"--model_name={NAME}", "--model_base_path=$(AIP_STORAGE_URI)"])

    log = wait_for_log(replica, f"Successfully loaded servable version {{name: {NAME} version: 1}}")
    assert "Exporting HTTP/REST API" not in log
    assert not replica.healthy(timeout=1)
    assert replica.exit_code is None


def test_the_image_entrypoint_runs_without_a_command(bucket, pool, saved_models) -> None:
    """tf_serving_entrypoint.sh: --model_name from $MODEL_NAME; later flags (the args) win."""
    base = f"gs://{BUCKET}/{NAME}/run-5"
    upload_folder(bucket, saved_models[1], f"{base}/1")

    replica = start(
        pool,
        base,
        command=[],
        args=["--model_base_path=$(AIP_STORAGE_URI)", "--rest_api_port=$(AIP_HTTP_PORT)"],
        env=[{"name": "MODEL_NAME", "value": NAME}],
    )
    pool.wait_ready(replica)

    assert get(replica, f"/v1/models/{NAME}").json()["model_version_status"][0]["version"] == "1"
    assert log_of(replica).splitlines()[0] == (
        f"$ tf_serving_entrypoint.sh --model_base_path={base} --rest_api_port={replica.port}"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--rest_api_port=8080", "--model_name=m", "--model_base_path=gs://b/m"], (8080, "m", "gs://b/m", [])),
        # Only --name=value: a separate value is not the flag's (TF Serving then exports no REST API).
        (["--rest_api_port", "8080"], (0, "default", "", ["--rest_api_port", "8080"])),
        (["-rest_api_port=8080", "--no_such_flag=1"], (0, "default", "", ["-rest_api_port=8080", "--no_such_flag=1"])),
        (["--model_name=a", "--model_name=b", "--enable_batching"], (0, "b", "", [])),  # the last one wins
    ],
)
def test_flags_parse_as_tensorflow_flags_do(argv: list[str], expected: tuple[Any, ...]) -> None:
    flags = parse_model_server_flags(argv)
    assert (flags.rest_api_port, flags.model_name, flags.model_base_path, flags.unknown) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rest_api_port=$(AIP_HTTP_PORT)"], "Couldn't interpret value $(AIP_HTTP_PORT) for flag rest_api_port."),
        (["--port=99999999999"], "Couldn't interpret value 99999999999 for flag port."),
        (["--enable_batching=yes"], "Couldn't interpret value yes for flag enable_batching."),
    ],
)
def test_a_value_that_does_not_parse_is_an_error(argv: list[str], message: str) -> None:
    """An unexpanded $(VAR) reaches the server as text, and it refuses to start."""
    with pytest.raises(FlagError) as error:
        parse_model_server_flags(argv)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        (["1", "2", "10", "tmp", "saved_model.pb"], (10, "10")),
        (["007", "3"], (7, "007")),
        (["saved_model.pb", "variables", "assets"], None),
        ([], None),
    ],
)
def test_the_latest_version_policy(children: list[str], expected: tuple[int, str] | None) -> None:
    assert latest_version(children) == expected
