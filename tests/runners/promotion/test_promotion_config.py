"""The `registry` and `endpoint` config sections: one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config as config_module
from pipeline import deploy_config
from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, load_config, vertex_config_path
from pipeline.pipeline import registry_settings
from runners.promotion.smoke import plan_requests


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_vertex_configs_name_a_registry_model_and_an_endpoint(env: str) -> None:
    config = load_config([BASE_CONFIG, vertex_config_path(env)])
    assert config.registry is not None and config.endpoint is not None
    assert config.registry.model_id and config.endpoint.endpoint_id  # the example's: tests/example/test_config.py
    assert "/dockerhub/tensorflow/serving@sha256:" in config.registry.serving_image  # tests/components: more
    assert config.endpoint.smoke_test.instances_path.is_file()
    settings = registry_settings(config)
    assert settings is not None
    assert (settings.project, settings.pipeline_root) == (config.runner.project, config.runner.pipeline_root)


def test_local_runs_only_smoke_test() -> None:
    assert registry_settings(load_config()) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry: {model_id: Plans}\n", "env.yaml: registry.model_id: expected a model ID: a letter"),
        ("endpoint: {endpoint_id: '0123'}\n", "env.yaml: endpoint.endpoint_id: expected an endpoint ID"),
        ("endpoint: {endpoint_id: ab_c}\n", "env.yaml: endpoint.endpoint_id: expected an endpoint ID"),
        ("endpoint: {min_replicas: 3, max_replicas: 2}\n", "env.yaml: endpoint: max_replicas (2) is below min"),
        ("endpoint: {machine_type: N1}\n", "env.yaml: endpoint.machine_type: expected a machine type such as"),
        ("endpoint: {smoke_test: {max_error_rate: 2}}\n", "endpoint.smoke_test.max_error_rate: input should be less"),
        (
            "endpoint: {smoke_test: {retries: 2}}\n",
            "unknown key 'endpoint.smoke_test.retries' (allowed here: instances_file, min_predictions, "
            "max_predictions, max_miss_probability, max_error_rate, warmup_answers, latency_percentile, "
            "max_latency_ms)",
        ),
        # The fixed count it replaces: the count now follows from the canary's share.
        ("endpoint: {smoke_test: {predictions: 50}}\n", "unknown key 'endpoint.smoke_test.predictions'"),
        (
            "endpoint: {smoke_test: {max_miss_probability: 0}}\n",
            "env.yaml: endpoint.smoke_test.max_miss_probability: input should be greater than 0 (got 0)",
        ),
        (
            "endpoint: {smoke_test: {max_miss_probability: 0.5}}\n",
            "endpoint.smoke_test.max_miss_probability: input should be less than or equal to 0.1 (got 0.5)",
        ),
        (
            "endpoint: {smoke_test: {min_predictions: 100, max_predictions: 60}}\n",
            "env.yaml: endpoint.smoke_test: max_predictions (60) is below min_predictions (100)",
        ),
        ("endpoint: {smoke_test: {max_predictions: 20000}}\n", "max_predictions: input should be less than or equal"),
        ("endpoint: {smoke_test: {min_predictions: 0}}\n", "min_predictions: input should be greater than or equal"),
        ("endpoint: {smoke_test: {warmup_answers: -1}}\n", "warmup_answers: input should be greater than or equal"),
        ("endpoint: {smoke_test: {warmup_answers: 11}}\n", "warmup_answers: input should be less than or equal to 10"),
        ("endpoint: {smoke_test: {latency_percentile: 40}}\n", "latency_percentile: input should be greater than or"),
        ("endpoint: {smoke_test: {latency_percentile: 101}}\n", "latency_percentile: input should be less than or"),
        ("endpoint: {smoke_test: {max_latency_ms: 0}}\n", "max_latency_ms: input should be greater than or equal"),
        ("endpoint: {smoke_test: {warmup_answers: two}}\n", "warmup_answers: input should be a valid integer"),
        ("endpoint: {smoke_test: {min_predictions: true}}\n", "min_predictions: input should be a valid integer"),
        ("endpoint: {smoke_test: {latency_percentile: '95'}}\n", "latency_percentile: input should be a valid number"),
    ],
)
def test_bad_sections_give_one_line(tmp_path: Path, text: str, expected: str) -> None:
    files = [BASE_CONFIG, vertex_config_path("dev"), write(tmp_path, text)]
    with pytest.raises(ConfigError) as error:
        load_config(files)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_canary_share_fits_the_smoke_test_of_the_vertex_configs(env: str) -> None:
    config = load_config([BASE_CONFIG, vertex_config_path(env)])
    assert config.endpoint is not None
    smoke_test = config.endpoint.smoke_test
    counts = {percent: plan_requests(smoke_test, "7", percent).requests for percent in range(1, 101)}
    assert (counts[1], counts[5], counts[10], counts[50]) == (920, 181, 89, 50)  # docs/promotion.md


def test_a_numeric_endpoint_id_may_be_written_as_a_number(tmp_path: Path) -> None:
    config = load_config([BASE_CONFIG, vertex_config_path("dev"), write(tmp_path, "endpoint: {endpoint_id: 1234}\n")])
    assert config.endpoint is not None and config.endpoint.endpoint_id == "1234"


def test_a_local_config_may_not_carry_the_sections(tmp_path: Path) -> None:
    image = "r.dev/x/y@sha256:" + "a" * 64
    env = write(
        tmp_path,
        f"registry: {{model_id: my-model, display_name: my-model, serving_image: {image}, models_bucket: gs://mdl}}\n",
    )
    with pytest.raises(ConfigError) as error:
        load_config([BASE_CONFIG, LOCAL_CONFIG, env])
    assert str(error.value) == f"{env}: registry: only runner 'vertex' uses it (runner.kind is 'local')"


def test_patterns_match_the_ones_config_explains() -> None:
    # Same strings, so PATTERN_HINTS gives the readable "expected ..." for these fields too.
    assert deploy_config.MACHINE_TYPE == config_module.MACHINE_TYPE
    assert deploy_config.SERVICE_ACCOUNT == config_module.SERVICE_ACCOUNT
