"""The ModelRegistration executor on real artifacts (the model of models/ on rows of the configured
data), uploading through the real SDK to the fake; the copy into the models bucket; and the
`registry` config section. The registry settings are the tests' own; the configured ones are checked
for what holds in any project (the example's own values: tests/example/test_components.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import aiplatform
from tfx.types import artifact_utils, standard_artifacts

from components.registration import executor
from components.registration.models_bucket import CopiedModel, ModelCopyError, copy_to_models_bucket
from components.registration.settings import PREBUILT, SERVING_CONTAINERS, TF_SERVING, RegistrySettings
from components.registration.upload import pipeline_job_id, provenance_labels, register_version, version_description
from components.serving_checks import Task
from components.smoke_test import SmokeTestError
from models.label import TASK
from pipeline.config import BASE_CONFIG, VERTEX_CONFIG_PREFIX, ConfigError, load_config, vertex_config_path
from pipeline.deploy_config import RegistryConfig
from pipeline.paths import CONFIG_DIR
from tests.components.conftest import write_examples
from tests.components.test_smoke_test import amount_examples, tiny_model
from tools.standins.fixtures import VertexStandins, environment_variable, write_pipeline_spec
from tools.standins.storage import StorageServer

PROJECT_NUMBER = "123456789012"
IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline@sha256:" + "0123456789abcdef" * 4
SERVING_IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/dockerhub/tensorflow/serving@sha256:" + "fedcba9876543210" * 4
ROOT = "gs://my-tfx-dev-pipelines/my-pipeline"
MODELS_BUCKET = "my-tfx-dev-models"


def settings(
    pipeline_root: str = ROOT, serving_container: str = TF_SERVING, models_bucket: str | None = f"gs://{MODELS_BUCKET}"
) -> RegistrySettings:
    return RegistrySettings(
        project="my-tfx-dev",
        region="us-central1",
        model_id="my-pipeline",
        display_name="my-pipeline",
        serving_image=SERVING_IMAGE,
        pipeline_root=pipeline_root,
        pipeline_image=IMAGE,
        serving_container=serving_container,
        models_bucket=models_bucket,
    )


def run_executor(
    model_uri: Path,
    examples_uri: Path,
    output_uri: Path,
    *,
    blessed: bool = True,
    registry: RegistrySettings | None = None,
    task: Task = TASK,
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
        {"registry": registry.to_json() if registry else "", "smoke_examples": 4, "task": task.to_json()},
    )
    return output


def submit_job(folder: Path, job_id: str, commit: str) -> None:
    """A pipeline run as `python -m pipeline submit` labels it."""
    job = aiplatform.PipelineJob(
        display_name="my-pipeline-vertex-dev",
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
    vertex_env.create_bucket(MODELS_BUCKET)
    submit_job(tmp_path, "my-pipeline-vertex-dev-20261127-030000-ab12", "1a2b3c4d5e6f")
    submit_job(tmp_path, "my-pipeline-vertex-dev-20261204-030000-cd34", "99aa88bb77cc")

    first = run_executor(
        model_uri, examples_uri, task_output(tmp_path, "my-pipeline-vertex-dev-20261127-030000-ab12"), registry=registry
    )
    second = run_executor(
        model_uri, examples_uri, task_output(tmp_path, "my-pipeline-vertex-dev-20261204-030000-cd34"), registry=registry
    )

    model = vertex_env.models.model("my-pipeline")
    assert model.version_ids == ["1", "2"]
    assert model.aliases == {"default": "1", "candidate": "2"}  # promotion moves default with production
    version = model.version("2")
    assert version["labels"] == {
        "blessed": "true",
        "pipeline_job": "my-pipeline-vertex-dev-20261204-030000-cd34",
        "git_commit": "99aa88bb77cc",
        "image_digest": "0123456789ab",
    }
    # Each version points at its own copy in the models bucket, in TF Serving's layout.
    base = f"gs://{MODELS_BUCKET}/my-pipeline/my-pipeline-vertex-dev-20261204-030000-cd34"
    assert version["artifactUri"] == base
    assert (
        model.version("1")["artifactUri"]
        == f"gs://{MODELS_BUCKET}/my-pipeline/my-pipeline-vertex-dev-20261127-030000-ab12"
    )
    exported = sorted(
        str(p.relative_to(model_uri / "Format-Serving"))
        for p in (model_uri / "Format-Serving").rglob("*")
        if p.is_file()
    )
    copied = sorted(
        blob.name
        for blob in vertex_env.storage_client().list_blobs(
            MODELS_BUCKET, prefix="my-pipeline/my-pipeline-vertex-dev-20261204"
        )
    )
    assert copied == [f"my-pipeline/my-pipeline-vertex-dev-20261204-030000-cd34/1/{name}" for name in exported]
    assert "saved_model.pb" in exported and any(name.startswith("variables/") for name in exported)
    assert version["versionDescription"] == (
        f"Blessed by the Evaluator. Task: {TASK.describe()}. Eval metrics: not recorded"
    )
    assert [r.body.get("parentModel", "") for r in vertex_env.server.find_requests("POST", r"models:upload$")] == [
        "",
        "projects/my-tfx-dev/locations/us-central1/models/my-pipeline",
    ]
    assert first.get_string_custom_property("model_version_id") == "1"
    assert second.get_int_custom_property("pushed") == 1
    assert second.get_string_custom_property("model_version_name") == (
        "projects/my-tfx-dev/locations/us-central1/models/my-pipeline@2"
    )
    assert second.get_string_custom_property("model_artifact_uri") == base
    assert second.get_string_custom_property("smoke_test").startswith("passed: 4 eval rows")
    record = json.loads((Path(second.uri) / "registration.json").read_text())
    assert (record["registered"], record["version_id"], record["labels"]["git_commit"]) == (True, "2", "99aa88bb77cc")
    assert record["artifact_uri"] == base


def test_the_upload_names_tf_servings_command_ports_and_routes(vertex_env: VertexStandins) -> None:
    """What the SDK sends in UploadModelRequest.model.containerSpec, and what Vertex AI keeps."""
    register_version(settings(), f"gs://{MODELS_BUCKET}/my-pipeline/run-1", {"blessed": "true"}, "first")

    (request,) = vertex_env.server.find_requests("POST", r"models:upload$")
    expected = {
        "imageUri": SERVING_IMAGE,
        "command": ["tensorflow_model_server"],
        "args": [
            "--model_name=my-pipeline",
            "--model_base_path=$(AIP_STORAGE_URI)",
            "--rest_api_port=$(AIP_HTTP_PORT)",
        ],
        "ports": [{"containerPort": 8080}],
        "predictRoute": "/v1/models/my-pipeline:predict",
        "healthRoute": "/v1/models/my-pipeline",
    }
    assert request.body["model"]["containerSpec"] == expected
    assert request.body["model"]["artifactUri"] == f"gs://{MODELS_BUCKET}/my-pipeline/run-1"
    assert vertex_env.models.model("my-pipeline").version("1")["containerSpec"] == expected


def test_the_prebuilt_container_gets_the_saved_model_at_the_root(
    vertex_env: VertexStandins, model_uri: Path, examples_uri: Path, tmp_path: Path
) -> None:
    vertex_env.create_bucket(MODELS_BUCKET)
    submit_job(tmp_path, "run-7", "1a2b3c4d5e6f")
    registry = settings(pipeline_root=str(tmp_path), serving_container=PREBUILT)

    run_executor(model_uri, examples_uri, task_output(tmp_path, "run-7"), registry=registry)

    version = vertex_env.models.model("my-pipeline").version("1")
    assert version["artifactUri"] == f"gs://{MODELS_BUCKET}/my-pipeline/run-7"
    assert version["containerSpec"] == {"imageUri": SERVING_IMAGE}  # the image's own entrypoint and routes
    names = {blob.name for blob in vertex_env.storage_client().list_blobs(MODELS_BUCKET)}
    assert "my-pipeline/run-7/saved_model.pb" in names and not any("/1/" in name for name in names)


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


def test_a_model_that_fails_the_smoke_test_is_not_uploaded(vertex_env: VertexStandins, tmp_path: Path) -> None:
    # A binary model of the test's own answering 2.0, on rows of its own.
    broken = Path(tiny_model(tmp_path, lambda f: f[:, None] * 0 + 2.0, lambda f: f[:, None] * 0 + 2.0))
    (tmp_path / "artifact").mkdir()
    broken.rename(tmp_path / "artifact" / "Format-Serving")
    examples = write_examples(tmp_path / "examples", amount_examples())

    with pytest.raises(SmokeTestError, match="outside \\[0, 1\\]"):
        run_executor(tmp_path / "artifact", examples, tmp_path / "out", registry=settings(), task=Task.binary())
    assert vertex_env.server.find_requests("POST", r"models:upload$") == []


def test_a_model_another_run_created_meanwhile_gets_the_new_version(vertex_env: VertexStandins) -> None:
    register_version(settings(), "gs://my-tfx-dev-pipelines/run-1/model", {"blessed": "true"}, "first")
    # The model looks missing (as to a run racing another one), so the upload with model_id conflicts.
    vertex_env.server.fail_next("GET", r"/models/my-pipeline$", 404)

    second = register_version(settings(), "gs://my-tfx-dev-pipelines/run-2/model", {"blessed": "true"}, "second")

    assert second.version_id == "2"
    assert [r.status for r in vertex_env.server.find_requests("POST", r"models:upload$")] == [200, 409, 200]
    assert vertex_env.models.model("my-pipeline").aliases == {"default": "1", "candidate": "2"}


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


# -- the copy into the models bucket, against the Cloud Storage stand-in (preconditions as GCS) --------


@pytest.fixture
def gcs() -> Iterator[StorageServer]:
    """Cloud Storage with the pipeline root's and the models bucket, for google-cloud-storage."""
    with StorageServer() as server, environment_variable("STORAGE_EMULATOR_HOST", server.url):
        for bucket in ("my-tfx-dev-pipelines", MODELS_BUCKET):
            server.create_bucket(bucket, project="my-tfx-dev")
        yield server


def exported_files(model_uri: Path) -> dict[str, bytes]:
    folder = model_uri / "Format-Serving"
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_saved_model_in_the_pipeline_root_is_copied_by_the_service(gcs: StorageServer, model_uri: Path) -> None:
    """The Trainer's gs:// export is copied server-side (rewriteTo), saved_model.pb last."""
    source = f"{ROOT}/{PROJECT_NUMBER}/run-1/Trainer_5/model/Format-Serving"
    for name, data in exported_files(model_uri).items():
        gcs.put_object("my-tfx-dev-pipelines", f"{source.split('/', 3)[3]}/{name}", data)

    copied = copy_to_models_bucket(settings(), source, "run-1")

    assert (copied.artifact_uri, copied.saved_model_uri) == (
        f"gs://{MODELS_BUCKET}/my-pipeline/run-1",
        f"gs://{MODELS_BUCKET}/my-pipeline/run-1/1",
    )
    assert {
        name: gcs.get_object(MODELS_BUCKET, f"my-pipeline/run-1/1/{name}") for name in exported_files(model_uri)
    } == (exported_files(model_uri))
    writes = [r for r in gcs.requests if r.method == "POST" and MODELS_BUCKET in r.path]
    assert all("/rewriteTo/" in r.path and r.query.get("ifGenerationMatch") == "0" for r in writes)
    assert writes[-1].path.endswith("saved_model.pb")
    assert (copied.files, copied.already_there) == (len(exported_files(model_uri)), 0)


def test_a_retried_copy_keeps_what_is_there_and_never_replaces_it(
    gcs: StorageServer, model_uri: Path, tmp_path: Path
) -> None:
    model_dir = str(model_uri / "Format-Serving")
    first = copy_to_models_bucket(settings(), model_dir, "run-2")
    again = copy_to_models_bucket(settings(), model_dir, "run-2")  # a retried task of the same run

    assert again == CopiedModel(first.artifact_uri, first.saved_model_uri, first.files, already_there=first.files)
    other = tmp_path / "other"
    other.mkdir()
    (other / "saved_model.pb").write_bytes(b"another model")
    with pytest.raises(ModelCopyError, match=r"my-pipeline/run-2/1/saved_model.pb exists with other content"):
        copy_to_models_bucket(settings(), str(other), "run-2")
    assert (
        gcs.get_object(MODELS_BUCKET, "my-pipeline/run-2/1/saved_model.pb")
        == exported_files(model_uri)["saved_model.pb"]
    )


def test_without_a_known_run_the_folder_is_named_by_the_content(gcs: StorageServer, model_uri: Path) -> None:
    model_dir = str(model_uri / "Format-Serving")
    copied = copy_to_models_bucket(settings(), model_dir, None)
    assert copied.artifact_uri.startswith(f"gs://{MODELS_BUCKET}/my-pipeline/sha256-")
    assert copy_to_models_bucket(settings(), model_dir, None).artifact_uri == copied.artifact_uri


def test_tf_serving_needs_a_models_bucket(model_uri: Path) -> None:
    """Without one the version would point at the Trainer's export, which has no version folder."""
    with pytest.raises(ModelCopyError, match="models_bucket is required with serving_container tf-serving"):
        executor.registered_artifacts(settings(models_bucket=None), str(model_uri / "Format-Serving"), "run-4")
    prebuilt = settings(serving_container=PREBUILT, models_bucket=None)
    assert executor.registered_artifacts(prebuilt, f"{ROOT}/model", "run-4") == f"{ROOT}/model"  # as before


def test_a_folder_without_a_saved_model_is_refused(gcs: StorageServer, tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "variables.index").write_bytes(b"x")
    with pytest.raises(ModelCopyError, match="holds no saved_model.pb"):
        copy_to_models_bucket(settings(), str(tmp_path), "run-3")
    assert gcs.object_names(MODELS_BUCKET) == []


# -- the registry config section ----------------------------------------------------------------------


def registry_override(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "registry: {serving_image: 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest'}\n",
            "registry.serving_image: image 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest' is given "
            "by tag ':latest', which can move; pin it by digest, such as",
        ),
        (
            "registry: {serving_image: 'us-central1-docker.pkg.dev/p/dockerhub/tensorflow/serving:2.16.1'}\n",
            "is given by tag ':2.16.1', which can move; pin it by digest",
        ),
        (
            "registry: {serving_image: 'us-central1-docker.pkg.dev/p/dockerhub/tensorflow/serving:2.16.1@sha256:"
            + "a" * 64
            + "'}\n",
            "is given by tag ':2.16.1', which can move",  # a tag next to the digest is refused too, as for runner.image
        ),
        ("registry: {serving_image: 'tensorflow/serving@sha256:" + "a" * 64 + "'}\n", "does not start with a registry"),
        ("registry: {serving_container: docker}\n", "registry.serving_container: input should be 'tf-serving' or"),
        ("registry: {models_bucket: my-tfx-dev-models}\n", "registry.models_bucket: expected a gs:// bucket such as"),
        ("registry: {models_bucket: null}\n", "registry.models_bucket: input should be a valid string"),
    ],
)
def test_the_registry_section_refuses_a_tagged_image_and_a_bad_bucket(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config([BASE_CONFIG, vertex_config_path("dev"), registry_override(tmp_path, text)])
    assert expected in str(error.value) and "\n" not in str(error.value)


def vertex_configs_with_a_registry() -> list[str]:
    """The environments of configs/vertex-*.yaml that register models."""
    envs = sorted(
        path.stem.removeprefix(VERTEX_CONFIG_PREFIX) for path in CONFIG_DIR.glob(f"{VERTEX_CONFIG_PREFIX}*.yaml")
    )
    return [env for env in envs if load_config([BASE_CONFIG, vertex_config_path(env)]).registry is not None]


@pytest.mark.parametrize("env", vertex_configs_with_a_registry())
def test_each_vertex_config_registers_models_where_the_registration_can(env: str) -> None:
    """What the executor needs of any registry section: TF Serving's image with a models bucket for
    its version folders, outside the pipeline root."""
    config = load_config([BASE_CONFIG, vertex_config_path(env)])
    assert config.registry is not None
    models_bucket = config.registry.models_bucket
    if config.registry.serving_container == TF_SERVING:
        assert models_bucket is not None
        assert "/tensorflow/serving@sha256:" in config.registry.serving_image
    if models_bucket is not None:
        assert not f"{config.runner.pipeline_root.rstrip('/')}/".startswith(f"{models_bucket.rstrip('/')}/")


def test_the_config_knows_the_containers_the_registration_knows() -> None:
    assert RegistryConfig.model_fields["serving_container"].annotation.__args__ == SERVING_CONTAINERS


def test_the_version_description_names_the_task_and_keeps_per_class_metrics_apart() -> None:
    task = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
    metrics = {"auc (macro average)": 0.91, "auc[setosa]": 0.99, "auc[virginica]": None, "example_count": 150.0}
    assert version_description(metrics, task) == (
        "Blessed by the Evaluator. Task: 3-class classification (setosa, versicolor, virginica). Eval metrics: "
        "auc (macro average) 0.9100, auc[setosa] 0.9900, auc[virginica] undefined, example_count 150"
    )
    assert len(version_description({f"auc[class {i}]": 0.5 for i in range(200)}, task)) == 1000
