"""Serving smoke test of an exported SavedModel: the stand-in for InfraValidator, which does not run
on Vertex AI Pipelines.

The model is loaded the way a server loads it, and a few rows of the eval split go through both
serving signatures: as raw feature values (`serving_default`, which TF Serving behind a Vertex AI
endpoint calls with the request's JSON `instances`) and as serialized tf.Examples
(`serving_examples`, for TFMA and batch prediction). The declared serving instances (the JSON
instances the endpoint's smoke test sends after a deploy) go through `serving_default` as they are.
It passes when every answer is one of the task's (`serving_checks.Task`): shaped
[rows, task.output_width], a probability in [0, 1] per class (summing to 1 for multi-class) or a
finite value (regression), and both signatures answer the same on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf
from tfx.dsl.io import fileio

from components.serving_checks import (
    FeatureValue,
    Instance,
    Task,
    instance_problems,
    prediction_problems,
    value_type_problems,
)

# The SavedModel's signatures (the model's serving code exports them under these names).
DEFAULT_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "serving_examples"
# Largest difference allowed between the two signatures on the same row.
TOLERANCE = 1e-4


class SmokeTestError(RuntimeError):
    """The model does not serve; the message says what was wrong."""


@dataclass(frozen=True)
class SmokeTestResult:
    task: Task
    rows: int
    low: float  # the smallest and largest value answered (of any class)
    high: float
    max_difference: float
    instances: int = 0  # declared serving instances answered

    def summary(self) -> str:
        what = "values" if self.task.kind == "regression" else "probabilities"
        declared = (
            f" and {self.instances} declared serving instances through {DEFAULT_SIGNATURE}" if self.instances else ""
        )
        return (
            f"passed: {self.rows} eval rows through {DEFAULT_SIGNATURE} and {EXAMPLES_SIGNATURE}{declared}, "
            f"{what} {self.low:.3f}..{self.high:.3f}, largest difference between the signatures "
            f"{self.max_difference:.1e}"
        )


def read_examples(split_dir: str, limit: int) -> list[bytes]:
    """Up to `limit` serialized tf.Examples from the gzipped TFRecord files of one split folder
    (an Examples artifact's `Split-eval`)."""
    files = sorted(fileio.glob(f"{split_dir.rstrip('/')}/*.gz"))
    if not files:
        raise SmokeTestError(f"no gzipped TFRecord files in {split_dir}")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def raw_instances(serialized: Sequence[bytes], signature: Mapping[str, tf.TensorSpec]) -> list[Instance]:
    """The rows as Vertex AI `instances`: one JSON value per input of `serving_default`.

    A feature a row lacks is sent as 0 or '', which Transform's fill-in treats like a missing value.
    """
    instances = []
    for record in serialized:
        example = tf.train.Example.FromString(record)
        instances.append({key: _first_value(example, key, spec.dtype) for key, spec in signature.items()})
    return instances


def _first_value(example: tf.train.Example, key: str, dtype: tf.DType) -> FeatureValue:
    feature = example.features.feature.get(key)
    kind = feature.WhichOneof("kind") if feature is not None else None
    values = list(getattr(feature, kind).value) if kind else []
    if dtype == tf.string:
        return values[0].decode("utf-8") if values else ""
    if dtype.is_integer:
        return int(values[0]) if values else 0
    return float(values[0]) if values else 0.0


def run_smoke_test(
    model_dir: str, serialized: Sequence[bytes], task: Task, instances: Sequence[Instance] = ()
) -> SmokeTestResult:
    """Loads the SavedModel in `model_dir` and checks both signatures on `serialized` rows, and
    `serving_default` on the declared serving `instances`."""
    if not serialized:
        raise SmokeTestError("no examples to send to the model")
    try:
        model = tf.saved_model.load(model_dir)
    except (OSError, ValueError) as error:  # missing or unreadable SavedModel
        raise SmokeTestError(f"cannot load the SavedModel in {model_dir}: {error}") from error
    missing = {DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE} - set(model.signatures)
    if missing:
        raise SmokeTestError(f"the SavedModel lacks the signatures {sorted(missing)}")

    signature = model.signatures[DEFAULT_SIGNATURE].structured_input_signature[1]
    _require_raw_feature_inputs(signature, serialized[0])
    from_examples = _call(model, EXAMPLES_SIGNATURE, task, examples=tf.constant(list(serialized)))
    from_instances = _call(model, DEFAULT_SIGNATURE, task, **_columns(raw_instances(serialized, signature), signature))

    rows = len(serialized)
    problems = [f"{DEFAULT_SIGNATURE}: {p}" for p in _answer_problems(from_instances, rows, task)]
    problems += [f"{EXAMPLES_SIGNATURE}: {p}" for p in _answer_problems(from_examples, rows, task)]
    if problems:
        raise SmokeTestError("; ".join(problems))
    difference = float(tf.reduce_max(tf.abs(from_examples - from_instances)))
    if difference > TOLERANCE:
        raise SmokeTestError(
            f"{DEFAULT_SIGNATURE} and {EXAMPLES_SIGNATURE} disagree on the same rows by up to "
            f"{difference:.2e} (allowed {TOLERANCE:.0e})"
        )
    answered = from_instances.numpy()
    if instances:
        _check_declared_instances(model, signature, instances, task)
    return SmokeTestResult(task, rows, float(answered.min()), float(answered.max()), difference, len(instances))


def _check_declared_instances(
    model: tf.Module, signature: Mapping[str, tf.TensorSpec], instances: Sequence[Instance], task: Task
) -> None:
    """The serving instances a deployed endpoint's smoke test sends, as TF Serving would pass them."""
    types = {key: _json_type(spec.dtype) for key, spec in signature.items()}
    problems = instance_problems(instances, signature) + value_type_problems(instances, types)
    if problems:
        raise SmokeTestError(f"the declared serving instances do not fit {DEFAULT_SIGNATURE}: {'; '.join(problems)}")
    answer = _call(model, DEFAULT_SIGNATURE, task, **_columns(instances, signature))
    problems = _answer_problems(answer, len(instances), task)
    if problems:
        raise SmokeTestError(f"{DEFAULT_SIGNATURE} on the declared serving instances: {'; '.join(problems)}")


def _json_type(dtype: tf.DType) -> str:
    return "string" if dtype == tf.string else "int" if dtype.is_integer else "float"


def _columns(instances: Sequence[Instance], signature: Mapping[str, tf.TensorSpec]) -> dict[str, tf.Tensor]:
    return {key: tf.constant([instance[key] for instance in instances], spec.dtype) for key, spec in signature.items()}


def _require_raw_feature_inputs(signature: Mapping[str, tf.TensorSpec], example_row: bytes) -> None:
    """serving_default must take raw feature values: a Vertex AI predict request cannot name another
    signature, so TF Serving calls this one with the request's JSON instances."""
    features = set(tf.train.Example.FromString(example_row).features.feature)
    unknown = sorted(set(signature) - features)
    if unknown and len(unknown) == len(signature):
        raise SmokeTestError(
            f"{DEFAULT_SIGNATURE} takes {unknown}, not raw feature values: Vertex AI endpoints call "
            f"{DEFAULT_SIGNATURE} with the request's instances ({{{', '.join(sorted(features)[:3])}, ...}}), "
            "so every prediction would fail; export the tf.Example signature under another name"
        )


def _call(model: tf.Module, name: str, task: Task, **inputs: tf.Tensor) -> tf.Tensor:
    try:
        outputs = model.signatures[name](**inputs)
    except (tf.errors.OpError, TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SmokeTestError(f"{name} failed: {first_line}") from error
    if task.output_key not in outputs:
        raise SmokeTestError(f"{name} returned {sorted(outputs)}, expected '{task.output_key}' ({task.describe()})")
    return tf.cast(outputs[task.output_key], tf.float64)


def _answer_problems(output: tf.Tensor, rows: int, task: Task) -> list[str]:
    if output.shape.rank != 2 or output.shape[1] != task.output_width:
        return [f"output shape {output.shape.as_list()}, expected [{rows}, {task.output_width}] ({task.describe()})"]
    return prediction_problems(output.numpy().tolist(), rows, task)
