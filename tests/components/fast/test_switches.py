"""`fast_paths` in the config: every fast path on by default, each one off on its own, stock TFX when off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components import csv_examples
from components.fast import csv_examples as fast_csv_examples
from components.fast import eval_extractors
from components.fast import trainer as fast_trainer
from pipeline import pipeline as tfx_pipeline
from pipeline.config import ConfigError, load_config


def components(tmp_path: Path, fast_paths=None) -> dict:
    overrides = {"runner.output_dir": str(tmp_path)}
    if fast_paths is not None:
        overrides["fast_paths"] = fast_paths
    config = load_config(overrides=overrides)
    return {c.id: c for c in tfx_pipeline.create_components(config, str(tmp_path))}


def wiring(by_id: dict) -> dict:
    trainer_config = json.loads(by_id[tfx_pipeline.TRAINER].exec_properties["custom_config"])
    return {
        "csv_executor": by_id[tfx_pipeline.EXAMPLE_GEN].executor_spec.executor_class,
        "evaluator_module": by_id[tfx_pipeline.EVALUATOR].exec_properties.get("module_path"),
        "run_fn": by_id[tfx_pipeline.TRAINER].exec_properties["run_fn"],
        "trainer_switches": trainer_config.get(fast_trainer.SWITCHES_KEY),
        "model_run_fn": trainer_config.get(fast_trainer.MODEL_RUN_FN_KEY),
    }


def test_every_fast_path_is_on_by_default(tmp_path: Path) -> None:
    assert wiring(components(tmp_path)) == {
        "csv_executor": fast_csv_examples.Executor,
        "evaluator_module": eval_extractors.__name__,
        "run_fn": fast_trainer.RUN_FN,
        "trainer_switches": {fast_trainer.AUTOGRAPH: True, fast_trainer.TRANSFORM_EXPORT: True},
        "model_run_fn": tfx_pipeline.RUN_FN,
    }


def test_all_off_is_stock_tfx(tmp_path: Path) -> None:
    assert wiring(components(tmp_path, False)) == {
        "csv_executor": csv_examples.CsvExampleGen.EXECUTOR_SPEC.executor_class,  # TFX's conversion
        "evaluator_module": None,
        "run_fn": tfx_pipeline.RUN_FN,  # the model's own run_fn: no wrapper
        "trainer_switches": None,
        "model_run_fn": None,
    }


def test_one_trainer_path_off_keeps_the_wrapper_for_the_other(tmp_path: Path) -> None:
    got = wiring(components(tmp_path, {"autograph": False}))
    assert got["run_fn"] == fast_trainer.RUN_FN
    assert got["trainer_switches"] == {fast_trainer.AUTOGRAPH: False, fast_trainer.TRANSFORM_EXPORT: True}
    assert got["csv_executor"] is fast_csv_examples.Executor


@pytest.mark.parametrize("bad", [1, "off", {"csv": False}, {"autograph": "no"}])
def test_the_switch_is_typed(bad) -> None:
    with pytest.raises(ConfigError, match="fast_paths"):
        load_config(overrides={"fast_paths": bad})
