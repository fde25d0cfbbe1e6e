"""`python -m pipeline submit` against the fake Vertex AI server, through the real SDK; what the run
request holds comes from configs/vertex-dev.yaml and vertex-prod.yaml."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import vertex_config_path
from runners import cli, errors
from runners.vertex.labels import git_commit
from tests.pipeline.expected import vertex_config
from tools.standins.fixtures import DEFAULT_PROJECT_NUMBER, VertexStandins

DEV, PROD = vertex_config("dev"), vertex_config("prod")
DEV_BUCKET = DEV.runner.pipeline_root.removeprefix("gs://").split("/")[0]
PROD_BUCKET = PROD.runner.pipeline_root.removeprefix("gs://").split("/")[0]
CONSOLE = f"https://console.cloud.google.com/vertex-ai/locations/{DEV.runner.region}/pipelines/runs"
JOB_GET = r"/pipelineJobs/[^/:]+$"
CREATE = r"/pipelineJobs$"
FAST = ["--poll-interval", "0.01"]


@pytest.fixture
def standins(vertex_env: VertexStandins) -> VertexStandins:
    # A missing pipeline-root bucket makes submit() call Resource Manager (60 s offline).
    vertex_env.create_bucket(DEV_BUCKET)
    vertex_env.create_bucket(PROD_BUCKET)
    return vertex_env


@pytest.fixture
def restore_aiplatform() -> Iterator[None]:
    from google.cloud.aiplatform import initializer

    saved = dict(vars(initializer.global_config))
    yield
    vars(initializer.global_config).clear()
    vars(initializer.global_config).update(saved)


def submit(env: VertexStandins | None, spec: Path, *args: str, where: tuple[str, ...] = ("--env", "dev")) -> int:
    endpoint = ["--api-endpoint", env.vertex_url] if env else []
    return cli.main(["submit", *where, "--spec", str(spec), *endpoint, *args])


def config_variant(tmp_path: Path, env: str, name: str, change: dict[str, Any]) -> Path:
    settings = yaml.safe_load(vertex_config_path(env).read_text())
    settings["runner"].update(change)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def test_request_carries_spec_runtime_config_identity_network_labels_and_caching(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    network = f"projects/{DEFAULT_PROJECT_NUMBER}/global/networks/ml-vpc"
    config = config_variant(tmp_path, "dev", "vertex-dev-vpc", {"network": network})

    status = submit(standins, compiled_specs["dev"], "--job-id", "first-run", where=("--config", str(config)))

    assert status == errors.EXIT_OK
    sent = standins.server.job("first-run")
    compiled = json.loads(compiled_specs["dev"].read_text())["pipelineSpec"]
    assert sent.pipeline_spec["deploymentSpec"] == compiled["deploymentSpec"]
    assert sent.pipeline_spec["pipelineInfo"] == {"name": DEV.pipeline_name}
    assert sent.gcs_output_directory == DEV.runner.root
    assert sent.service_account == DEV.runner.service_account
    assert sent.network == network
    assert sent.display_name == f"{DEV.pipeline_name}-vertex-dev-vpc"
    assert sent.enable_caching is DEV.runner.enable_cache
    labels = sent.labels
    assert {key: labels[key] for key in [*DEV.runner.labels, "config", "image_digest"]} == {
        **DEV.runner.labels,
        "config": "vertex-dev-vpc",
        "image_digest": "0123456789ab",
    }
    if git_commit() is None:  # not a git checkout (a copy of the repository), no $GITHUB_SHA
        assert "git_commit" not in labels
    else:
        assert re.fullmatch(r"[0-9a-f]{7,12}(-dirty)?", labels["git_commit"])
    out, err = capsys.readouterr()
    assert f"console: {CONSOLE}/first-run" in out
    # The template's serving image digest is a placeholder until the user sets it.
    assert "warning: registry.serving_image ends in the placeholder digest" in out
    assert err == ""


def test_caching_flag_follows_the_config(standins: VertexStandins, compiled_specs: dict[str, Path]) -> None:
    assert submit(standins, compiled_specs["prod"], "--job-id", "prod-run", where=("--env", "prod")) == errors.EXIT_OK
    sent = standins.server.job("prod-run")
    assert sent.enable_caching is PROD.runner.enable_cache
    assert sent.network == PROD.runner.network
    assert sent.labels["config"] == "vertex-prod"


def test_wait_follows_a_successful_run_and_writes_the_summary(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    evaluator = {
        "taskName": "Evaluator",
        "state": "SUCCEEDED",
        "outputs": {
            "evaluation": {"artifacts": [{"uri": "gs://x/Evaluator/evaluation", "metadata": {"auc": 0.9412}}]},
            "blessing": {"artifacts": [{"uri": "gs://x/Evaluator/blessing", "metadata": {"blessed": 1}}]},
        },
    }
    standins.server.script_job(
        ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"], task_details=[evaluator], job_id="ok-run"
    )
    summary = tmp_path / "step-summary.md"

    status = submit(
        standins, compiled_specs["dev"], "--job-id", "ok-run", "--wait", *FAST, "--summary-file", str(summary)
    )

    assert status == errors.EXIT_OK
    out = capsys.readouterr().out
    states = re.findall(r"^\s+\d+:\d\d:\d\d\s+(\w+)$", out, re.MULTILINE)
    assert states == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert "Pipeline run ok-run SUCCEEDED" in out
    text = summary.read_text()
    assert "### Vertex AI pipeline run: SUCCEEDED" in text
    assert f"[ok-run]({CONSOLE}/ok-run" in text
    assert "| Model | blessed |" in text
    assert "| auc | 0.9412 |" in text
    assert "sha256:0123456789abcdef" in text


def test_wait_on_a_failed_run_exits_non_zero_with_the_error(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    standins.server.script_job(["RUNNING", "FAILED"], error="Evaluator: AUC 0.71 below 0.9", job_id="bad-run")
    summary = tmp_path / "summary.md"

    status = submit(
        standins, compiled_specs["dev"], "--job-id", "bad-run", "--wait", *FAST, "--summary-file", str(summary)
    )

    assert status == errors.EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: pipeline run bad-run FAILED: Evaluator: AUC 0.71 below 0.9")
    assert "failed tasks:" in err
    assert "**Error:** Evaluator: AUC 0.71 below 0.9" in summary.read_text()


def test_cancelled_run_is_a_failure(standins: VertexStandins, compiled_specs: dict[str, Path], capsys) -> None:
    standins.server.script_job(["RUNNING", "CANCELLING", "CANCELLED"], job_id="cancelled-run")
    status = submit(standins, compiled_specs["dev"], "--job-id", "cancelled-run", "--wait", *FAST)
    assert status == errors.EXIT_FAILED
    assert "cancelled-run CANCELLED: The pipeline job was cancelled." in capsys.readouterr().err


def test_throttling_and_unavailability_are_retried(
    standins: VertexStandins, compiled_specs: dict[str, Path], capsys
) -> None:
    server = standins.server
    server.fail_next("POST", CREATE, 429)
    server.fail_next("POST", CREATE, 503)
    server.fail_next("GET", JOB_GET, 503)

    status = submit(standins, compiled_specs["dev"], "--job-id", "retried-run", "--wait", *FAST)

    assert status == errors.EXIT_OK
    assert [r.status for r in server.find_requests("POST", CREATE)] == [429, 503, 200]
    assert [r.status for r in server.find_requests("GET", JOB_GET)][:2] == [503, 200]
    assert server.job("retried-run").state == "PIPELINE_STATE_SUCCEEDED"
    out = capsys.readouterr().out
    assert "429 Too Many Requests; retrying" in out and "503 Service Unavailable; retrying" in out


def test_job_created_by_a_failed_attempt_is_picked_up(
    standins: VertexStandins, compiled_specs: dict[str, Path]
) -> None:
    # The first create reaches the server but its answer is lost (503): the retry gets 409.
    assert submit(standins, compiled_specs["dev"], "--job-id", "lost-answer") == errors.EXIT_OK
    standins.server.fail_next("POST", CREATE, 503)

    status = submit(standins, compiled_specs["dev"], "--job-id", "lost-answer", "--wait", *FAST)

    assert status == errors.EXIT_OK
    assert [r.status for r in standins.server.find_requests("POST", CREATE)] == [200, 503, 409]


def test_existing_job_id_is_an_error(standins: VertexStandins, compiled_specs: dict[str, Path], capsys) -> None:
    assert submit(standins, compiled_specs["dev"], "--job-id", "taken") == errors.EXIT_OK
    assert submit(standins, compiled_specs["dev"], "--job-id", "taken") == errors.EXIT_FAILED
    assert "error: Vertex AI refused the request: 409" in capsys.readouterr().err


def test_timeout_stops_watching_and_leaves_the_job_running(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    standins.server.script_job(["PENDING", "RUNNING"], job_id="long-run")
    summary = tmp_path / "summary.md"

    status = submit(
        standins, compiled_specs["dev"], "--job-id", "long-run", "--wait", "--timeout", "0.3", *FAST,
        "--summary-file", str(summary),
    )  # fmt: skip

    assert status == errors.EXIT_TIMEOUT
    err = capsys.readouterr().err.strip()
    assert err == "error: --timeout 0.3 s reached while the run is RUNNING; job left running: long-run"
    assert standins.server.job("long-run").state == "PIPELINE_STATE_RUNNING"
    assert standins.server.find_requests("POST", r":cancel$") == []
    assert "RUNNING (job left running; --timeout 0.3 s reached)" in summary.read_text()


def test_spec_compiled_for_another_environment_is_refused(
    standins: VertexStandins, compiled_specs: dict[str, Path], capsys
) -> None:
    status = submit(standins, compiled_specs["dev"], where=("--env", "prod"))
    assert status == errors.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"was compiled for pipeline root {DEV.runner.root}" in err
    assert standins.server.requests == []


def test_missing_spec_says_to_compile(tmp_path: Path, capsys) -> None:
    status = cli.main(["submit", "--env", "dev", "--spec", str(tmp_path / "nope.json")])
    assert status == errors.EXIT_BAD_INPUT
    assert "cannot read the compiled spec" in capsys.readouterr().err


def test_timeout_needs_wait(compiled_specs: dict[str, Path], capsys) -> None:
    status = cli.main(["submit", "--env", "dev", "--spec", str(compiled_specs["dev"]), "--timeout", "5"])
    assert status == errors.EXIT_BAD_INPUT
    assert capsys.readouterr().err == "error: --timeout needs --wait\n"


def test_missing_credentials_give_one_line_on_how_to_log_in(
    compiled_specs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_aiplatform, capsys
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))

    status = submit(None, compiled_specs["dev"])

    assert status == errors.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "gcloud auth application-default login" in err and "Workload Identity Federation" in err


def test_without_wait_the_summary_records_the_submission(
    standins: VertexStandins, compiled_specs: dict[str, Path], tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")

    status = submit(standins, compiled_specs["dev"], "--job-id", "fire-and-forget", "--summary-file", str(summary))

    assert status == errors.EXIT_OK
    assert standins.server.job("fire-and-forget").get_count == 0  # not followed
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, as GitHub expects
    assert "| State | PENDING (submitted; not followed) |" in text
