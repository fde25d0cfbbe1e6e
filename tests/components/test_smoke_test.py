"""The serving smoke test of exported SavedModels (the InfraValidator stand-in)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf

from components import smoke_test
from components.serving_checks import Task
from components.smoke_test import SmokeTestError, raw_instances, read_examples, run_smoke_test
from models import serving
from models.label import TASK
from pipeline.config import load_config, read_serving_instances
from tests.components.conftest import EVAL_ROWS

BINARY = Task.binary()


def test_the_exported_model_passes(model_uri: Path, examples_uri: Path) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=5)

    result = run_smoke_test(str(model_uri / "Format-Serving"), rows, TASK)

    assert result.rows == 5
    assert 0.0 <= result.low <= result.high <= 1.0
    assert result.max_difference <= 1e-4
    assert result.summary().startswith("passed: 5 eval rows through serving_default and serving_examples")


def test_the_declared_serving_instances_go_through_serving_default(model_uri: Path, examples_uri: Path) -> None:
    """The instances the endpoint's smoke test sends after a deploy are checked before registration."""
    rows = read_examples(str(examples_uri / "Split-eval"), limit=2)
    instances = read_serving_instances(load_config().serving_instances_path)

    result = run_smoke_test(str(model_uri / "Format-Serving"), rows, TASK, instances)

    assert result.instances == len(instances) == 8
    assert "and 8 declared serving instances" in result.summary()
    wrong = [dict(instances[0], trip_start_hour=23.0)]
    with pytest.raises(SmokeTestError, match=r"trip_start_hour must be an integer \(the model reads int\), got 23.0"):
        run_smoke_test(str(model_uri / "Format-Serving"), rows, TASK, wrong)
    with pytest.raises(SmokeTestError, match=r"missing features \['fare'\]"):
        run_smoke_test(
            str(model_uri / "Format-Serving"), rows, TASK, [{k: v for k, v in instances[0].items() if k != "fare"}]
        )


def test_signature_names_are_the_models() -> None:
    assert (smoke_test.DEFAULT_SIGNATURE, smoke_test.EXAMPLES_SIGNATURE) == (
        serving.DEFAULT_SIGNATURE,
        serving.EXAMPLES_SIGNATURE,
    )


def test_reads_at_most_the_limit_and_needs_files(examples_uri: Path) -> None:
    assert len(read_examples(str(examples_uri / "Split-eval"), limit=100)) == EVAL_ROWS
    with pytest.raises(SmokeTestError, match="no gzipped TFRecord files"):
        read_examples(str(examples_uri / "Split-train"), limit=5)


def test_raw_instances_fill_missing_features_like_transform(examples_uri: Path) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=1)  # trip 0: no dropoff_community_area
    signature = {
        "dropoff_community_area": tf.TensorSpec([None], tf.int64),
        "company": tf.TensorSpec([None], tf.string),
        "fare": tf.TensorSpec([None], tf.float32),
        "not_in_the_data": tf.TensorSpec([None], tf.string),
    }
    assert raw_instances(rows, signature) == [
        {"dropoff_community_area": 0, "company": "Taxi Affiliation Services", "fare": 5.0, "not_in_the_data": ""}
    ]


def tiny_model(
    folder: Path,
    from_fares: Callable[[tf.Tensor], tf.Tensor],
    raw: Callable[[tf.Tensor], tf.Tensor],
    names: tuple[str, str] = (serving.EXAMPLES_SIGNATURE, serving.DEFAULT_SIGNATURE),
    output: str = "probabilities",
) -> str:
    """A SavedModel with both signatures' inputs; `from_fares`/`raw` map a batch of fares to outputs."""

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def from_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(examples, {"fare": tf.io.VarLenFeature(tf.float32)})
            fares = tf.sparse.to_dense(parsed["fare"])[:, 0]
            return {output: from_fares(fares)}

        @tf.function(input_signature=[{"fare": tf.TensorSpec([None], tf.float32, name="fare")}])
        def from_instances(self, instances: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {output: raw(instances["fare"])}

    module = Tiny()
    path = str(folder / "model")
    signatures = {names[0]: module.from_examples, names[1]: module.from_instances.get_concrete_function()}
    tf.saved_model.save(module, path, signatures=signatures)
    return path


def probability(fares: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.sigmoid(fares / 10.0), [-1, 1])


def three_classes(fares: tf.Tensor) -> tf.Tensor:
    return tf.nn.softmax(tf.stack([fares / 10.0, -fares / 10.0, tf.zeros_like(fares)], axis=1))


def value(fares: tf.Tensor) -> tf.Tensor:
    return tf.reshape(fares * 2.0 - 7.0, [-1, 1])


@pytest.mark.parametrize(
    ("task", "answer", "output"),
    [
        (Task.multiclass(classes=("a", "b", "c")), three_classes, "probabilities"),
        (Task.regression(), value, "predictions"),
    ],
)
def test_other_tasks_pass_with_their_answers(tmp_path: Path, examples_uri: Path, task: Task, answer, output) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=5)
    result = run_smoke_test(tiny_model(tmp_path, answer, answer, output=output), rows, task)
    assert result.rows == 5
    with pytest.raises(SmokeTestError, match=r"output shape \[5, 1\], expected \[5, 3\]|returned \['probabilities'\]"):
        run_smoke_test(tiny_model(tmp_path / "binary", probability, probability), rows, task)


def test_a_three_class_model_whose_rows_do_not_sum_to_one_fails(tmp_path: Path, examples_uri: Path) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=5)

    def halves(fares: tf.Tensor) -> tf.Tensor:
        return three_classes(fares) * 0.5

    with pytest.raises(SmokeTestError, match="serving_examples: prediction 0: class probabilities sum to 0.5, not 1"):
        run_smoke_test(tiny_model(tmp_path, halves, halves), rows, Task.multiclass(classes=("a", "b", "c")))


@pytest.mark.parametrize(
    ("parsed", "raw", "message"),
    [
        (lambda f: probability(f) + 1.0, probability, "serving_examples: prediction 0: outside [0, 1]"),
        (probability, lambda f: tf.sigmoid(f), "serving_default: output shape [5], expected [5, 1] (binary"),
        (probability, lambda f: probability(f) * 0.5, "disagree on the same rows by up to"),
        (lambda f: probability(f) * float("nan"), lambda f: probability(f) * float("nan"), "not finite: nan"),
    ],
)
def test_a_model_that_answers_badly_fails(tmp_path: Path, examples_uri: Path, parsed, raw, message: str) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=5)
    with pytest.raises(SmokeTestError, match=re.escape(message)):
        run_smoke_test(tiny_model(tmp_path, parsed, raw), rows, BINARY)


def test_a_model_whose_default_signature_takes_examples_fails(tmp_path: Path, examples_uri: Path) -> None:
    """Vertex AI endpoints call serving_default with raw feature instances: every canary would fail."""
    path = tiny_model(tmp_path, probability, probability, names=(serving.DEFAULT_SIGNATURE, serving.EXAMPLES_SIGNATURE))
    with pytest.raises(SmokeTestError, match=r"serving_default takes \['examples'\], not raw feature values"):
        run_smoke_test(path, read_examples(str(examples_uri / "Split-eval"), limit=2), BINARY)


def test_a_model_without_the_examples_signature_fails(tmp_path: Path, examples_uri: Path) -> None:
    path = tiny_model(tmp_path, probability, probability, names=("predict", serving.DEFAULT_SIGNATURE))
    with pytest.raises(SmokeTestError, match=r"lacks the signatures \['serving_examples'\]"):
        run_smoke_test(path, read_examples(str(examples_uri / "Split-eval"), limit=2), BINARY)
    with pytest.raises(SmokeTestError, match="cannot load the SavedModel"):
        run_smoke_test(str(tmp_path / "nowhere"), read_examples(str(examples_uri / "Split-eval"), limit=2), BINARY)
