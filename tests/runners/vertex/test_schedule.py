"""`python -m pipeline schedule` against the fake Vertex AI server, through the real SDK; what the
schedule holds comes from configs/vertex-prod.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import vertex_config_path
from runners import cli, errors
from tests.pipeline.expected import vertex_config
from tools.standins.fixtures import VertexStandins

DEV, PROD = vertex_config("dev"), vertex_config("prod")


def bucket_of(root: str) -> str:
    return root.removeprefix("gs://").split("/")[0]


@pytest.fixture
def standins(vertex_env: VertexStandins) -> VertexStandins:
    vertex_env.create_bucket(bucket_of(PROD.runner.pipeline_root))
    return vertex_env


def schedule(env: VertexStandins, spec: Path, *where: str) -> int:
    return cli.main(["schedule", *(where or ("--env", "prod")), "--spec", str(spec), "--api-endpoint", env.vertex_url])


def test_without_cron_nothing_is_scheduled(standins: VertexStandins, compiled_specs: dict[str, Path], capsys) -> None:
    if DEV.runner.schedule is not None:
        pytest.skip("configs/vertex-dev.yaml sets a schedule")
    standins.create_bucket(bucket_of(DEV.runner.pipeline_root))
    assert schedule(standins, compiled_specs["dev"], "--env", "dev") == errors.EXIT_OK
    assert "No schedule: runner.schedule is not set" in capsys.readouterr().out
    assert standins.server.find_requests(path_regex=r"/schedules") == []


def test_creates_the_schedule_from_the_config(
    standins: VertexStandins, compiled_specs: dict[str, Path], capsys
) -> None:
    runner = PROD.runner
    assert runner.schedule is not None, "configs/vertex-prod.yaml schedules the production runs"
    assert schedule(standins, compiled_specs["prod"]) == errors.EXIT_OK

    (stored,) = standins.server.pipelines.schedules()
    assert stored.request["displayName"] == f"{PROD.pipeline_name}-vertex-prod"
    assert stored.cron == runner.schedule.cron
    assert stored.max_concurrent_run_count == runner.schedule.max_concurrent_runs
    template = stored.pipeline_job
    assert template["serviceAccount"] == runner.service_account
    assert template["labels"]["config"] == "vertex-prod"
    assert {key: template["labels"][key] for key in runner.labels} == runner.labels
    assert template["runtimeConfig"]["gcsOutputDirectory"] == runner.root
    assert "Schedule created:" in capsys.readouterr().out

    run = standins.server.trigger_schedule(stored.name)
    assert run.service_account == runner.service_account
    assert run.enable_caching is runner.enable_cache


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
    assert body["createPipelineJobRequest"]["pipelineJob"]["serviceAccount"] == PROD.runner.service_account
    assert "Schedule updated:" in capsys.readouterr().out
