"""promote.yaml's two jobs, their shell steps in order, with a stand-in `make` on PATH that records
its arguments: the plan job (no approval, read-only identity) hands `make promote` the request with
`--dry-run --plan-file`, shows the plan in the job summary and uploads the file; the apply job
(environment `production`, approved) downloads that file and hands it to `promote apply`. Between the
jobs the test does what upload-artifact and download-artifact do, with their `with:` settings.

The promotion itself (`make promote` against Vertex AI, the plan file, the refusals of `apply`) is
the promotion CLI's to test (tests/runners/promotion); here the question is what the workflow
hands it and what it does with the answers.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.workflows import REPO_ROOT, JobRun, action_name, jobs, load_workflow, run_steps, steps

PROMOTE = jobs(load_workflow(REPO_ROOT / ".github" / "workflows" / "promote.yaml"))
UPLOAD = next(step for step in steps(PROMOTE["plan"]) if action_name(step) == "actions/upload-artifact")
DOWNLOAD = next(step for step in steps(PROMOTE["apply"]) if action_name(step) == "actions/download-artifact")
# Each call on one line, arguments separated by '|'; exits 1 when FAKE_MAKE_FAIL is among them.
# ARGS is split into words as the Makefile's recipe line splits it. Like the promotion CLI,
# `--plan-file F` writes a plan to F, `apply --plan F` refuses (exit 2) without F, and
# `--summary-file F` appends a section to F.
FAKE_MAKE = """#!/usr/bin/env bash
printf '%s|' "$@" >> "$FAKE_MAKE_CALLS"; echo >> "$FAKE_MAKE_CALLS"
echo "fake make: $*"
for argument in "$@"; do
  if [[ -n "$FAKE_MAKE_FAIL" && "$argument" == *"$FAKE_MAKE_FAIL"* ]]; then echo "error: refused" >&2; exit 1; fi
done
for argument in "$@"; do
  if [[ "$argument" == ARGS=* ]]; then
    read -ra words <<< "${argument#ARGS=}"
    for index in "${!words[@]}"; do
      value="${words[$((index + 1))]}"
      case "${words[$index]}" in
        --plan-file) echo '{"format": "tfx-promotion-plan/1", "steps": ["resolved: v7"]}' > "$value" ;;
        --plan) [[ -f "$value" ]] || { echo "error: apply refused: cannot read the plan $value" >&2; exit 2; } ;;
        --summary-file) echo "### Smoke test (fake promotion CLI): passed" >> "$value" ;;
      esac
    done
  fi
done
"""


@dataclass
class Promotion:
    plan: JobRun
    apply: JobRun | None
    root: Path

    @property
    def summary(self) -> str:
        return (self.root / "summary.md").read_text()

    def calls(self) -> list[list[str]]:
        calls = self.root / "calls"
        return [line.rstrip("|").split("|") for line in calls.read_text().splitlines()] if calls.exists() else []

    def promote_calls(self) -> list[list[str]]:
        return [call for call in self.calls() if call[0] == "promote"]


def run_promotion(
    tmp_path: Path, inputs: dict[str, Any], ref: str = "refs/heads/main", fail: str = "", carry_artifact: bool = True
) -> Promotion:
    """The plan job, then (when it succeeded: `needs: plan`) the apply job, each in its own checkout."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "make"
    fake.write_text(FAKE_MAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_REF": ref,
        "FAKE_MAKE_CALLS": str(tmp_path / "calls"),
        "FAKE_MAKE_FAIL": fail,
    }
    contexts = {"inputs": inputs, "vars": {}}

    def run_job(job_id: str, workdir: Path) -> JobRun:
        workdir.mkdir(parents=True, exist_ok=True)
        summary = tmp_path / "summary.md"
        return run_steps(
            PROMOTE[job_id], workdir=workdir, environment=environment, contexts=contexts, summary_file=summary
        )

    plan_dir, apply_dir = tmp_path / "plan" / "repo", tmp_path / "apply" / "repo"
    plan = run_job("plan", plan_dir)
    if any(result.returncode != 0 for result in plan.results):
        return Promotion(plan, None, tmp_path)
    # upload-artifact (if-no-files-found: error), then download-artifact into the apply job's
    # workspace, where the file keeps its name.
    uploaded = plan_dir / UPLOAD["with"]["path"]
    assert UPLOAD["with"]["if-no-files-found"] == "error" and uploaded.is_file()
    assert DOWNLOAD["with"] == {"name": UPLOAD["with"]["name"]}
    apply_dir.mkdir(parents=True)
    if carry_artifact:
        shutil.copy(uploaded, apply_dir / uploaded.name)
    return Promotion(plan, run_job("apply", apply_dir), tmp_path)


def request(action: str, version_or_alias: str = "candidate", traffic: Any = 10, env: str = "prod") -> dict[str, Any]:
    return {"environment": env, "action": action, "version_or_alias": version_or_alias, "traffic_percent": traffic}


def test_a_canary_is_planned_then_the_plan_file_is_applied_and_both_land_in_the_summary(tmp_path: Path) -> None:
    promotion = run_promotion(tmp_path, request("canary"))

    assert [result.returncode for result in promotion.plan.results] == [0, 0, 0]
    assert promotion.apply is not None
    assert [result.returncode for result in promotion.apply.results] == [0, 0], promotion.apply.results[-1].output
    summary_file = tmp_path / "summary.md"
    assert promotion.calls() == [
        ["setup"],
        ["promote", "ENV=prod", "ARGS=canary --alias candidate --traffic 10 --dry-run --plan-file promotion-plan.json"],
        ["setup"],
        ["promote", "ENV=prod", f"ARGS=apply --plan promotion-plan.json --summary-file {summary_file}"],
    ]
    summary = promotion.summary
    assert "### Plan: `canary --alias candidate --traffic 10` in prod" in summary
    assert "fake make: promote ENV=prod ARGS=canary --alias candidate --traffic 10 --dry-run" in summary
    assert "Approving the apply job runs exactly this plan" in summary
    assert "### Result: apply the plan in prod (exit 0)" in summary
    # The smoke test's section comes from the promotion itself, between the plan and its output.
    assert summary.count("### Smoke test") == 1
    assert summary.index("### Plan") < summary.index("### Smoke test") < summary.index("### Result")


def test_the_apply_job_refuses_without_the_plan_file(tmp_path: Path) -> None:
    promotion = run_promotion(tmp_path, request("finish"), carry_artifact=False)

    assert promotion.apply is not None
    assert [(result.name, result.returncode) for result in promotion.apply.results][-1] == ("Apply", 2)
    assert "### Result: apply the plan in prod (exit 2)" in promotion.summary
    assert "apply refused: cannot read the plan promotion-plan.json" in promotion.summary


def test_a_failed_promotion_still_leaves_its_smoke_test_and_output_in_the_summary(tmp_path: Path) -> None:
    promotion = run_promotion(tmp_path, request("canary"), fail="apply --plan")

    assert promotion.apply is not None
    assert [(result.name, result.returncode) for result in promotion.apply.results][-1] == ("Apply", 1)
    assert "### Result: apply the plan in prod (exit 1)" in promotion.summary
    assert "error: refused" in promotion.summary


@pytest.mark.parametrize(
    ("inputs", "args"),
    [
        (request("canary", "7", 5, env="dev"), "canary --version 7 --traffic 5"),
        (request("finish"), "finish"),
        (request("rollback", "ignored for rollback"), "rollback"),
    ],
)
def test_requests_become_promotion_cli_arguments(tmp_path: Path, inputs: dict[str, Any], args: str) -> None:
    promotion = run_promotion(tmp_path, inputs)
    assert promotion.apply is not None
    assert all(result.returncode == 0 for result in promotion.plan.results + promotion.apply.results)
    assert promotion.promote_calls() == [
        ["promote", f"ENV={inputs['environment']}", f"ARGS={args} --dry-run --plan-file promotion-plan.json"],
        ["promote", f"ENV={inputs['environment']}", f"ARGS=apply --plan promotion-plan.json --summary-file "
         f"{tmp_path / 'summary.md'}"],
    ]  # fmt: skip


def test_a_refused_plan_stops_before_the_apply_job(tmp_path: Path) -> None:
    promotion = run_promotion(tmp_path, request("canary"), fail="--dry-run")

    assert [(result.name, result.returncode) for result in promotion.plan.results][-1] == ("Plan", 1)
    assert promotion.apply is None  # `needs: plan`
    assert promotion.promote_calls() == [
        ["promote", "ENV=prod", "ARGS=canary --alias candidate --traffic 10 --dry-run --plan-file promotion-plan.json"]
    ]
    summary = promotion.summary
    assert "### Plan:" in summary and "error: refused" in summary and "### Result" not in summary
    assert "Approving the apply job" not in summary


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (request("canary", "candidate; rm -rf /"), "version_or_alias must be"),
        (request("canary", "$(id)"), "version_or_alias must be"),
        (request("canary", traffic=100), "traffic_percent must be"),
        (request("canary", traffic=2.5), "traffic_percent must be"),
        (request("deploy-everything"), "unknown action"),
    ],
)
def test_bad_requests_are_refused_before_make_runs(tmp_path: Path, inputs: dict[str, Any], message: str) -> None:
    promotion = run_promotion(tmp_path, inputs)
    assert [result.returncode for result in promotion.plan.results] == [1]
    assert f"::error::{message}" in promotion.plan.results[0].output
    assert promotion.calls() == [] and promotion.apply is None


def test_promotions_run_from_main_only(tmp_path: Path) -> None:
    promotion = run_promotion(tmp_path, request("finish"), ref="refs/heads/feature")
    assert [result.returncode for result in promotion.plan.results] == [1]
    assert "::error::promotions run from main only" in promotion.plan.results[0].output
    assert promotion.calls() == [] and promotion.apply is None
