"""`promote rollback` still serves the previous version after the pipeline root has been emptied: registered
versions point at their copies in the models bucket, served by the TF Serving stand-in.

Each deployment starts its own serving container here (no warm replicas), so every deploy really
loads the version's files from where its artifactUri points, after the cleanup too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from google.cloud import aiplatform

from components.registration.executor import registered_artifacts
from components.registration.settings import PREBUILT, RegistrySettings
from components.registration.upload import register_version
from pipeline.config import read_serving_instances
from pipeline.pipeline import registry_settings
from runners import cli, errors
from tests.runners.promotion.versions import DEV, ENDPOINT, MODEL, expected_answers, raw_feature_types, task_answer
from tests.tools.standins.saved_models import save_model, upload_folder
from tools.standins.containers import ContainerRuntime
from tools.standins.fixtures import VertexStandins, vertex_standins
from tools.standins.model_server import register_tf_serving_image
from tools.standins.serving_replicas import ReplicaPool
from tools.standins.storage import StorageServer
from tools.standins.storage_model import StorageState

PROJECT_NUMBER = "123456789012"
SCALES = {1: 10.0, 2: 3.0}  # version N answers task_answer(SCALES[N]) (versions.py)
# Google's prebuilt image, for the layout before the models bucket (the SavedModel in the pipeline root).
PREBUILT_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15@sha256:" + "e" * 64
INSTANCES = read_serving_instances(DEV.serving_instances_path)


def dev_settings() -> RegistrySettings:
    settings = registry_settings(DEV)
    assert settings is not None and settings.models_bucket is not None
    return settings


SETTINGS = dev_settings()
PIPELINES_BUCKET = SETTINGS.pipeline_root.removeprefix("gs://").split("/", 1)[0]
MODELS_BUCKET = SETTINGS.models_bucket.removeprefix("gs://")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("rollback-models")
    raw = raw_feature_types()
    return {version: save_model(folder / f"v{version}", raw, task_answer(scale)) for version, scale in SCALES.items()}


class CloudStorage(StorageServer):
    """The Cloud Storage stand-in (rewriteTo and preconditions as GCS answers them), emptied as
    `vertex_standins` empties the storage it is given."""

    def reset(self, bucket_names: list[str]) -> None:
        self.state = StorageState()
        for name in bucket_names:
            self.create_bucket(name)


@pytest.fixture(scope="module")
def cloud_storage() -> Iterator[CloudStorage]:
    with CloudStorage() as server:
        yield server


@pytest.fixture
def vertex_env(cloud_storage: CloudStorage, tmp_path: Path) -> Iterator[VertexStandins]:
    """The stand-ins with a container runtime that knows the configured TF Serving image (and the
    prebuilt one), and a pool that starts one container per deployment."""
    runtime = ContainerRuntime(
        tmp_path / "container-logs", cloud_env=lambda _account: {"STORAGE_EMULATOR_HOST": cloud_storage.url}
    )
    register_tf_serving_image(runtime, SETTINGS.serving_image, tmp_path, container="tf-serving")
    register_tf_serving_image(runtime, PREBUILT_IMAGE, tmp_path, container="prebuilt")
    storage: Any = cloud_storage  # it has what vertex_standins uses of a StorageEmulator
    with ReplicaPool(runtime) as pool, vertex_standins(storage=storage, replicas=pool) as env:
        env.create_bucket(PIPELINES_BUCKET)
        env.create_bucket(MODELS_BUCKET)
        yield env


def promote(env: VertexStandins, *args: str) -> int:
    return cli.main(["promote", "--env", "dev", "--api-endpoint", env.vertex_url, *args])


def register(env: VertexStandins, settings: RegistrySettings, version: int, saved_model: Path) -> str:
    """What a run's Trainer and ModelRegistration leave: the export in the pipeline root, then the
    registered version (its artifacts copied as the executor copies them); returns its artifactUri."""
    job = f"{DEV.pipeline_name}-vertex-dev-2026120{version}-030000-ab1{version}"
    export = f"{settings.pipeline_root}/{PROJECT_NUMBER}/{job}/Trainer_{version}/model/Format-Serving"
    upload_folder(env.storage_client(), saved_model, export)
    artifact_uri = registered_artifacts(settings, export, job)
    registered = register_version(settings, artifact_uri, {"blessed": "true"}, f"run {job}")
    assert registered.version_id == str(version)
    return artifact_uri


def empty_the_pipeline_root(env: VertexStandins) -> None:
    client = env.storage_client()
    prefix = SETTINGS.pipeline_root.removeprefix(f"gs://{PIPELINES_BUCKET}/") + "/"
    for blob in client.list_blobs(PIPELINES_BUCKET, prefix=prefix):
        blob.delete()
    assert list(client.list_blobs(PIPELINES_BUCKET)) == []


def traffic(env: VertexStandins) -> dict[str, int]:
    return env.models.endpoint(ENDPOINT).traffic_by_version


def promote_v1_then_v2(env: VertexStandins, settings: RegistrySettings, tiny_models: dict[int, Path]) -> list[str]:
    artifacts = [register(env, settings, 1, tiny_models[1])]
    assert promote(env, "canary", "--version", "1", "--traffic", "10") == errors.EXIT_OK  # the first gets it all
    assert promote(env, "finish") == errors.EXIT_OK
    artifacts.append(register(env, settings, 2, tiny_models[2]))
    assert promote(env, "canary", "--version", "2", "--traffic", "10") == errors.EXIT_OK
    assert promote(env, "finish") == errors.EXIT_OK
    assert traffic(env) == {"2": 100}  # v1 undeployed, its container stopped
    return artifacts


def test_rollback_serves_v1_from_the_models_bucket_after_the_pipeline_root_is_emptied(
    vertex_env: VertexStandins, tiny_models: dict[int, Path]
) -> None:
    artifacts = promote_v1_then_v2(vertex_env, SETTINGS, tiny_models)
    assert all(uri.startswith(f"gs://{MODELS_BUCKET}/{MODEL}/") for uri in artifacts)

    empty_the_pipeline_root(vertex_env)
    assert promote(vertex_env, "rollback") == errors.EXIT_OK

    assert traffic(vertex_env) == {"1": 100}
    assert vertex_env.models.model(MODEL).aliases["production"] == "1"
    endpoint = aiplatform.Endpoint(f"projects/{SETTINGS.project}/locations/{SETTINGS.region}/endpoints/{ENDPOINT}")
    answer = endpoint.predict(instances=INSTANCES)
    assert answer.model_version_id == "1"
    expected = expected_answers(INSTANCES, SCALES[1])
    assert len(answer.predictions) == len(expected)
    for served, computed in zip(answer.predictions, expected, strict=True):
        assert served == pytest.approx(computed, rel=1e-5, abs=1e-6)
    (deployment,) = vertex_env.models.endpoint(ENDPOINT).deployments
    replica = vertex_env.models.replica(deployment.deployed_model_id)
    assert replica is not None
    started = replica.container.log_path.read_text().splitlines()[0]
    assert f"--model_base_path={artifacts[0]} " in started  # TF Serving read v1's copy


def test_versions_registered_in_the_pipeline_root_cannot_be_rolled_back_to_after_it_is_emptied(
    vertex_env: VertexStandins, tiny_models: dict[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The layout before the models bucket (prebuilt image, artifactUri in the pipeline root): the
    same story fails, which is what the models bucket is for."""
    in_place = replace(SETTINGS, serving_container=PREBUILT, serving_image=PREBUILT_IMAGE, models_bucket=None)
    artifacts = promote_v1_then_v2(vertex_env, in_place, tiny_models)
    assert all(uri.startswith(SETTINGS.pipeline_root) for uri in artifacts)

    empty_the_pipeline_root(vertex_env)
    capsys.readouterr()
    assert promote(vertex_env, "rollback") == errors.EXIT_FAILED

    error = capsys.readouterr().err
    assert "Model server exited unexpectedly" in error and f"{artifacts[0]} holds no files" in error
    assert traffic(vertex_env) == {"2": 100}
    assert vertex_env.models.model(MODEL).aliases["production"] == "2"
