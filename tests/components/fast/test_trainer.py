"""The Trainer's wrapper run_fn applies the Trainer fast paths as switched, then calls the model's run_fn."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tensorflow.python.autograph.core import config as autograph_config
from tfx.components.trainer.fn_args_utils import FnArgs

from components.fast import autograph, trainer, transform_export

seen: list[dict] = []


def recording_run_fn(fn_args: FnArgs) -> None:
    """Stands for models.model.run_fn: records what it runs under."""
    seen.append(
        {
            "custom_config": fn_args.custom_config,
            "loader_export": transform_export._use_loader,
            "tf_keras_not_converted": autograph.skips_tf_keras(),
        }
    )


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    rules = autograph_config.CONVERSION_RULES
    autograph_config.CONVERSION_RULES = tuple(r for r in rules if getattr(r, "_prefix", None) != "tf_keras")
    seen.clear()
    yield
    autograph_config.CONVERSION_RULES = rules


@pytest.mark.parametrize(("autograph_rule", "loader_export"), [(True, True), (False, True), (True, False)])
def test_the_switches_reach_the_models_run_fn(autograph_rule: bool, loader_export: bool) -> None:
    config = {
        "hyperparameters": {"batch_size": 8},
        **trainer.custom_config(
            f"{__name__}.recording_run_fn", autograph_rule=autograph_rule, loader_export=loader_export
        ),
    }
    trainer.run_fn(FnArgs(custom_config=config))
    (call,) = seen
    assert call["custom_config"] is config  # the model reads its own keys as usual
    assert call["loader_export"] is loader_export
    assert call["tf_keras_not_converted"] is autograph_rule
    assert transform_export._use_loader is False  # only while the model's run_fn runs


def test_a_missing_model_run_fn_is_named() -> None:
    with pytest.raises(ValueError, match="model_run_fn"):
        trainer.run_fn(FnArgs(custom_config={"hyperparameters": {}}))
