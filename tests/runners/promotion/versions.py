"""What the promotion tests share: the registry model and endpoint of configs/vertex-dev.yaml, tiny
SavedModels with the model's serving signatures (its raw features, models/features.py, typed as in
the curated schema; the answer of its task, models/label.py), and reading the stand-ins' state.

conftest.py turns these into fixtures (`tiny_models`, `register`, `promote`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.registration.settings import RegistrySettings
from components.serving_checks import BINARY, MULTICLASS
from models import features, label
from pipeline.config import BASE_CONFIG, PipelineConfig, load_config, vertex_config_path
from runners import errors
from tests.runners import columns
from tools.standins.fixtures import VertexStandins


def dev_config() -> PipelineConfig:
    config = load_config([BASE_CONFIG, vertex_config_path("dev")])
    assert config.registry is not None and config.endpoint is not None
    return config


DEV = dev_config()
MODEL = DEV.registry.model_id
ENDPOINT = DEV.endpoint.endpoint_id
SETTINGS = RegistrySettings(
    project=DEV.runner.project,
    region=DEV.runner.region,
    model_id=MODEL,
    display_name=DEV.registry.display_name,
    serving_image="us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
    pipeline_root=DEV.runner.pipeline_root,
)
MUTATING = ("POST", "PATCH", "DELETE")
SMOKE_INSTANCES = DEV.serving_instances_path
SLOW_SECONDS = 0.3  # the "slow" model's answers; above tight_smoke_test's 200 ms, below the 2 s of vertex-dev
COLD_START_SECONDS = 1.2  # the "cold_start" model's first answer only; above COLD_START_LIMIT_MS
COLD_START_LIMIT_MS = 600


def raw_feature_types() -> dict[str, tf.DType]:
    """The raw features serving_default takes, typed as the schema types them."""
    types = {schema_pb2.INT: tf.int64, schema_pb2.FLOAT: tf.float32, schema_pb2.BYTES: tf.string}
    return {key: types[kind] for key, kind in columns.feature_types().items()}


# The tiny models answer from one feature: the first numeric one (the length of a text one otherwise).
SIGNAL = next(
    (key for key, kind in columns.feature_types().items() if kind in (schema_pb2.INT, schema_pb2.FLOAT)),
    features.RAW_FEATURE_KEYS[0],
)
Answer = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


def task_answer(scale: float = 10.0) -> Answer:
    """The task's answer (models/label.py), [batch, output width], from z = SIGNAL / scale: a binary
    task's probability sigmoid(z); a multi-class task's softmax(0, z, 2z, ...); a regression's z."""
    task = label.TASK

    def answer(inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        value = inputs[SIGNAL]
        number = tf.strings.length(value) if value.dtype == tf.string else value
        z = tf.reshape(tf.cast(number, tf.float32) / scale, [-1, 1])
        if task.kind == BINARY:
            return tf.sigmoid(z)
        if task.kind == MULTICLASS:
            return tf.nn.softmax(z * tf.range(task.output_width, dtype=tf.float32), axis=-1)
        return z

    return answer


def expected_answers(instances: Sequence[Mapping[str, Any]], scale: float = 10.0) -> list[list[float]]:
    """What `task_answer(scale)` answers to `instances`, computed here."""
    task = label.TASK
    rows = []
    for instance in instances:
        value = instance[SIGNAL]
        z = (len(value.encode()) if isinstance(value, str) else float(value)) / scale
        if task.kind == BINARY:
            rows.append([1 / (1 + math.exp(-z))])
        elif task.kind == MULTICLASS:
            exponentials = [math.exp(z * k) for k in range(task.output_width)]
            rows.append([e / sum(exponentials) for e in exponentials])
        else:
            rows.append([z])
    return rows


def out_of_range(answer: Answer) -> Answer:
    """Answers no model of the task may give: probabilities above 1 (a regression: infinity)."""
    if label.TASK.is_classification:
        return lambda inputs: answer(inputs) + 1.0
    return lambda inputs: answer(inputs) + float("inf")


OUT_OF_RANGE_PROBLEM = "outside [0, 1]" if label.TASK.is_classification else "not finite"


def failing(answer: Answer) -> Answer:
    """An answer whose op fails at run time, whatever the request."""

    def fail(inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        result = answer(inputs)
        check = tf.debugging.assert_less(tf.shape(result)[0], 0, message="the model refuses every request")
        with tf.control_dependencies([check]):
            return tf.identity(result)

    return fail


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
