"""TFX's Evaluator, leaving out the "no baseline" marker of BaselineModel.

On Vertex AI every step records its output artifact, so when BaselineModel finds no baseline (the
first run) the Evaluator still gets a `baseline_model`: an empty one marked `baseline_found` = 0.
TFX's Evaluator would try to load it; this executor removes it first, and TFX then evaluates the
candidate alone (change thresholds are skipped without a baseline, the value thresholds decide).
Any other baseline is passed on untouched, so the change threshold applies as TFX defines it.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from components.baseline.executor import REASON_KEY, is_no_baseline_marker

BASELINE_MODEL_KEY = standard_component_specs.BASELINE_MODEL_KEY


class Executor(evaluator_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        baselines = input_dict.get(BASELINE_MODEL_KEY, [])
        for marker in filter(is_no_baseline_marker, baselines):
            reason = marker.get_string_custom_property(REASON_KEY)
            logging.info("No baseline model (%s): evaluating the candidate alone", reason)
        kept = [model for model in baselines if not is_no_baseline_marker(model)]
        super().Do({**input_dict, BASELINE_MODEL_KEY: kept}, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
