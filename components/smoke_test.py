"""Serving smoke test of an exported SavedModel: the stand-in for InfraValidator, which does not run
on Vertex AI Pipelines.

The model is loaded the way a server loads it, and a few rows of the eval split go through both
serving signatures: as raw feature values (`serving_default`, which TF Serving behind a Vertex AI
endpoint calls with the request's JSON `instances`) and as serialized tf.Examples
(`serving_examples`, for TFMA and batch prediction). It passes when each signature answers one
finite probability in [0, 1] per row, shaped [rows, 1], and both answer the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf
from tfx.dsl.io import fileio

from components.serving_checks import FeatureValue, Instance, prediction_problems
from models import serving

OUTPUT = "probabilities"
# Largest difference allowed between the two signatures on the same row.
TOLERANCE = 1e-4


class SmokeTestError(RuntimeError):
    """The model does not serve; the message says what was wrong."""


@dataclass(frozen=True)
class SmokeTestResult:
    rows: int
    probabilities: tuple[float, ...]
    max_difference: float

    def summary(self) -> str:
        return (
            f"passed: {self.rows} eval rows through {serving.DEFAULT_SIGNATURE} and {serving.EXAMPLES_SIGNATURE}, "
            f"probabilities {min(self.probabilities):.3f}..{max(self.probabilities):.3f}, "
            f"largest difference between the signatures {self.max_difference:.1e}"
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


def run_smoke_test(model_dir: str, serialized: Sequence[bytes]) -> SmokeTestResult:
    """Loads the SavedModel in `model_dir` and checks both signatures on `serialized` rows."""
    if not serialized:
        raise SmokeTestError("no examples to send to the model")
    try:
        model = tf.saved_model.load(model_dir)
    except (OSError, ValueError) as error:  # missing or unreadable SavedModel
        raise SmokeTestError(f"cannot load the SavedModel in {model_dir}: {error}") from error
    missing = {serving.DEFAULT_SIGNATURE, serving.EXAMPLES_SIGNATURE} - set(model.signatures)
    if missing:
        raise SmokeTestError(f"the SavedModel lacks the signatures {sorted(missing)}")

    signature = model.signatures[serving.DEFAULT_SIGNATURE].structured_input_signature[1]
    _require_raw_feature_inputs(signature, serialized[0])
    from_examples = _call(model, serving.EXAMPLES_SIGNATURE, examples=tf.constant(list(serialized)))
    instances = raw_instances(serialized, signature)
    columns = {key: tf.constant([i[key] for i in instances], spec.dtype) for key, spec in signature.items()}
    from_instances = _call(model, serving.DEFAULT_SIGNATURE, **columns)

    rows = len(serialized)
    problems = [f"{serving.DEFAULT_SIGNATURE}: {p}" for p in _shape_problems(from_instances, rows)]
    problems += [f"{serving.EXAMPLES_SIGNATURE}: {p}" for p in _shape_problems(from_examples, rows)]
    if problems:
        raise SmokeTestError("; ".join(problems))
    difference = float(tf.reduce_max(tf.abs(from_examples - from_instances)))
    if difference > TOLERANCE:
        raise SmokeTestError(
            f"{serving.DEFAULT_SIGNATURE} and {serving.EXAMPLES_SIGNATURE} disagree on the same rows by up to "
            f"{difference:.2e} (allowed {TOLERANCE:.0e})"
        )
    return SmokeTestResult(rows, tuple(float(p) for p in from_instances.numpy()[:, 0]), difference)


def _require_raw_feature_inputs(signature: Mapping[str, tf.TensorSpec], example_row: bytes) -> None:
    """serving_default must take raw feature values: a Vertex AI predict request cannot name another
    signature, so TF Serving calls this one with the request's JSON instances."""
    features = set(tf.train.Example.FromString(example_row).features.feature)
    unknown = sorted(set(signature) - features)
    if unknown and len(unknown) == len(signature):
        raise SmokeTestError(
            f"{serving.DEFAULT_SIGNATURE} takes {unknown}, not raw feature values: Vertex AI endpoints call "
            f"{serving.DEFAULT_SIGNATURE} with the request's instances ({{{', '.join(sorted(features)[:3])}, ...}}), "
            "so every prediction would fail; export the tf.Example signature under another name"
        )


def _call(model: tf.Module, name: str, **inputs: tf.Tensor) -> tf.Tensor:
    try:
        outputs = model.signatures[name](**inputs)
    except (tf.errors.OpError, TypeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SmokeTestError(f"{name} failed: {first_line}") from error
    if OUTPUT not in outputs:
        raise SmokeTestError(f"{name} returned {sorted(outputs)}, expected '{OUTPUT}'")
    return tf.cast(outputs[OUTPUT], tf.float64)


def _shape_problems(output: tf.Tensor, rows: int) -> list[str]:
    if output.shape.rank != 2 or output.shape[1] != 1:
        return [f"output shape {output.shape.as_list()}, expected [{rows}, 1]"]
    return prediction_problems(output.numpy().tolist(), rows)
