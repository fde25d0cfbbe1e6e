"""Warm serving replicas (ReplicaPool keep_warm) are shared by deployments whose containers differ only
by per-deployment values, also where $(VAR) wrote those values into the command or args."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.standins.containers import ContainerRuntime, LocalImage
from tools.standins.serving_replicas import ReplicaPool, serving_container

IMAGE = "registry.example/sleeper@sha256:" + "cd" * 32
SLEEP = "import sys, time; time.sleep(60)"


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[ReplicaPool]:
    runtime = ContainerRuntime(tmp_path / "logs")
    runtime.add_image(IMAGE, LocalImage(workdir=tmp_path))
    with ReplicaPool(runtime, keep_warm=True, fingerprint=lambda uri: "the same files") as replicas:
        yield replicas


def launch(pool: ReplicaPool, deployment: str, args: list[str], storage_uri: str = "gs://models/m/1") -> Any:
    spec, health, predict = serving_container(
        {"imageUri": IMAGE, "command": [sys.executable, "-c", SLEEP], "args": args},
        artifact_uri=storage_uri,
        endpoint_id="7",
        deployed_model_id=deployment,
        project_number="123456789012",
        machine_type="n1-standard-2",
    )
    return pool.launch(spec, name=f"deployment-{deployment}", health_route=health, predict_route=predict)


def test_args_that_name_the_port_and_storage_uri_do_not_prevent_sharing(pool: ReplicaPool) -> None:
    args = ["--model_base_path=$(AIP_STORAGE_URI)", "--rest_api_port=$(AIP_HTTP_PORT)", "$(AIP_DEPLOYED_MODEL_ID)"]

    first = launch(pool, "1", args)
    second = launch(pool, "2", args, storage_uri="gs://elsewhere/same-files")

    assert second is first and first.users == 2
    assert (
        first.container.log_path.read_text()
        .splitlines()[0]
        .endswith(f"--model_base_path=gs://models/m/1 --rest_api_port={first.port} 1")
    )


def test_other_args_get_another_container(pool: ReplicaPool) -> None:
    first = launch(pool, "1", ["--rest_api_port=$(AIP_HTTP_PORT)", "--model_name=a"])
    second = launch(pool, "2", ["--rest_api_port=$(AIP_HTTP_PORT)", "--model_name=b"])

    assert second is not first
    assert len(pool.replicas) == 2
