import numpy as np
import pytest
import tensorflow as tf

from components.fast import autograph
from models import features, serving
from models.model import Hyperparameters, build_model
from tests.models.conftest import dataset, serialized_example, trips


@pytest.fixture(scope="module", autouse=True)
def _tf_keras_not_converted() -> None:
    """As the pipeline's Trainer runs (fast path `autograph`): the first fit 0.7 s instead of 16 s."""
    autograph.skip_tf_keras()


def raw_instance(trip: dict) -> dict:
    return {key: values[0] if values else None for key, values in trip.items() if key in features.RAW_FEATURE_KEYS}


def test_model_learns_on_a_few_steps(transformed) -> None:
    rows, output = transformed
    model = build_model(output, Hyperparameters(learning_rate=0.01, hidden_units=(16,)))
    before = model.evaluate(dataset(rows), verbose=0, return_dict=True)
    model.fit(dataset(rows).repeat(), steps_per_epoch=60, verbose=0)
    after = model.evaluate(dataset(rows), verbose=0, return_dict=True)
    assert after["loss"] < before["loss"]
    assert after["auc"] > 0.9


def test_exported_signatures_apply_the_transform_and_return_probabilities(transformed, tmp_path) -> None:
    rows, output = transformed
    model = build_model(output, Hyperparameters(hidden_units=(8,)))
    model.fit(dataset(rows).repeat(), steps_per_epoch=5, verbose=0)
    serving.export(model, output, str(tmp_path))

    loaded = tf.saved_model.load(str(tmp_path))
    assert set(loaded.signatures) == {
        serving.DEFAULT_SIGNATURE,
        serving.EXAMPLES_SIGNATURE,
        serving.TRANSFORM_SIGNATURE,
    }
    sample = trips(4)
    from_examples = loaded.signatures[serving.EXAMPLES_SIGNATURE](
        examples=tf.constant([serialized_example(trip) for trip in sample])
    )["probabilities"].numpy()

    instances = [raw_instance(trip) for trip in sample]
    raw_inputs = loaded.signatures[serving.DEFAULT_SIGNATURE].structured_input_signature[1]
    columns = {
        key: tf.constant([instance[key] if instance[key] is not None else 0 for instance in instances], spec.dtype)
        for key, spec in raw_inputs.items()
    }
    from_instances = loaded.signatures[serving.DEFAULT_SIGNATURE](**columns)["probabilities"].numpy()

    assert from_examples.shape == (4, 1)
    assert ((from_examples >= 0) & (from_examples <= 1)).all()
    # A value sent as 0 and a value left out are the same input after Transform's fill-in.
    np.testing.assert_allclose(from_instances, from_examples, rtol=1e-5)
