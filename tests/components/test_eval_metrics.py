"""The Evaluator's output as the summary, the report and the registry read it: keys that carry the
class, undefined values on slices holding one class, and why a model was not blessed.

TFMA evaluates made-up predictions with the pipeline's own metric specs (pipeline.eval_config),
from a data frame instead of a model, with an evaluation section of the tests' own (AUC, sliced by
group): nothing here depends on the configured one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow_model_analysis as tfma

from components import eval_metrics
from components.serving_checks import Task
from pipeline import pipeline as tfx_pipeline
from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, load_config

SPECIES = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
BINARY = Task.binary(classes=("no", "yes"))


def evaluate(folder: Path, frame: pd.DataFrame, task: Task, blessing: str) -> str:
    """TFMA on `frame` (columns label, prediction, group) with the pipeline's specs for `task`, blessing
    on AUC within the bounds of `blessing`."""
    env = folder / "env.yaml"
    env.write_text(f"evaluation: {{metrics: [], blessing: {{metric: auc, {blessing}}}, slice_features: [group]}}\n")
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env], {"runner.output_dir": str(folder)})
    eval_config = tfx_pipeline.eval_config(config, task)
    del eval_config.model_specs[:]
    eval_config.model_specs.add(label_key="label", prediction_key="prediction")
    output = str(folder / "evaluation")
    tfma.analyze_raw_data(frame, eval_config, output_path=output)
    return output


@pytest.fixture(scope="module")
def too_good_binary(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A binary model that is right on every row; one slice holds negatives only."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    labels[:60] = 0
    predictions = np.where(labels == 1, 0.9, 0.1) + rng.uniform(-0.05, 0.05, 300)
    groups = ["negatives"] * 60 + list(rng.choice(["a", "b"], 240))
    frame = pd.DataFrame({"label": labels, "prediction": predictions, "group": groups})
    return evaluate(tmp_path_factory.mktemp("binary"), frame, BINARY, "minimum: 0.6, maximum: 0.995, max_drop: null")


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fair three-class model; the slice 'no-setosa' holds no setosa."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3))
    logits[np.arange(600), labels] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    groups = np.where(labels == 0, rng.choice(["a", "b"], 600), "no-setosa")
    frame = pd.DataFrame({"label": labels, "prediction": list(probabilities), "group": groups})
    return evaluate(tmp_path_factory.mktemp("multi"), frame, SPECIES, "minimum: 0.97, maximum: null, max_drop: null")


def by_slice(uri: str, task: Task) -> dict[str, eval_metrics.SliceResult]:
    return {result.name: result for result in eval_metrics.read_slices(uri, task)}


def test_one_class_in_a_slice_makes_auc_undefined_not_zero(too_good_binary: str) -> None:
    slices = by_slice(too_good_binary, BINARY)
    negatives = slices["group = negatives"]
    assert negatives.values == {"auc": None, "example_count": 60.0}
    assert negatives.undefined == {"auc": "the slice holds one class only ('no')"}
    assert slices["Overall"].values["auc"] == pytest.approx(1.0)
    assert "mean_label" not in slices["Overall"].values  # computed to tell, not shown


def test_too_good_to_be_true_is_not_blessed_and_says_why(too_good_binary: str) -> None:
    (reason,) = eval_metrics.blessing_failures(too_good_binary, BINARY)
    assert reason.startswith(
        "auc 1.0000 is above the ceiling 0.995 (evaluation.blessing.maximum): too good to be true. A score this high "
        "usually means the label leaks into the features"
    )


def test_per_class_metrics_are_kept_apart_from_their_macro_average(three_classes: str) -> None:
    overall = eval_metrics.overall_metrics(three_classes, SPECIES)
    assert list(overall) == ["auc (macro average)", "auc[setosa]", "auc[versicolor]", "auc[virginica]", "example_count"]
    per_class = [overall[f"auc[{name}]"] for name in SPECIES.classes]
    assert all(0.8 < value < 0.97 for value in per_class)
    assert overall["auc (macro average)"] == pytest.approx(np.mean(per_class))
    assert overall["example_count"] == 600.0


def test_a_slice_missing_a_class_has_undefined_per_class_and_macro_auc(three_classes: str) -> None:
    no_setosa = by_slice(three_classes, SPECIES)["group = no-setosa"]
    assert no_setosa.values["auc[setosa]"] is None
    assert no_setosa.values["auc (macro average)"] is None
    assert no_setosa.undefined["auc (macro average)"] == "the slice holds no example of 'setosa'"
    assert no_setosa.values["auc[virginica]"] > 0.5


def test_below_the_minimum_names_the_macro_average_and_the_key(three_classes: str) -> None:
    (reason,) = eval_metrics.blessing_failures(three_classes, SPECIES)
    assert reason.startswith("auc (macro average) 0.")
    assert reason.endswith("is below the minimum 0.97 (evaluation.blessing.minimum)")
