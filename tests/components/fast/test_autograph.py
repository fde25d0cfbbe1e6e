"""With AutoGraph leaving tf-keras alone, training gives the same model as with TFX's stock AutoGraph
(the model of models/ on rows of the configured data)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.core import config_lib

from components.fast import autograph
from models.model import Hyperparameters, build_model
from tests.components.conftest import Transformed


@pytest.fixture
def rules() -> Iterator[None]:
    """AutoGraph's rules as they were before the test (the rule is otherwise kept for the process)."""
    before = autograph_config.CONVERSION_RULES
    yield
    autograph_config.CONVERSION_RULES = before


def trained_weights(transformed: Transformed) -> list[np.ndarray]:
    tf.keras.utils.set_random_seed(7)
    model = build_model(transformed.output, Hyperparameters(hidden_units=(8,)))
    model.fit(transformed.dataset().repeat(), steps_per_epoch=10, verbose=0)
    return [weight.numpy() for weight in model.weights]


def test_the_rule_leaves_tf_keras_alone_and_converts_the_rest(rules) -> None:
    autograph_config.CONVERSION_RULES = tuple(
        rule for rule in autograph_config.CONVERSION_RULES if getattr(rule, "_prefix", None) != "tf_keras"
    )
    assert not autograph.skips_tf_keras()
    autograph.skip_tf_keras()
    autograph.skip_tf_keras()
    matching = [r for r in autograph_config.CONVERSION_RULES if getattr(r, "_prefix", None) == "tf_keras"]
    assert len(matching) == 1  # idempotent
    assert matching[0].get_action(inspect.getmodule(tf.keras.Model)) == config_lib.Action.DO_NOT_CONVERT
    # The model's own code is still converted.
    assert matching[0].get_action(inspect.getmodule(build_model)) == config_lib.Action.NONE


def test_training_with_the_rule_gives_the_stock_model(transformed: Transformed, rules) -> None:
    autograph_config.CONVERSION_RULES = tuple(
        rule for rule in autograph_config.CONVERSION_RULES if getattr(rule, "_prefix", None) != "tf_keras"
    )
    stock = trained_weights(transformed)
    autograph.skip_tf_keras()
    fast = trained_weights(transformed)
    assert len(fast) == len(stock)
    for ours, theirs in zip(fast, stock, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
