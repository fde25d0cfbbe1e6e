"""The TFX component `BaselineModel`: the model the Evaluator compares the candidate against.

Input `candidate` (the Trainer's model, left out of the choice); exec property `source` (a
sources.BaselineSource as JSON); output `baseline_model` (Model), whose URI the executor sets to
the chosen model's folder. A plain component (ExecutorClassSpec): the local runner runs it
in-process, Vertex AI in the pipeline image, like every other step. Cached like any step: a
candidate served from the cache keeps the baseline it was first compared with.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.baseline import executor
from components.baseline.sources import BaselineSource, to_json


class BaselineModelSpec(ComponentSpec):
    PARAMETERS = {executor.SOURCE_KEY: ExecutionParameter(type=str)}
    INPUTS = {executor.CANDIDATE_KEY: ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {executor.BASELINE_KEY: ChannelParameter(type=standard_artifacts.Model)}


class BaselineModel(base_component.BaseComponent):
    SPEC_CLASS = BaselineModelSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, candidate: types.BaseChannel, source: BaselineSource) -> None:
        spec = BaselineModelSpec(
            candidate=candidate,
            source=to_json(source),
            baseline_model=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
