"""The pipeline's Evaluator executor: TFX's, leaving out BaselineModel's "none found" marker; a real
baseline still gates the blessing through the change threshold (`evaluation.blessing.max_drop`).

The model of models/ on rows of the configured data, judged by the configured blessing metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from components.baseline import evaluator, executor
from components.eval_metrics import EXAMPLE_COUNT, HIDDEN_METRICS, MetricId, blessing_metric_id, metric_id
from models.label import TASK
from models.model import Hyperparameters, build_model
from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig, load_config
from tests.components.conftest import Transformed, export_as_the_trainer, unbounded_blessing

# The change threshold these tests judge by: the configured one, or this when none is configured.
DEFAULT_MAX_DROP = 0.01


@pytest.fixture(scope="module")
def untrained_model_uri(transformed: Transformed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model as `model_uri`, never trained: it scores far from the trained one."""
    model = build_model(transformed.output, Hyperparameters(hidden_units=(8,)))
    return export_as_the_trainer(model, transformed.output, tmp_path_factory.mktemp("untrained"))


def judging_config(output: Path) -> PipelineConfig:
    """The configured evaluation without bounds on the blessing metric (only the change threshold
    against the baseline decides), and a change threshold even where none is configured."""
    configured = load_config()
    overrides = {
        "runner.output_dir": str(output),
        **unbounded_blessing(configured),
        "evaluation.blessing.max_drop": configured.evaluation.blessing.max_drop or DEFAULT_MAX_DROP,
    }
    return load_config(overrides=overrides)


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
    evaluation_examples_uri: Path, candidate: Path, baseline: standard_artifacts.Model | None, output: Path
) -> tuple[standard_artifacts.ModelBlessing, dict[tuple[MetricId, str, bool], float]]:
    """Runs the pipeline's Evaluator executor; returns the blessing and the overall metrics."""
    config = judging_config(output)
    examples = standard_artifacts.Examples()
    examples.uri = str(evaluation_examples_uri)
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
            key = (metric_id(entry.key), entry.key.model_name, entry.key.is_diff)
            metrics[key] = entry.value.double_value.value
    return blessing, metrics


def test_the_none_found_marker_is_left_out(evaluation_examples_uri: Path, model_uri: Path, tmp_path: Path) -> None:
    blessing, metrics = evaluate(
        evaluation_examples_uri, model_uri, no_baseline_marker(tmp_path / "empty"), tmp_path / "out"
    )

    assert blessing.get_int_custom_property("blessed") == 1  # minimum 0 here; no change threshold without a baseline
    assert not blessing.has_custom_property("baseline_model")
    names = {metric.name for metric, _, _ in metrics}
    configured = {*load_config().evaluation.metric_names, EXAMPLE_COUNT}
    assert configured <= names <= configured | HIDDEN_METRICS  # and the label's mean, where it tells undefined apart
    assert not any(is_diff for _, _, is_diff in metrics)


def test_a_baseline_gates_the_blessing_by_the_change_threshold(
    evaluation_examples_uri: Path, model_uri: Path, untrained_model_uri: Path, tmp_path: Path
) -> None:
    blessing_config = judging_config(tmp_path).evaluation.blessing
    max_drop, metric = blessing_config.max_drop, blessing_metric_id(blessing_config.metric, TASK)
    assert max_drop is not None
    decisions = {}
    for name, candidate, baseline in (
        ("trained", model_uri, untrained_model_uri),
        ("untrained", untrained_model_uri, model_uri),
    ):
        blessing, metrics = evaluate(evaluation_examples_uri, candidate, model(baseline), tmp_path / name)
        assert blessing.get_string_custom_property("baseline_model") == str(baseline)
        change = metrics[(metric, "candidate", True)]
        assert change == pytest.approx(metrics[(metric, "candidate", False)] - metrics[(metric, "baseline", False)])
        decisions[name] = (blessing.get_int_custom_property("blessed"), change)
    assert abs(decisions["trained"][1]) > max_drop  # the two models are far enough apart to tell
    for blessed, change in decisions.values():
        assert blessed == int(change >= -max_drop if blessing_config.higher_is_better else change <= max_drop)
    assert sorted(blessed for blessed, _ in decisions.values()) == [0, 1]
