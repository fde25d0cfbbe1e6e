"""The promotion CLI runs against the fake Vertex AI server (tools/standins) through the real SDK.

Deployed versions are tiny real SavedModels served by the TF Serving stand-in; a replica of each
distinct model is started once per session and shared by its deployments (warm_serving_replicas).
`register` pushes one of them where a pipeline run would and registers it; `promote` runs
`python -m pipeline promote --env dev ...` against the stand-ins (versions.py has the helpers).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from components.registration.upload import register_version
from runners import cli
from tests.runners.promotion.versions import (
    COLD_START_SECONDS,
    SETTINGS,
    SLOW_SECONDS,
    Result,
    failing,
    out_of_range,
    raw_feature_types,
    save_cold_start_model,
    task_answer,
)
from tests.tools.standins.saved_models import save_model, upload_folder
from tools.standins.fixtures import (  # noqa: F401
    VertexStandins,
    storage_emulator,
    vertex_standins,
    warm_serving_replicas,
)
from tools.standins.gcs_emulator import StorageEmulator
from tools.standins.serving_replicas import ReplicaPool


@pytest.fixture
def vertex_env(storage_emulator: StorageEmulator, warm_serving_replicas: ReplicaPool) -> Iterator[VertexStandins]:  # noqa: F811
    with vertex_standins(storage=storage_emulator, replicas=warm_serving_replicas) as env:
        yield env


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-models")
    raw, answer = raw_feature_types(), task_answer()
    return {
        "good": save_model(folder / "good", raw, answer),
        "examples_default": save_model(folder / "examples", raw, answer, default_takes_examples=True),
        "failing": save_model(folder / "failing", raw, failing(answer)),
        "slow": save_model(folder / "slow", raw, answer, delay_seconds=SLOW_SECONDS),
        "out_of_range": save_model(folder / "out-of-range", raw, out_of_range(answer)),
        "cold_start": save_cold_start_model(folder / "cold-start", raw, answer, COLD_START_SECONDS),
    }


@pytest.fixture
def promote(vertex_env: VertexStandins, capsys: pytest.CaptureFixture[str]):
    def run(*args: str, config: Path | None = None) -> Result:
        capsys.readouterr()
        where = ["--config", str(config)] if config else ["--env", "dev"]
        try:
            status = cli.main(["promote", *where, "--api-endpoint", vertex_env.vertex_url, *args])
        except SystemExit as exit:  # argparse refuses malformed arguments by exiting, as the process would
            status = exit.code
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def register(vertex_env: VertexStandins, tiny_models: dict[str, Path]):
    """Pushes one of `tiny_models` where a pipeline run would and registers it as `version`."""
    client = vertex_env.storage_client()
    bucket = SETTINGS.pipeline_root.removeprefix("gs://").split("/")[0]  # the pipeline root's bucket

    def run(version: int, blessed: bool = True, model: str = "good") -> None:
        labels = {"blessed": "true"} if blessed else {"git_commit": "abc123"}
        artifacts = upload_folder(client, tiny_models[model], f"gs://{bucket}/run-{version}/model")
        registered = register_version(SETTINGS, artifacts, labels, "test")
        assert registered.version_id == str(version)

    return run
