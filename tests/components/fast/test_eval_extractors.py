"""The Evaluator's trimmed extractors: the same metrics on every slice as TFMA's defaults, for the
model of models/ on rows of the configured data, sliced by the configured slice features."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from components.eval_metrics import EXAMPLE_COUNT, MetricId, metric_id
from components.fast import eval_extractors
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from tests.components.conftest import EVALUATION_ROWS, ConfiguredData, unbounded_blessing


def slice_count(rows: list[bytes], slice_features: list[str]) -> int:
    """Overall, and one slice per value of each slice feature among the rows."""
    values: dict[str, set] = {key: set() for key in slice_features}
    for row in rows:
        example = tf.train.Example.FromString(row)
        for key in slice_features:
            feature = example.features.feature.get(key)
            kind = feature.WhichOneof("kind") if feature is not None else None
            values[key].update(getattr(feature, kind).value if kind else ())
    return 1 + sum(len(found) for found in values.values())


def evaluate(examples_uri: Path, model_uri: Path, output: Path, module_path: str | None, baseline: bool) -> dict:
    """Runs TFX's Evaluator executor; returns {slice: {(MetricId, model, is_diff): value}} as TFMA wrote them."""
    config = load_config(overrides={"runner.output_dir": str(output), **unbounded_blessing(load_config())})
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_uri)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(output / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(output / "blessing")
    properties = {
        "eval_config": json_format.MessageToJson(tfx_pipeline.eval_config(config)),
        "example_splits": json.dumps(["eval"]),
        "fairness_indicator_thresholds": "null",
    }
    if module_path:
        properties["module_path"] = module_path
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=tfx_pipeline.beam_args(config), tmp_dir=str(output / "tmp"), unique_id="test"
    )
    inputs = {"examples": [examples], "model": [model]}
    if baseline:
        inputs["baseline_model"] = [model]
    evaluator_executor.Executor(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    metrics = {}
    for per_slice in tfma.load_metrics(evaluation.uri):
        values = {}
        for key_and_value in per_slice.metric_keys_and_values:
            key, value = key_and_value.key, key_and_value.value
            name = (metric_id(key), key.model_name, key.is_diff)
            values[name] = value.double_value.value if value.HasField("double_value") else None
        metrics[tfma.slicer.deserialize_slice_key(per_slice.slice_key)] = values
    return metrics


def same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("baseline", [False, True], ids=["candidate-only", "with-baseline"])
def test_trimmed_extractors_give_tfmas_metrics_on_every_slice(
    evaluation_examples_uri: Path, configured_data: ConfiguredData, model_uri: Path, tmp_path: Path, baseline: bool
) -> None:
    ours = evaluate(evaluation_examples_uri, model_uri, tmp_path / "ours", eval_extractors.__name__, baseline)
    default = evaluate(evaluation_examples_uri, model_uri, tmp_path / "default", None, baseline)

    rows = configured_data.examples[:EVALUATION_ROWS]
    assert len(ours) == slice_count(rows, configured_data.config.evaluation.slice_features)
    assert ours.keys() == default.keys()
    for slice_key, values in default.items():
        assert values.keys() == ours[slice_key].keys()
        assert all(same(values[name], ours[slice_key][name]) for name in values), slice_key
    models = {"candidate", "baseline"} if baseline else {""}
    configured = {*configured_data.config.evaluation.metric_names, EXAMPLE_COUNT}
    assert configured <= {metric.name for metric, _, _ in ours[()]}
    assert {model for _, model, _ in ours[()]} == models
    assert all(ours[()][(MetricId(EXAMPLE_COUNT), model, False)] == EVALUATION_ROWS for model in models)


@pytest.mark.parametrize(("switch", "module_path"), [(True, eval_extractors.__name__), (False, None)])
def test_the_pipeline_evaluator_uses_them_unless_switched_off(tmp_path: Path, switch: bool, module_path) -> None:
    overrides = {"runner.output_dir": str(tmp_path), "fast_paths": {"eval_extractors": switch}}
    config = load_config(overrides=overrides)
    evaluator = next(c for c in tfx_pipeline.create_components(config, str(tmp_path)) if c.id == "Evaluator")
    assert evaluator.exec_properties.get("module_path") == module_path


def test_slicing_features_of_plain_and_crossed_specs() -> None:
    eval_config = tfma.EvalConfig(
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["trip_start_hour"])],
        cross_slicing_specs=[
            tfma.CrossSlicingSpec(
                baseline_spec=tfma.SlicingSpec(feature_values={"payment_type": "Cash"}),
                slicing_specs=[tfma.SlicingSpec(feature_keys=["company", "trip_start_day"])],
            )
        ],
    )
    assert eval_extractors.slicing_feature_keys(eval_config) == {
        "trip_start_hour", "payment_type", "company", "trip_start_day"
    }  # fmt: skip


def test_sql_slices_are_refused() -> None:
    eval_config = tfma.EvalConfig(slicing_specs=[tfma.SlicingSpec(slice_keys_sql="SELECT STRUCT(fare) FROM example")])
    with pytest.raises(ValueError, match="SQL slicing"):
        eval_extractors.slicing_feature_keys(eval_config)


def test_a_batch_keeps_only_what_slicing_and_metrics_read() -> None:
    batch = {
        constants.INPUT_KEY: np.array([b"serialized"]),
        constants.ARROW_RECORD_BATCH_KEY: object(),
        constants.FEATURES_KEY: {"trip_start_hour": np.array([[5]]), "fare": np.array([[9.5]])},
        constants.TRANSFORMED_FEATURES_KEY: {"fare_xf": np.array([[0.1]])},
        constants.LABELS_KEY: np.array([[1]]),
        constants.PREDICTIONS_KEY: np.array([[0.8]]),
        constants.EXAMPLE_WEIGHTS_KEY: np.array([1.0]),
    }
    trimmed = eval_extractors.metric_inputs_only(batch, frozenset({"trip_start_hour"}))
    assert set(trimmed) == {
        constants.FEATURES_KEY, constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY
    }  # fmt: skip
    assert set(trimmed[constants.FEATURES_KEY]) == {"trip_start_hour"}
    assert trimmed[constants.PREDICTIONS_KEY] is batch[constants.PREDICTIONS_KEY]
