from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.fast import autograph
from models import features, label, serving
from models.model import Hyperparameters, build_model
from tests.components.conftest import ConfiguredData, Transformed, without_label_columns

ROWS = 8


@pytest.fixture(scope="module", autouse=True)
def _tf_keras_not_converted() -> None:
    """As the pipeline's Trainer runs (fast path `autograph`): the first fit 0.7 s instead of 16 s."""
    autograph.skip_tf_keras()


def raw_instances(serialized: list[bytes]) -> list[dict]:
    """The rows as clients send them: the model's features, a missing value left out."""
    instances = []
    for row in serialized:
        feature = tf.train.Example.FromString(row).features.feature
        instance = {}
        for key in features.RAW_FEATURE_KEYS:
            kind = feature[key].WhichOneof("kind") if key in feature else None
            values = list(getattr(feature[key], kind).value) if kind else []
            instance[key] = values[0] if values else None
        instances.append(instance)
    return instances


def sent_as_zero(value: object, dtype: tf.DType) -> object:
    return value if value is not None else (b"" if dtype == tf.string else 0)


def test_model_learns_on_a_few_steps(transformed: Transformed) -> None:
    model = build_model(transformed.output, Hyperparameters(learning_rate=0.01, hidden_units=(16,)))
    before = model.evaluate(transformed.dataset(), verbose=0, return_dict=True)
    model.fit(transformed.dataset().repeat(), steps_per_epoch=60, verbose=0)
    after = model.evaluate(transformed.dataset(), verbose=0, return_dict=True)
    assert after["loss"] < 0.9 * before["loss"]


def test_exported_signatures_apply_the_transform_and_answer_as_the_task(
    configured_data: ConfiguredData, transformed: Transformed, tmp_path: Path
) -> None:
    model = build_model(transformed.output, Hyperparameters(hidden_units=(8,)))
    model.fit(transformed.dataset().repeat(), steps_per_epoch=5, verbose=0)
    serving.export(model, transformed.output, str(tmp_path))

    loaded = tf.saved_model.load(str(tmp_path))
    assert set(loaded.signatures) == {
        serving.DEFAULT_SIGNATURE,
        serving.EXAMPLES_SIGNATURE,
        serving.TRANSFORM_SIGNATURE,
    }
    rows = [without_label_columns(row) for row in configured_data.examples[:ROWS]]
    output = label.TASK.output_key
    from_examples = loaded.signatures[serving.EXAMPLES_SIGNATURE](examples=tf.constant(rows))[output].numpy()

    raw_inputs = loaded.signatures[serving.DEFAULT_SIGNATURE].structured_input_signature[1]
    assert set(raw_inputs) == set(features.RAW_FEATURE_KEYS)
    instances = raw_instances(rows)
    columns = {
        key: tf.constant([sent_as_zero(instance[key], spec.dtype) for instance in instances], spec.dtype)
        for key, spec in raw_inputs.items()
    }
    from_instances = loaded.signatures[serving.DEFAULT_SIGNATURE](**columns)[output].numpy()

    assert from_examples.shape == (ROWS, label.TASK.output_width)
    if label.TASK.is_classification:
        assert ((from_examples >= 0) & (from_examples <= 1)).all()
    # A value sent as 0 (or "") and a value left out are the same input after Transform's fill-in.
    np.testing.assert_allclose(from_instances, from_examples, rtol=1e-5, atol=1e-6)
