"""The ModelRegistration step in the compiled Vertex AI specs: executor, image, registry settings
(those of the committed configs/vertex-<env>.yaml)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.registration.component import DEFAULT_SMOKE_EXAMPLES
from pipeline import pipeline as tfx_pipeline
from tests.pipeline.expected import vertex_config
from tools.refresh_golden import ENVIRONMENTS, TEST_IMAGE


def task(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["pipelineSpec"]["root"]["dag"]["tasks"][name]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_registration_runs_our_executor_after_the_evaluator(env: str, spec_documents: dict[str, Any]) -> None:
    document = spec_documents[env]
    spec = document["pipelineSpec"]
    registration = task(document, tfx_pipeline.REGISTRATION)
    component = spec["components"][registration["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]

    assert container["image"] == TEST_IMAGE
    assert container["args"] == [
        "--executor_class_path",
        "components.registration.executor.Executor",
        "--json_serialized_invocation_args",
        "{{$}}",
    ]  # no Beam arguments
    assert set(registration["dependentTasks"]) == {
        tfx_pipeline.EXAMPLE_GEN,
        tfx_pipeline.TRAINER,
        tfx_pipeline.EVALUATOR,
    }
    assert registration["inputs"]["artifacts"]["model_blessing"]["taskOutputArtifact"] == {
        "outputArtifactKey": "blessing",
        "producerTask": tfx_pipeline.EVALUATOR,
    }
    assert tfx_pipeline.REGISTRATION in task(document, tfx_pipeline.PUSHER)["dependentTasks"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_registration_uploads_to_the_environment_registry(env: str, spec_documents: dict[str, Any]) -> None:
    parameters = task(spec_documents[env], tfx_pipeline.REGISTRATION)["inputs"]["parameters"]
    registry = json.loads(parameters["registry"]["runtimeValue"]["constantValue"]["stringValue"])
    config = vertex_config(env)

    assert registry == {
        "project": config.runner.project,
        "region": config.runner.region,
        "model_id": config.registry.model_id,
        "display_name": config.registry.display_name,
        "serving_image": config.registry.serving_image,
        "pipeline_root": config.runner.pipeline_root,
        "pipeline_image": TEST_IMAGE,
        "serving_container": config.registry.serving_container,
        "models_bucket": config.registry.models_bucket,
    }
    assert parameters["smoke_examples"]["runtimeValue"]["constantValue"]["intValue"] == str(DEFAULT_SMOKE_EXAMPLES)
