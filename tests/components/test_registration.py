"""The ModelRegistration executor on real artifacts, uploading through the real SDK to the fake."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from google.cloud import aiplatform
from tfx.types import artifact_utils, standard_artifacts

from components.registration import executor
from components.registration.settings import RegistrySettings
from components.registration.upload import pipeline_job_id, provenance_labels, register_version
from components.smoke_test import SmokeTestError
from tests.components.test_smoke_test import tiny_model
from tools.standins.fixtures import VertexStandins, write_pipeline_spec

PROJECT_NUMBER = "123456789012"
IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/pipelines/taxi-tips@sha256:" + "0123456789abcdef" * 4
ROOT = "gs://my-tfx-dev-pipelines/taxi-tips"


def settings(pipeline_root: str = ROOT) -> RegistrySettings:
    return RegistrySettings(
        project="my-tfx-dev",
        region="us-central1",
        model_id="taxi-tips",
        display_name="taxi-tips",
        serving_image="us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        pipeline_root=pipeline_root,
        pipeline_image=IMAGE,
    )


def run_executor(
    model_uri: Path,
    examples_uri: Path,
    output_uri: Path,
    *,
    blessed: bool = True,
    registry: RegistrySettings | None = None,
) -> standard_artifacts.PushedModel:
    model = standard_artifacts.Model()
    model.uri = str(model_uri)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(output_uri.parent / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_uri)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    output = standard_artifacts.PushedModel()
    output.uri = str(output_uri)
    executor.Executor().Do(
        {"model": [model], "model_blessing": [blessing], "examples": [examples]},
        {"registered_model": [output]},
        {"registry": registry.to_json() if registry else "", "smoke_examples": 4},
    )
    return output


def submit_job(folder: Path, job_id: str, commit: str) -> None:
    """A pipeline run as `python -m pipeline submit` labels it."""
    job = aiplatform.PipelineJob(
        display_name="taxi-tips-vertex-dev",
        template_path=write_pipeline_spec(folder / f"{job_id}.json"),
        job_id=job_id,
        labels={"config": "vertex-dev", "git_commit": commit, "image_digest": "0123456789ab"},
        project="my-tfx-dev",
    )
    job.submit()


def task_output(root: Path, job_id: str) -> Path:
    """Where Vertex AI Pipelines puts the step's output: <root>/<project number>/<job>/<task>_<id>/<key>."""
    return root / PROJECT_NUMBER / job_id / "ModelRegistration_8177" / "registered_model"


def test_blessed_models_become_versions_of_one_registry_model(
    vertex_env: VertexStandins, model_uri: Path, examples_uri: Path, tmp_path: Path
) -> None:
    registry = settings(pipeline_root=str(tmp_path))
    submit_job(tmp_path, "taxi-tips-vertex-dev-20261127-030000-ab12", "1a2b3c4d5e6f")
    submit_job(tmp_path, "taxi-tips-vertex-dev-20261204-030000-cd34", "99aa88bb77cc")

    first = run_executor(
        model_uri, examples_uri, task_output(tmp_path, "taxi-tips-vertex-dev-20261127-030000-ab12"), registry=registry
    )
    second = run_executor(
        model_uri, examples_uri, task_output(tmp_path, "taxi-tips-vertex-dev-20261204-030000-cd34"), registry=registry
    )

    model = vertex_env.models.model("taxi-tips")
    assert model.version_ids == ["1", "2"]
    assert model.aliases == {"default": "1", "candidate": "2"}  # promotion moves default with production
    version = model.version("2")
    assert version["labels"] == {
        "blessed": "true",
        "pipeline_job": "taxi-tips-vertex-dev-20261204-030000-cd34",
        "git_commit": "99aa88bb77cc",
        "image_digest": "0123456789ab",
    }
    assert version["containerSpec"]["imageUri"] == registry.serving_image
    assert version["artifactUri"].startswith("gs://test-staging-bucket/vertex_ai_auto_staging/")  # staged copy
    assert version["versionDescription"] == "Blessed by the Evaluator. Eval metrics: not recorded"
    assert [r.body.get("parentModel", "") for r in vertex_env.server.find_requests("POST", r"models:upload$")] == [
        "",
        "projects/my-tfx-dev/locations/us-central1/models/taxi-tips",
    ]
    assert first.get_string_custom_property("model_version_id") == "1"
    assert second.get_int_custom_property("pushed") == 1
    assert second.get_string_custom_property("model_version_name") == (
        "projects/my-tfx-dev/locations/us-central1/models/taxi-tips@2"
    )
    assert second.get_string_custom_property("smoke_test").startswith("passed: 4 eval rows")
    record = json.loads((Path(second.uri) / "registration.json").read_text())
    assert (record["registered"], record["version_id"], record["labels"]["git_commit"]) == (True, "2", "99aa88bb77cc")


def test_an_unblessed_model_is_not_uploaded(
    vertex_env: VertexStandins,
    model_uri: Path,
    examples_uri: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="absl"):
        output = run_executor(model_uri, examples_uri, tmp_path / "out", blessed=False, registry=settings())

    assert vertex_env.server.requests == []
    assert output.get_int_custom_property("pushed") == 0
    assert output.get_string_custom_property("reason") == "not blessed by the Evaluator"
    assert "is not registered: the Evaluator did not bless it" in caplog.text


def test_without_a_registry_only_the_smoke_test_runs(model_uri: Path, examples_uri: Path, tmp_path: Path) -> None:
    output = run_executor(model_uri, examples_uri, tmp_path / "out")

    assert output.get_int_custom_property("pushed") == 0
    assert output.get_string_custom_property("reason") == "no registry configured (smoke test only)"
    assert output.get_string_custom_property("smoke_test").startswith("passed")


def test_a_model_that_fails_the_smoke_test_is_not_uploaded(
    vertex_env: VertexStandins, examples_uri: Path, tmp_path: Path
) -> None:
    broken = Path(tiny_model(tmp_path, lambda f: f[:, None] * 0 + 2.0, lambda f: f[:, None] * 0 + 2.0))
    (tmp_path / "artifact").mkdir()
    broken.rename(tmp_path / "artifact" / "Format-Serving")

    with pytest.raises(SmokeTestError, match="outside \\[0, 1\\]"):
        run_executor(tmp_path / "artifact", examples_uri, tmp_path / "out", registry=settings())
    assert vertex_env.server.find_requests("POST", r"models:upload$") == []


def test_a_model_another_run_created_meanwhile_gets_the_new_version(vertex_env: VertexStandins) -> None:
    register_version(settings(), "gs://my-tfx-dev-pipelines/run-1/model", {"blessed": "true"}, "first")
    # The model looks missing (as to a run racing another one), so the upload with model_id conflicts.
    vertex_env.server.fail_next("GET", r"/models/taxi-tips$", 404)

    second = register_version(settings(), "gs://my-tfx-dev-pipelines/run-2/model", {"blessed": "true"}, "second")

    assert second.version_id == "2"
    assert [r.status for r in vertex_env.server.find_requests("POST", r"models:upload$")] == [200, 409, 200]
    assert vertex_env.models.model("taxi-tips").aliases == {"default": "1", "candidate": "2"}


def test_provenance_without_a_known_job(vertex_env: VertexStandins) -> None:
    local = provenance_labels(settings(), "/tmp/out/ModelRegistration/registered_model/7")
    assert local == {
        "blessed": "true",
        "pipeline_job": "unknown",
        "git_commit": "unknown",
        "image_digest": "0123456789ab",
    }
    missing = provenance_labels(settings(), f"{ROOT}/{PROJECT_NUMBER}/deleted-run/ModelRegistration_1/registered_model")
    assert (missing["pipeline_job"], missing["git_commit"]) == ("deleted-run", "unknown")


@pytest.mark.parametrize(
    ("uri", "job"),
    [
        (f"{ROOT}/123/run-1/ModelRegistration_5/registered_model", "run-1"),
        (f"{ROOT}/123/run-1", None),
        (f"{ROOT}/not-a-number/run-1/ModelRegistration_5/registered_model", None),
        ("gs://elsewhere/123/run-1/ModelRegistration_5/registered_model", None),
    ],
)
def test_pipeline_job_id_from_the_artifact_path(uri: str, job: str | None) -> None:
    assert pipeline_job_id(ROOT + "/", uri) == job
