"""The promotion CLI runs against the fake Vertex AI server (tools/standins) through the real SDK.

Deployed versions are tiny real SavedModels served by the TF Serving stand-in; a replica of each
distinct model is started once per session and shared by its deployments (warm_serving_replicas).
"""

from collections.abc import Iterator

import pytest

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
