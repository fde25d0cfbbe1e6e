"""The Vertex AI Training job settings handed to TFX's Vertex Trainer, from the committed
configs/vertex-dev.yaml."""

from __future__ import annotations

from tfx import v1 as tfx

from pipeline.config import BASE_CONFIG, VertexRunnerConfig, load_config, vertex_config_path
from pipeline.training import TRAINING_ENV, vertex_trainer_config
from tools.refresh_golden import TEST_IMAGE

gcp = tfx.extensions.google_cloud_ai_platform
PIPELINE = load_config([BASE_CONFIG, vertex_config_path("dev")]).pipeline_name


def runner(**overrides: object) -> VertexRunnerConfig:
    config = load_config([BASE_CONFIG, vertex_config_path("dev")], {"runner.image": TEST_IMAGE, **overrides})
    assert isinstance(config.runner, VertexRunnerConfig)
    return config.runner


def test_cpu_job_has_no_accelerator_fields() -> None:
    settings = runner()
    config = vertex_trainer_config(settings, PIPELINE)
    assert config[gcp.ENABLE_VERTEX_KEY] is True
    assert config[gcp.VERTEX_REGION_KEY] == settings.region
    (pool,) = config[gcp.TRAINING_ARGS_KEY]["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {"machine_type": settings.training.machine_type}


def test_gpu_job_carries_type_and_count() -> None:
    settings = runner(
        **{
            "runner.training": {
                "machine_type": "a2-highgpu-2g",
                "accelerator_type": "NVIDIA_TESLA_A100",
                "accelerator_count": 2,
            }
        }
    )
    (pool,) = vertex_trainer_config(settings, PIPELINE)[gcp.TRAINING_ARGS_KEY]["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {
        "machine_type": "a2-highgpu-2g",
        "accelerator_type": "NVIDIA_TESLA_A100",
        "accelerator_count": 2,
    }


def test_job_runs_the_image_as_the_pipeline_account_with_the_keras_choice() -> None:
    settings = runner()
    args = vertex_trainer_config(settings, PIPELINE)[gcp.TRAINING_ARGS_KEY]
    assert args["project"] == settings.project
    spec = args["job_spec"]
    assert spec["service_account"] == settings.service_account
    assert "network" not in spec  # no VPC peering configured
    container = spec["worker_pool_specs"][0]["container_spec"]
    assert container["image_uri"] == TEST_IMAGE
    assert container["env"] == [{"name": "TF_USE_LEGACY_KERAS", "value": "1"}]
    assert TRAINING_ENV == {"TF_USE_LEGACY_KERAS": "1"}


def test_job_carries_the_run_labels_a_name_and_the_vpc_peering() -> None:
    peered = runner(**{"runner.network": "projects/123456789012/global/networks/tfx"})
    args = vertex_trainer_config(peered, PIPELINE)[gcp.TRAINING_ARGS_KEY]
    assert args["display_name"] == f"{PIPELINE}-trainer"
    # The environment's labels (app and env in vertex-dev.yaml), the pipeline and the image.
    digest = TEST_IMAGE.rsplit("@sha256:", 1)[1][:12]
    assert args["labels"] == {**peered.labels, "pipeline": PIPELINE, "image_digest": digest}
    assert args["job_spec"]["network"] == "projects/123456789012/global/networks/tfx"
