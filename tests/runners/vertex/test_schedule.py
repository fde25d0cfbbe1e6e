"""`python -m pipeline schedule` against the fake Vertex AI server, through the real SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import vertex_config_path
from runners import cli, errors
from tools.standins.fixtures import VertexStandins

PROD_ACCOUNT = "tfx-pipelines@my-tfx-prod.iam.gserviceaccount.com"


@pytest.fixture
def standins(vertex_env: VertexStandins) -> VertexStandins:
    vertex_env.create_bucket("my-tfx-prod-pipelines")
    return vertex_env


def schedule(env: VertexStandins, spec: Path, *where: str) -> int:
    return cli.main(["schedule", *(where or ("--env", "prod")), "--spec", str(spec), "--api-endpoint", env.vertex_url])


def test_without_cron_nothing_is_scheduled(standins: VertexStandins, compiled_specs: dict[str, Path], capsys) -> None:
    standins.create_bucket("my-tfx-dev-pipelines")
    assert schedule(standins, compiled_specs["dev"], "--env", "dev") == errors.EXIT_OK
    assert "No schedule: runner.schedule is not set" in capsys.readouterr().out
    assert standins.server.find_requests(path_regex=r"/schedules") == []


def test_creates_the_schedule_from_the_config(
    standins: VertexStandins, compiled_specs: dict[str, Path], capsys
) -> None:
    assert schedule(standins, compiled_specs["prod"]) == errors.EXIT_OK

    (stored,) = standins.server.pipelines.schedules()
    assert stored.request["displayName"] == "taxi-tips-vertex-prod"
    assert stored.cron == "TZ=Etc/UTC 0 3 * * 1"
    assert stored.max_concurrent_run_count == 1
    template = stored.pipeline_job
    assert template["serviceAccount"] == PROD_ACCOUNT
    assert template["labels"]["config"] == "vertex-prod" and template["labels"]["env"] == "prod"
    assert template["runtimeConfig"]["gcsOutputDirectory"] == "gs://my-tfx-prod-pipelines/taxi-tips"
    assert "Schedule created:" in capsys.readouterr().out

    run = standins.server.trigger_schedule(stored.name)
    assert run.service_account == PROD_ACCOUNT
    assert run.enable_caching is False


def test_second_apply_updates_the_same_schedule(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    assert schedule(standins, compiled_specs["prod"]) == errors.EXIT_OK
    settings = yaml.safe_load(vertex_config_path("prod").read_text())
    settings["runner"]["schedule"] = {"cron": "TZ=Europe/Berlin 30 4 * * *", "max_concurrent_runs": 2}
    changed = tmp_path / "vertex-prod.yaml"  # same name: same schedule
    changed.write_text(yaml.safe_dump(settings))

    assert schedule(standins, compiled_specs["prod"], "--config", str(changed)) == errors.EXIT_OK

    (stored,) = standins.server.pipelines.schedules()
    assert (stored.cron, stored.max_concurrent_run_count) == ("TZ=Europe/Berlin 30 4 * * *", 2)
    mask, body = stored.updates[-1]
    assert mask == ("cron", "maxConcurrentRunCount", "createPipelineJobRequest")
    assert body["createPipelineJobRequest"]["pipelineJob"]["serviceAccount"] == PROD_ACCOUNT
    assert "Schedule updated:" in capsys.readouterr().out
