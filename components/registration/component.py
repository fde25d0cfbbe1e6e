"""The TFX component `ModelRegistration`: after the Evaluator, registers blessed models.

Inputs: the Trainer's `model`, the Evaluator's `blessing` and `evaluation`, and the `examples`
(a few eval rows feed the smoke test). Parameters: the model's `task` (what a good answer is) and
the declared `serving_instances` (the JSON instances the endpoint's smoke test sends, which must
work on the exported model too). Output `registered_model` (PushedModel) records the
smoke test and, when uploaded, the registry version (`model_version_name`, `model_version_id`).
Without `registry` (local runs) it runs the smoke test only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.registration import executor
from components.registration.settings import RegistrySettings
from components.serving_checks import Instance, Task

DEFAULT_SMOKE_EXAMPLES = 8


class ModelRegistrationSpec(ComponentSpec):
    PARAMETERS = {
        # RegistrySettings as JSON; '' = smoke test only.
        executor.REGISTRY_KEY: ExecutionParameter(type=str),
        executor.SMOKE_EXAMPLES_KEY: ExecutionParameter(type=int),
        # serving_checks.Task as JSON.
        executor.TASK_KEY: ExecutionParameter(type=str),
        # JSON list of the declared serving instances; '' = none declared.
        executor.SERVING_INSTANCES_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }
    OUTPUTS = {
        executor.REGISTERED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }


class ModelRegistration(base_component.BaseComponent):
    SPEC_CLASS = ModelRegistrationSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        examples: types.BaseChannel,
        task: Task,
        evaluation: types.BaseChannel | None = None,
        registry: RegistrySettings | None = None,
        smoke_examples: int = DEFAULT_SMOKE_EXAMPLES,
        serving_instances: Sequence[Instance] = (),
    ) -> None:
        spec = ModelRegistrationSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            evaluation=evaluation,
            registry=registry.to_json() if registry else "",
            smoke_examples=smoke_examples,
            task=task.to_json(),
            serving_instances=json.dumps(list(serving_instances), sort_keys=True) if serving_instances else "",
            registered_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
