"""The Dataflow arguments are valid Beam flags carrying the configured values."""

from __future__ import annotations

from typing import Any

import pytest
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    WorkerOptions,
)

from pipeline.config import BASE_CONFIG, VertexRunnerConfig, load_config, vertex_config_path
from pipeline.dataflow import dataflow_args
from tools.refresh_golden import TEST_IMAGE


def runner(env: str = "dev", **overrides: Any) -> VertexRunnerConfig:
    config = load_config([BASE_CONFIG, vertex_config_path(env)], {"runner.image": TEST_IMAGE, **overrides})
    assert isinstance(config.runner, VertexRunnerConfig)
    return config.runner


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_beam_reads_every_configured_value(env: str) -> None:
    settings = runner(env)
    options = PipelineOptions(dataflow_args(settings))
    cloud = options.view_as(GoogleCloudOptions)
    worker = options.view_as(WorkerOptions)
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region) == (settings.project, settings.region)
    assert cloud.temp_location == f"{settings.pipeline_root}/dataflow/tmp"
    assert cloud.staging_location == f"{settings.pipeline_root}/dataflow/staging"
    assert cloud.service_account_email == settings.dataflow.service_account
    assert cloud.labels == [f"{key}={value}" for key, value in sorted(settings.labels.items())]
    assert worker.sdk_container_image == TEST_IMAGE
    assert worker.max_num_workers == settings.dataflow.max_workers
    assert worker.machine_type == settings.dataflow.machine_type
    assert worker.disk_size_gb == settings.dataflow.disk_size_gb
    assert worker.subnetwork == settings.dataflow.subnetwork
    assert worker.use_public_ips is False
    # Nothing Beam does not know (Beam only logs a warning for a misspelt flag).
    assert unknown_flags(options) == set()


def unknown_flags(options: PipelineOptions) -> set[str]:
    return set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())


def test_unknown_flags_are_detected() -> None:
    assert unknown_flags(PipelineOptions(["--runner=DataflowRunner", "--machine_typo=n1"])) == {"machine_typo"}


def test_explicit_locations_and_public_ips() -> None:
    settings = runner(
        **{
            "runner.dataflow.temp_location": "gs://scratch/tmp",
            "runner.dataflow.staging_location": "gs://scratch/staging",
            "runner.dataflow.use_public_ips": True,
            "runner.dataflow.subnetwork": None,
        }
    )
    args = dataflow_args(settings)
    options = PipelineOptions(args)
    assert options.view_as(GoogleCloudOptions).temp_location == "gs://scratch/tmp"
    assert options.view_as(GoogleCloudOptions).staging_location == "gs://scratch/staging"
    assert options.view_as(WorkerOptions).use_public_ips is True
    assert not any(arg.startswith("--subnetwork") for arg in args)


def test_pipeline_root_with_trailing_slash_gives_clean_locations() -> None:
    settings = runner(**{"runner.pipeline_root": "gs://bucket/root/"})
    assert "--temp_location=gs://bucket/root/dataflow/tmp" in dataflow_args(settings)


def test_no_image_no_args() -> None:
    settings = runner(**{"runner.image": None})
    with pytest.raises(ValueError, match="runner.image is not set"):
        dataflow_args(settings)
