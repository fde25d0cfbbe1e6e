"""The serving smoke test of exported SavedModels (the InfraValidator stand-in): the model of models/
on rows of the configured data, and tiny models of the tests' own, on rows of their own, that answer
well or badly."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf

from components import smoke_test
from components.serving_checks import MULTICLASS, REGRESSION, Task
from components.smoke_test import SmokeTestError, raw_instances, read_examples, run_smoke_test
from models import features, serving
from models.label import TASK
from pipeline.config import load_config, read_serving_instances
from tests.components.conftest import EVAL_ROWS, write_examples

BINARY = Task.binary()
THREE_CLASSES = Task.multiclass(classes=("a", "b", "c"))
# The tiny models' one input, and the rows of `amount_rows` that carry it.
AMOUNT = "amount"
# A value of the wrong JSON type for a column of each type, and how the check names the right one.
WRONG_VALUES = {"int": ("an integer", 23.0), "float": ("a number", "6.05"), "string": ("a string", 7)}

Answer = Callable[[tf.Tensor], tf.Tensor]


def amount_examples(count: int = EVAL_ROWS) -> list[bytes]:
    """Rows with one float feature, AMOUNT: 5.0, 6.0, ..."""
    return [
        tf.train.Example(
            features=tf.train.Features(
                feature={AMOUNT: tf.train.Feature(float_list=tf.train.FloatList(value=[5.0 + i]))}
            )
        ).SerializeToString()
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def amount_rows(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Five of `amount_examples`, read back from an Examples artifact."""
    uri = write_examples(tmp_path_factory.mktemp("amounts"), amount_examples())
    return read_examples(str(uri / "Split-eval"), limit=5)


def test_the_exported_model_passes(model_uri: Path, examples_uri: Path) -> None:
    rows = read_examples(str(examples_uri / "Split-eval"), limit=5)

    result = run_smoke_test(str(model_uri / "Format-Serving"), rows, TASK)

    assert result.rows == 5
    assert result.low <= result.high
    if TASK.is_classification:
        assert 0.0 <= result.low <= result.high <= 1.0
    assert result.max_difference <= 1e-4
    assert result.summary().startswith("passed: 5 eval rows through serving_default and serving_examples")


def test_the_declared_serving_instances_go_through_serving_default(model_uri: Path, examples_uri: Path) -> None:
    """The instances the endpoint's smoke test sends after a deploy are checked before registration."""
    rows = read_examples(str(examples_uri / "Split-eval"), limit=2)
    instances = read_serving_instances(load_config().serving_instances_path)
    model_dir = str(model_uri / "Format-Serving")

    result = run_smoke_test(model_dir, rows, TASK, instances)

    assert result.instances == len(instances) > 0
    assert f"and {len(instances)} declared serving instances" in result.summary()
    inputs = tf.saved_model.load(model_dir).signatures[serving.DEFAULT_SIGNATURE].structured_input_signature[1]
    assert set(inputs) == set(features.RAW_FEATURE_KEYS)
    # One feature of each type the model reads, sent with a value of another type.
    by_type = {smoke_test._json_type(spec.dtype): key for key, spec in sorted(inputs.items())}
    for column_type, key in by_type.items():
        wanted, value = WRONG_VALUES[column_type]
        expected = f"{key} must be {wanted} (the model reads {column_type}), got {value!r}"
        with pytest.raises(SmokeTestError, match=re.escape(expected)):
            run_smoke_test(model_dir, rows, TASK, [dict(instances[0], **{key: value})])
    key = features.RAW_FEATURE_KEYS[0]
    with pytest.raises(SmokeTestError, match=re.escape(f"missing features [{key!r}]")):
        run_smoke_test(model_dir, rows, TASK, [{k: v for k, v in instances[0].items() if k != key}])


def test_signature_names_are_the_models() -> None:
    assert (smoke_test.DEFAULT_SIGNATURE, smoke_test.EXAMPLES_SIGNATURE) == (
        serving.DEFAULT_SIGNATURE,
        serving.EXAMPLES_SIGNATURE,
    )


def test_reads_at_most_the_limit_and_needs_files(examples_uri: Path) -> None:
    assert len(read_examples(str(examples_uri / "Split-eval"), limit=100)) == EVAL_ROWS
    with pytest.raises(SmokeTestError, match="no gzipped TFRecord files"):
        read_examples(str(examples_uri / "Split-train"), limit=5)


def test_raw_instances_fill_missing_features_like_transform() -> None:
    row = tf.train.Example(
        features=tf.train.Features(
            feature={
                "count": tf.train.Feature(),  # an empty CSV cell: the feature without a value
                "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Flash Cab"])),
                "amount": tf.train.Feature(float_list=tf.train.FloatList(value=[5.0])),
            }
        )
    )
    signature = {
        "count": tf.TensorSpec([None], tf.int64),
        "name": tf.TensorSpec([None], tf.string),
        "amount": tf.TensorSpec([None], tf.float32),
        "not_in_the_data": tf.TensorSpec([None], tf.string),
    }
    assert raw_instances([row.SerializeToString()], signature) == [
        {"count": 0, "name": "Flash Cab", "amount": 5.0, "not_in_the_data": ""}
    ]


def tiny_model(
    folder: Path,
    from_values: Answer,
    raw: Answer,
    names: tuple[str, str] = (serving.EXAMPLES_SIGNATURE, serving.DEFAULT_SIGNATURE),
    output: str = "probabilities",
    feature: str = AMOUNT,
    dtype: tf.DType = tf.float32,
) -> str:
    """A SavedModel with both signatures' inputs, reading one `feature` of type `dtype` (every row
    must carry it); `from_values`/`raw` map a batch of its values (as floats: text by its length) to
    outputs."""

    def as_numbers(values: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.strings.length(values) if dtype == tf.string else values, tf.float32)

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def from_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(examples, {feature: tf.io.VarLenFeature(dtype)})
            return {output: from_values(as_numbers(tf.sparse.to_dense(parsed[feature])[:, 0]))}

        @tf.function(input_signature=[{feature: tf.TensorSpec([None], dtype, name=feature)}])
        def from_instances(self, instances: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {output: raw(as_numbers(instances[feature]))}

    module = Tiny()
    path = str(folder / "model")
    signatures = {names[0]: module.from_examples, names[1]: module.from_instances.get_concrete_function()}
    tf.saved_model.save(module, path, signatures=signatures)
    return path


def probability(values: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.sigmoid(values / 10.0), [-1, 1])


def three_classes(values: tf.Tensor) -> tf.Tensor:
    return tf.nn.softmax(tf.stack([values / 10.0, -values / 10.0, tf.zeros_like(values)], axis=1))


def value(values: tf.Tensor) -> tf.Tensor:
    return tf.reshape(values * 2.0 - 7.0, [-1, 1])


def answer_for(task: Task) -> Answer:
    """A valid answer of `task`'s shape: a probability per class, or a value."""
    if task.kind == REGRESSION:
        return value
    if task.kind == MULTICLASS:
        return lambda values: tf.nn.softmax(tf.stack([values / (k + 1.0) for k in range(task.output_width)], axis=1))
    return probability


@pytest.mark.parametrize(("task", "answer"), [(THREE_CLASSES, three_classes), (Task.regression(), value)])
def test_other_tasks_pass_with_their_answers(tmp_path: Path, amount_rows: list[bytes], task: Task, answer) -> None:
    result = run_smoke_test(tiny_model(tmp_path, answer, answer, output=task.output_key), amount_rows, task)
    assert result.rows == 5
    with pytest.raises(SmokeTestError, match=r"output shape \[5, 1\], expected \[5, 3\]|returned \['probabilities'\]"):
        run_smoke_test(tiny_model(tmp_path / "binary", probability, probability), amount_rows, task)


@pytest.mark.parametrize("task", [BINARY, THREE_CLASSES, Task.regression()], ids=lambda task: task.kind)
def test_the_answer_of_each_task_passes(tmp_path: Path, amount_rows: list[bytes], task: Task) -> None:
    answer = answer_for(task)
    assert run_smoke_test(tiny_model(tmp_path, answer, answer, output=task.output_key), amount_rows, task).rows == 5


def test_a_three_class_model_whose_rows_do_not_sum_to_one_fails(tmp_path: Path, amount_rows: list[bytes]) -> None:
    def halves(values: tf.Tensor) -> tf.Tensor:
        return three_classes(values) * 0.5

    with pytest.raises(SmokeTestError, match="serving_examples: prediction 0: class probabilities sum to 0.5, not 1"):
        run_smoke_test(tiny_model(tmp_path, halves, halves), amount_rows, THREE_CLASSES)


@pytest.mark.parametrize(
    ("parsed", "raw", "message"),
    [
        (lambda f: probability(f) + 1.0, probability, "serving_examples: prediction 0: outside [0, 1]"),
        (probability, lambda f: tf.sigmoid(f), "serving_default: output shape [5], expected [5, 1] (binary"),
        (probability, lambda f: probability(f) * 0.5, "disagree on the same rows by up to"),
        (lambda f: probability(f) * float("nan"), lambda f: probability(f) * float("nan"), "not finite: nan"),
    ],
)
def test_a_model_that_answers_badly_fails(tmp_path: Path, amount_rows: list[bytes], parsed, raw, message: str) -> None:
    with pytest.raises(SmokeTestError, match=re.escape(message)):
        run_smoke_test(tiny_model(tmp_path, parsed, raw), amount_rows, BINARY)


def test_a_model_whose_default_signature_takes_examples_fails(tmp_path: Path, amount_rows: list[bytes]) -> None:
    """Vertex AI endpoints call serving_default with raw feature instances: every canary would fail."""
    path = tiny_model(tmp_path, probability, probability, names=(serving.DEFAULT_SIGNATURE, serving.EXAMPLES_SIGNATURE))
    with pytest.raises(SmokeTestError, match=r"serving_default takes \['examples'\], not raw feature values"):
        run_smoke_test(path, amount_rows[:2], BINARY)


def test_a_model_without_the_examples_signature_fails(tmp_path: Path, amount_rows: list[bytes]) -> None:
    path = tiny_model(tmp_path, probability, probability, names=("predict", serving.DEFAULT_SIGNATURE))
    with pytest.raises(SmokeTestError, match=r"lacks the signatures \['serving_examples'\]"):
        run_smoke_test(path, amount_rows[:2], BINARY)
    with pytest.raises(SmokeTestError, match="cannot load the SavedModel"):
        run_smoke_test(str(tmp_path / "nowhere"), amount_rows[:2], BINARY)
