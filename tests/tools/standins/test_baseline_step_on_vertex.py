"""The compiled BaselineModel step, run as Vertex AI runs it: in the pipeline image, through TFX's
KFP container entrypoint, as the pipeline's service account, reaching the Model Registry and the
pipeline jobs at Google's host names through the stand-ins' network.

Trainer, Evaluator and ModelRegistration are placeholders here (their outputs are recorded with the
URIs the service generates); BaselineModel is the step of tests/example/golden/dev.json.
The first run finds nothing registered; after its model is registered, the second run's Evaluator
gets that model's own URI as `baseline_model`. The names are configs/vertex-dev.yaml's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import aiplatform

from tests.tools.standins.pipeline_jobs import (
    BUCKET,
    DEV,
    FIRST_JOB,
    PIPELINE_IMAGE_REPOSITORY,
    PIPELINE_ROOT,
    PROJECT,
    REGION,
    SECOND_JOB,
    SERVING_IMAGE,
    run_dev_job,
)
from tools.refresh_golden import golden_path
from tools.rehearsal.cloud import LocalCloud
from tools.standins.fixtures import aiplatform_configured

BASELINE = "BaselineModel"


def spec_with_the_compiled_baseline_step(image: str) -> dict[str, Any]:
    golden = json.loads(golden_path("dev").read_text())["pipelineSpec"]
    model = {"artifactType": {"schemaTitle": "tfx.Model"}}
    components = {
        "Trainer": {"outputDefinitions": {"artifacts": {"model": model}}},
        "Evaluator": {"inputDefinitions": {"artifacts": {"model": model, "baseline_model": model}}},
        "ModelRegistration": {"inputDefinitions": {"artifacts": {"model": model}}},
    }
    placeholder = {"container": {"image": image, "command": ["python", "-c", "pass"]}}
    executors = {f"{name}_executor": copy.deepcopy(placeholder) for name in components}
    for name, definition in components.items():
        definition["executorLabel"] = f"{name}_executor"
    components[BASELINE] = golden["components"][BASELINE]
    executors[f"{BASELINE}_executor"] = copy.deepcopy(golden["deploymentSpec"]["executors"][f"{BASELINE}_executor"])
    executors[f"{BASELINE}_executor"]["container"]["image"] = image

    def output(task: str, key: str) -> dict[str, Any]:
        return {"taskOutputArtifact": {"producerTask": task, "outputArtifactKey": key}}

    tasks = {
        "Trainer": {"inputs": {}},
        BASELINE: copy.deepcopy(golden["root"]["dag"]["tasks"][BASELINE]),
        "Evaluator": {
            "inputs": {
                "artifacts": {"model": output("Trainer", "model"), "baseline_model": output(BASELINE, "baseline_model")}
            }
        },
        "ModelRegistration": {"inputs": {"artifacts": {"model": output("Trainer", "model")}}},
    }
    for name, task in tasks.items():
        task.update(componentRef={"name": name}, taskInfo={"name": name}, cachingOptions={"enableCache": False})
    return {
        "pipelineInfo": golden["pipelineInfo"],
        "schemaVersion": golden["schemaVersion"],
        "sdkVersion": golden["sdkVersion"],
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {"dag": {"tasks": tasks}},
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, dict[str, Any]]]:
    state = tmp_path_factory.mktemp("cloud")
    with LocalCloud(state / "cloud", PROJECT, REGION) as cloud:
        cloud.network.storage.create_bucket(BUCKET, project=PROJECT, location=REGION)
        image = cloud.push_pipeline_image(PIPELINE_IMAGE_REPOSITORY)
        with aiplatform_configured(api_endpoint=cloud.vertex_url, project=PROJECT, location=REGION):
            yield cloud, spec_with_the_compiled_baseline_step(image)


def run(cloud: LocalCloud, spec: dict[str, Any], job_id: str) -> dict[str, Any]:
    tasks = run_dev_job(cloud, spec, job_id)
    failed = {name: task.error.message for name, task in tasks.items() if task.state.name == "FAILED"}
    assert failed == {}
    return tasks


def test_the_compiled_step_hands_the_registered_model_to_the_evaluator(cloud: tuple[LocalCloud, dict]) -> None:
    local_cloud, spec = cloud
    assert DEV.registry is not None, "configs/vertex-dev.yaml: no registry, so no BaselineModel step"
    model_id = DEV.registry.model_id
    first = run(local_cloud, spec, FIRST_JOB)

    # Nothing registered yet: an empty output, marked, at the URI the service generated.
    (marker,) = first["Evaluator"].inputs["baseline_model"].artifacts
    assert marker.metadata["baseline_found"] == 0
    assert marker.uri.startswith(f"{PIPELINE_ROOT}/") and marker.uri.endswith("/baseline_model")
    first_model = first["Trainer"].outputs["model"].artifacts[0].uri

    aiplatform.Model.upload(
        model_id=model_id,
        display_name=model_id,
        artifact_uri=f"gs://my-tfx-dev-models/{model_id}/{first['Trainer'].task_id}",
        serving_container_image_uri=SERVING_IMAGE,
        labels={"blessed": "true", "pipeline_job": FIRST_JOB},
    )
    second = run(local_cloud, spec, SECOND_JOB)

    (baseline,) = second["Evaluator"].inputs["baseline_model"].artifacts
    assert baseline.uri == first_model != second["Trainer"].outputs["model"].artifacts[0].uri
    assert baseline.metadata["baseline_found"] == 1
    assert baseline.metadata["registered_as"].endswith(f"{model_id}@1 (run {FIRST_JOB})")
    assert baseline.name == second[BASELINE].outputs["baseline_model"].artifacts[0].name
