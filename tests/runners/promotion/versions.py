"""What the promotion tests share: the registry model and endpoint of configs/vertex-dev.yaml, tiny
SavedModels with the taxi model's serving signatures, and reading the stand-ins' state.

conftest.py turns these into fixtures (`taxi_models`, `register`, `promote`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.registration.settings import RegistrySettings
from models import features
from pipeline.paths import REPO_ROOT
from runners import errors
from tools.standins.fixtures import VertexStandins

MODEL = "taxi-tips"
ENDPOINT = "taxi-tips-dev"  # configs/vertex-dev.yaml
SETTINGS = RegistrySettings(
    project="my-tfx-dev",
    region="us-central1",
    model_id=MODEL,
    display_name=MODEL,
    serving_image="us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
    pipeline_root="gs://my-tfx-dev-pipelines/taxi-tips",
)
MUTATING = ("POST", "PATCH", "DELETE")
SCHEMA = REPO_ROOT / "schema" / "schema.pbtxt"
SMOKE_INSTANCES = REPO_ROOT / "configs" / "smoke_instances.json"
SLOW_SECONDS = 0.3  # the "slow" model's answers; above tight_smoke_test's 200 ms, below the 2 s of vertex-dev
COLD_START_SECONDS = 1.2  # the "cold_start" model's first answer only; above COLD_START_LIMIT_MS
COLD_START_LIMIT_MS = 600


def raw_feature_types() -> dict[str, tf.DType]:
    """The raw features serving_default takes, typed as the schema types them."""
    schema = text_format.Parse(SCHEMA.read_text(), schema_pb2.Schema())
    types = {schema_pb2.INT: tf.int64, schema_pb2.FLOAT: tf.float32, schema_pb2.BYTES: tf.string}
    kinds = {feature.name: types[feature.type] for feature in schema.feature}
    return {key: kinds[key] for key in features.RAW_FEATURE_KEYS}


def save_cold_start_model(
    folder: Path, features: Mapping[str, tf.DType], probability: Any, cold_seconds: float
) -> Path:
    """A model whose first answer takes `cold_seconds` (as a first request pays for setting up the
    graph), and every later one answers at once; `serving_default` takes the raw features."""
    spec = {key: tf.TensorSpec([None], dtype, name=key) for key, dtype in features.items()}

    class ColdStart(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.answered = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[spec])
        def serve(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            start = tf.timestamp()
            wait = tf.where(self.answered == 0, tf.constant(cold_seconds, tf.float64), tf.constant(0.0, tf.float64))
            waited = tf.while_loop(lambda now: now - start < wait, lambda now: [tf.timestamp()], [start])
            with tf.control_dependencies([waited[0]]):
                counted = self.answered.assign_add(1)
            with tf.control_dependencies([counted]):
                return {"probabilities": tf.identity(probability(inputs))}

    module = ColdStart()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function()})
    return folder


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


def traffic(env: VertexStandins) -> dict[str, int]:
    return env.models.endpoint(ENDPOINT).traffic_by_version


def aliases(env: VertexStandins) -> dict[str, str]:
    return env.models.model(MODEL).aliases


def changes(env: VertexStandins, since: int = 0) -> list[str]:
    """Mutating calls after the `since`-th request, as 'METHOD route'."""
    return [
        f"{r.method} {r.route}"
        for r in env.server.requests[since:]
        if r.method in MUTATING and r.route != "endpoints.predict"
    ]


def in_production(env: VertexStandins, promote, register, version: int) -> None:
    """Registers `version` and promotes it to 100% (the first version needs no production)."""
    register(version)
    assert promote("canary", "--version", str(version), "--traffic", "10").status == errors.EXIT_OK
    assert promote("finish").status == errors.EXIT_OK
