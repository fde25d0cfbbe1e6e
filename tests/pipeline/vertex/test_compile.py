"""What the compiled KFP v2 spec tells Vertex AI, read through the pipeline_spec protos; expectations
derived from the committed configs (the taxi example's own spec: tests/example/test_golden.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components.baseline.sources import NoSource
from pipeline import pipeline as tfx_pipeline
from pipeline.config import vertex_config_path
from runners import cli, errors
from tests.pipeline.expected import expected_steps, vertex_config
from tools.refresh_golden import ENVIRONMENTS, TEST_IMAGE

BEAM_COMPONENTS = {
    tfx_pipeline.EXAMPLE_GEN,
    tfx_pipeline.STATISTICS_GEN,
    tfx_pipeline.TRANSFORM,
    tfx_pipeline.EVALUATOR,
}
TRAINING_ARGS = "ai_platform_training_args"

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\"private_key(_id)?\""),
    "Google API key": re.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "OAuth access token": re.compile(r"ya29\.[0-9A-Za-z_-]+"),
    "GitHub token": re.compile(r"gh[pousr]_[0-9A-Za-z]{36}"),
    "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "password or secret": re.compile(r"(?i)(password|passwd|client_secret|refresh_token|access_token)\W{0,3}[:=]"),
}


def parse(document: dict[str, Any]) -> tuple[pipeline_spec_pb2.PipelineJob, pipeline_spec_pb2.PipelineSpec]:
    job = json_format.ParseDict(document, pipeline_spec_pb2.PipelineJob())
    spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), pipeline_spec_pb2.PipelineSpec())
    return job, spec


def container_components(env: str) -> set[str]:
    """Every step runs in a container: the local pipeline's steps, the drift check included iff the
    curated schema sets drift thresholds (tests/pipeline/expected.py)."""
    return expected_steps(vertex_config(env))


def executor_of(spec: pipeline_spec_pb2.PipelineSpec, component: str) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    deployment = json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec), pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    return deployment.executors[spec.components[component].executor_label]


def task_parameter(spec: pipeline_spec_pb2.PipelineSpec, task: str, name: str) -> str:
    # Schema 2.0.0 (TFX's default) carries constants in the `constantValue` field.
    return spec.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant_value.string_value


def beam_args(container: Any) -> list[str]:
    """What follows the executor's own arguments (`--json_serialized_invocation_args {{$}}`)."""
    args = list(container.args)
    return args[args.index("{{$}}") + 1 :]


@pytest.fixture(scope="module")
def specs(spec_documents: dict[str, dict[str, Any]]) -> dict[str, pipeline_spec_pb2.PipelineSpec]:
    return {env: parse(document)[1] for env, document in spec_documents.items()}


def test_compiling_needs_no_network_and_no_credentials(compiled_specs: dict[str, Path], offline_attempts) -> None:
    assert set(compiled_specs) == set(ENVIRONMENTS)
    assert offline_attempts.attempts == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_spec_parses_and_keeps_the_local_component_ids(env: str, spec_documents, specs) -> None:
    job, spec = parse(spec_documents[env])
    assert spec.pipeline_info.name == vertex_config(env).pipeline_name
    assert set(spec.root.dag.tasks) == container_components(env)
    assert job.runtime_config.gcs_output_directory == vertex_config(env).runner.pipeline_root


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_executor_runs_the_given_image(env: str, specs) -> None:
    spec = specs[env]
    components = container_components(env)
    images = {component: executor_of(spec, component).container.image for component in components}
    assert images == dict.fromkeys(components, TEST_IMAGE)
    # No resolver task: the compiler's only resolver queries look at every artifact of the project.
    assert [name for name, executor in spec.deployment_spec["executors"].items() if "container" not in executor] == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_dataflow_args_are_set_on_exactly_the_beam_components(env: str, specs) -> None:
    spec = specs[env]
    runner = vertex_config(env).runner
    for component in container_components(env):
        args = beam_args(executor_of(spec, component).container)
        if component not in BEAM_COMPONENTS:
            assert args == [], component
            continue
        assert args[0] == "--runner=DataflowRunner", component
        assert f"--project={runner.project}" in args
        assert f"--region={runner.region}" in args
        assert f"--sdk_container_image={TEST_IMAGE}" in args
        assert f"--service_account_email={runner.dataflow.service_account}" in args
        assert f"--temp_location={runner.pipeline_root}/dataflow/tmp" in args
        assert f"--max_num_workers={runner.dataflow.max_workers}" in args
        assert "--no_use_public_ips" in args
        assert [arg for arg in args if arg.startswith("--labels=")] == [
            f"--labels={key}={value}" for key, value in sorted(runner.labels.items())
        ]
    # CsvExampleGen's driver (input fingerprinting before the cache check) gets the same args.
    example_gen = executor_of(spec, tfx_pipeline.EXAMPLE_GEN).container
    driver_args = list(example_gen.lifecycle.pre_cache_check.args)
    assert driver_args[driver_args.index("{{$}}") + 1 :] == beam_args(example_gen)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_trainer_starts_a_vertex_training_job_with_the_configured_machine(env: str, specs) -> None:
    spec = specs[env]
    runner = vertex_config(env).runner
    container = executor_of(spec, tfx_pipeline.TRAINER).container
    assert "google_cloud_ai_platform.trainer.executor" in list(container.args)[1]
    custom_config = json.loads(task_parameter(spec, tfx_pipeline.TRAINER, "custom_config"))
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == runner.region
    training = custom_config[TRAINING_ARGS]
    assert training["project"] == runner.project
    assert training["labels"]["pipeline"] == vertex_config(env).pipeline_name
    assert training["job_spec"]["service_account"] == runner.service_account
    (pool,) = training["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {"machine_type": runner.training.machine_type}
    assert pool["replica_count"] == 1
    assert pool["container_spec"] == {
        "image_uri": TEST_IMAGE,
        "env": [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}],
    }
    # The local Trainer's settings are kept.
    assert custom_config["hyperparameters"]["hidden_units"] == vertex_config(env).training.hidden_units
    assert custom_config["source_fingerprint"] == tfx_pipeline.trainer_fingerprint(vertex_config(env).fast_paths)


def test_accelerator_reaches_the_training_job(tmp_path: Path) -> None:
    settings = yaml.safe_load(vertex_config_path("prod").read_text())
    settings["runner"]["training"] = {
        "machine_type": "g2-standard-8",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1,
    }
    config_file = tmp_path / "vertex-gpu.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    output = tmp_path / "gpu.json"

    status = cli.main(["compile", "--config", str(config_file), "--image", TEST_IMAGE, "--output", str(output)])

    assert status == errors.EXIT_OK
    _, spec = parse(json.loads(output.read_text()))
    training = json.loads(task_parameter(spec, tfx_pipeline.TRAINER, "custom_config"))[TRAINING_ARGS]
    (pool,) = training["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {
        "machine_type": "g2-standard-8",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1,
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_caching_follows_the_config(env: str, specs) -> None:
    spec = specs[env]
    enabled = {task: spec.root.dag.tasks[task].caching_options.enable_cache for task in container_components(env)}
    assert set(enabled.values()) == {vertex_config(env).runner.enable_cache}


def test_dev_caches_and_prod_does_not() -> None:
    assert (vertex_config("dev").runner.enable_cache, vertex_config("prod").runner.enable_cache) == (True, False)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_baseline_is_this_pipelines_latest_registered_model(env: str, specs) -> None:
    """BaselineModel reads this pipeline's registry model, leaves out the Trainer's model, and feeds
    the Evaluator, whose executor leaves out its "none found" marker."""
    spec = specs[env]
    config = vertex_config(env)
    source = json.loads(task_parameter(spec, tfx_pipeline.BASELINE_RESOLVER, "source"))
    assert source == {
        "kind": "model_registry",
        "project": config.runner.project,
        "region": config.runner.region,
        "model_id": config.registry.model_id,
        "pipeline_name": config.pipeline_name,
        "registration_task": tfx_pipeline.REGISTRATION,
    }
    baseline_task = spec.root.dag.tasks[tfx_pipeline.BASELINE_RESOLVER]
    assert baseline_task.inputs.artifacts["candidate"].task_output_artifact.producer_task == tfx_pipeline.TRAINER
    assert "components.baseline.executor.Executor" in list(
        executor_of(spec, tfx_pipeline.BASELINE_RESOLVER).container.args
    )
    baseline = spec.root.dag.tasks[tfx_pipeline.EVALUATOR].inputs.artifacts["baseline_model"]
    assert baseline.task_output_artifact.producer_task == tfx_pipeline.BASELINE_RESOLVER
    assert baseline.task_output_artifact.output_artifact_key == "baseline_model"
    evaluator_args = list(executor_of(spec, tfx_pipeline.EVALUATOR).container.args)
    assert "components.baseline.evaluator.Executor" in evaluator_args
    # The change threshold of the one gated metric still compares with the baseline.
    eval_config = json.loads(task_parameter(spec, tfx_pipeline.EVALUATOR, "eval_config"))
    metrics = [metric for metrics_spec in eval_config["metrics_specs"] for metric in metrics_spec["metrics"]]
    (threshold,) = [threshold for metric in metrics for threshold in metric.get("per_slice_thresholds", [])]
    blessing = config.evaluation.blessing
    if blessing.max_drop is None:
        assert "change_threshold" not in threshold["threshold"]
    else:
        allowed = -blessing.max_drop if blessing.higher_is_better else blessing.max_drop
        assert threshold["threshold"]["change_threshold"]["absolute"] == pytest.approx(allowed)


def test_vertex_without_a_registry_has_no_baseline_source() -> None:
    """Nothing is registered without a `registry` section: BaselineModel then finds no baseline."""
    config = vertex_config("dev").model_copy(update={"registry": None})
    assert isinstance(tfx_pipeline.baseline_source(config), NoSource)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pusher_writes_under_the_pipeline_root(env: str, specs) -> None:
    destination = json.loads(task_parameter(specs[env], tfx_pipeline.PUSHER, "push_destination"))
    config = vertex_config(env)
    expected = f"{config.runner.pipeline_root}/serving_model/{config.pipeline_name}"
    assert destination["filesystem"]["base_directory"] == expected


def test_transform_fingerprint_is_the_current_source() -> None:
    config = vertex_config("dev")
    config = config.model_copy(update={"runner": config.runner.model_copy(update={"image": TEST_IMAGE})})
    pipeline = tfx_pipeline.create_pipeline(config)
    transform = next(c for c in pipeline.components if c.id == tfx_pipeline.TRANSFORM)
    expected = tfx_pipeline.transform_fingerprint()
    assert json.loads(transform.exec_properties["custom_config"]) == {"source_fingerprint": expected}
    # Vertex AI keeps ML Metadata; Beam args live on the Beam components only.
    assert pipeline.metadata_connection_config is None
    assert pipeline.beam_pipeline_args == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_spec_holds_no_secret_looking_strings(env: str, compiled_specs: dict[str, Path]) -> None:
    text = compiled_specs[env].read_text()
    found = {name: pattern.findall(text) for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)}
    assert found == {}


def test_secret_patterns_catch_planted_secrets() -> None:
    planted = [
        '"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE"',
        "key=AIza" + "A" * 35,
        "Authorization: Bearer ya29.a0AfH6SMC",
        "ghp_" + "a" * 36,
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "--db_password=hunter2",
    ]
    for text in planted:
        assert any(pattern.search(text) for pattern in SECRET_PATTERNS.values()), text


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline:latest", "is given by tag ':latest'"),
        ("us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline:v1", "is given by tag ':v1'"),
        ("us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline@sha256:abc", "has no valid sha256 digest"),
    ],
)
def test_image_without_digest_is_refused(image: str, message: str, tmp_path: Path, capsys) -> None:
    output = tmp_path / "pipeline.json"
    status = cli.main(["compile", "--env", "dev", "--image", image, "--output", str(output)])
    err = capsys.readouterr().err.strip()
    assert status == errors.EXIT_BAD_INPUT
    assert len(err.splitlines()) == 1
    assert err.startswith("error: --image: ") and message in err
    assert not output.exists()


def test_missing_image_is_refused(tmp_path: Path, capsys) -> None:
    status = cli.main(["compile", "--env", "prod", "--output", str(tmp_path / "p.json")])
    assert status == errors.EXIT_BAD_INPUT
    assert "no pipeline image: pass --image" in capsys.readouterr().err
