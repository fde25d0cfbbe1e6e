"""The pipeline's Evaluator executor: TFX's, leaving out BaselineModel's "none found" marker; a real
baseline still gates the blessing through the change threshold (`evaluation.blessing.max_drop`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from components.baseline import evaluator, executor
from models import serving
from models.model import Hyperparameters, build_model
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config


@pytest.fixture(scope="module")
def untrained_model_uri(transformed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model as `model_uri`, never trained: its AUC is far from the trained one's."""
    _, output = transformed
    uri = tmp_path_factory.mktemp("untrained")
    serving.export(build_model(output, Hyperparameters(hidden_units=(8,))), output, str(uri / "Format-Serving"))
    return uri


def model(uri: Path | str) -> standard_artifacts.Model:
    artifact = standard_artifacts.Model()
    artifact.uri = str(uri)
    return artifact


def no_baseline_marker(folder: Path) -> standard_artifacts.Model:
    """What a BaselineModel step that found nothing records on Vertex AI: an empty, marked Model."""
    marker = model(folder)
    marker.set_int_custom_property(executor.FOUND_KEY, 0)
    marker.set_string_custom_property(executor.REASON_KEY, "no model of this pipeline was registered yet")
    return marker


def evaluate(
    examples_uri: Path, candidate: Path, baseline: standard_artifacts.Model | None, output: Path
) -> tuple[standard_artifacts.ModelBlessing, dict[tuple[str, str, bool], float]]:
    """Runs the pipeline's Evaluator executor; returns the blessing and the overall metrics."""
    # No bounds: only the change threshold against the baseline decides here.
    overrides = {"evaluation.blessing.minimum": 0.0, "evaluation.blessing.maximum": None}
    config = load_config(overrides={"runner.output_dir": str(output), **overrides})
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_uri)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(output / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(output / "blessing")
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=tfx_pipeline.beam_args(config), tmp_dir=str(output / "tmp"), unique_id="test"
    )
    inputs = {"examples": [examples], "model": [model(candidate)], "baseline_model": [baseline] if baseline else []}
    properties = {
        "eval_config": json_format.MessageToJson(tfx_pipeline.eval_config(config)),
        "example_splits": json.dumps(["eval"]),
        "fairness_indicator_thresholds": "null",
    }
    evaluator.Executor(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, properties)
    metrics = {}
    for per_slice in tfma.load_metrics(evaluation.uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.metric_keys_and_values:
            key = (entry.key.name, entry.key.model_name, entry.key.is_diff)
            metrics[key] = entry.value.double_value.value
    return blessing, metrics


def test_the_none_found_marker_is_left_out(examples_uri: Path, model_uri: Path, tmp_path: Path) -> None:
    blessing, metrics = evaluate(examples_uri, model_uri, no_baseline_marker(tmp_path / "empty"), tmp_path / "out")

    assert blessing.get_int_custom_property("blessed") == 1  # minimum 0 here; no change threshold without a baseline
    assert not blessing.has_custom_property("baseline_model")
    assert {name for name, _, _ in metrics} == {"auc", "example_count", "mean_label"}
    assert not any(is_diff for _, _, is_diff in metrics)


def test_a_baseline_gates_the_blessing_by_the_change_threshold(
    examples_uri: Path, model_uri: Path, untrained_model_uri: Path, tmp_path: Path
) -> None:
    max_drop = load_config().evaluation.blessing.max_drop
    decisions = {}
    for name, candidate, baseline in (
        ("trained", model_uri, untrained_model_uri),
        ("untrained", untrained_model_uri, model_uri),
    ):
        blessing, metrics = evaluate(examples_uri, candidate, model(baseline), tmp_path / name)
        assert blessing.get_string_custom_property("baseline_model") == str(baseline)
        change = metrics[("auc", "candidate", True)]
        assert change == pytest.approx(metrics[("auc", "candidate", False)] - metrics[("auc", "baseline", False)])
        decisions[name] = (blessing.get_int_custom_property("blessed"), change)
    assert abs(decisions["trained"][1]) > max_drop  # the two models are far enough apart to tell
    for blessed, change in decisions.values():
        assert blessed == int(change >= -max_drop)
    assert sorted(blessed for blessed, _ in decisions.values()) == [0, 1]
