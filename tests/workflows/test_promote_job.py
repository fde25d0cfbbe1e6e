"""promote.yaml's shell steps, in order, with a stand-in `make` on PATH that records its
arguments: what reaches `make promote` for each request, the plan before the promotion, the job
summary (to which the promotion CLI appends its smoke test through --summary-file), and refusals
before anything runs.

The promotion itself (`make promote` against Vertex AI) is the promotion CLI's to test; here the
question is what the workflow hands it and what it does with the answers.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.workflows import REPO_ROOT, JobRun, jobs, load_workflow, run_steps

PROMOTE = jobs(load_workflow(REPO_ROOT / ".github" / "workflows" / "promote.yaml"))["promote"]
# Each call on one line, arguments separated by '|'; exits 1 when FAKE_MAKE_FAIL is among them.
# ARGS is split into words as the Makefile's recipe line splits it; like the promotion CLI, an
# `--summary-file F` among them appends a section to F.
FAKE_MAKE = """#!/usr/bin/env bash
printf '%s|' "$@" >> "$FAKE_MAKE_CALLS"; echo >> "$FAKE_MAKE_CALLS"
echo "fake make: $*"
for argument in "$@"; do
  if [[ "$argument" == ARGS=* ]]; then
    read -ra words <<< "${argument#ARGS=}"
    for index in "${!words[@]}"; do
      if [[ "${words[$index]}" == --summary-file ]]; then
        echo "### Smoke test (fake promotion CLI): passed" >> "${words[$((index + 1))]}"
      fi
    done
  fi
  if [[ -n "$FAKE_MAKE_FAIL" && "$argument" == *"$FAKE_MAKE_FAIL"* ]]; then echo "error: refused" >&2; exit 1; fi
done
"""


def run_promote(tmp_path: Path, inputs: dict[str, Any], ref: str = "refs/heads/main", fail: str = "") -> JobRun:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "make"
    fake.write_text(FAKE_MAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    workdir = tmp_path / "repo"
    workdir.mkdir()
    environment = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_REF": ref,
        "FAKE_MAKE_CALLS": str(tmp_path / "calls"),
        "FAKE_MAKE_FAIL": fail,
    }
    return run_steps(
        PROMOTE,
        workdir=workdir,
        environment=environment,
        contexts={"inputs": inputs, "vars": {}},
        summary_file=tmp_path / "summary.md",
    )


def make_calls(tmp_path: Path) -> list[list[str]]:
    calls = tmp_path / "calls"
    return [line.rstrip("|").split("|") for line in calls.read_text().splitlines()] if calls.exists() else []


def request(action: str, version_or_alias: str = "candidate", traffic: Any = 10, env: str = "prod") -> dict[str, Any]:
    return {"environment": env, "action": action, "version_or_alias": version_or_alias, "traffic_percent": traffic}


def test_a_canary_is_planned_then_promoted_and_both_land_in_the_summary(tmp_path: Path) -> None:
    run = run_promote(tmp_path, request("canary"))

    assert [result.returncode for result in run.results] == [0, 0, 0, 0], run.results[-1].output
    summary_file = tmp_path / "summary.md"
    assert make_calls(tmp_path) == [
        ["setup"],
        ["promote", "ENV=prod", "ARGS=canary --alias candidate --traffic 10 --dry-run"],
        ["promote", "ENV=prod", f"ARGS=canary --alias candidate --traffic 10 --summary-file {summary_file}"],
    ]
    summary = summary_file.read_text()
    assert "### Plan: `canary --alias candidate --traffic 10` in prod" in summary
    assert "fake make: promote ENV=prod ARGS=canary --alias candidate --traffic 10 --dry-run" in summary
    assert "### Result: `canary --alias candidate --traffic 10` in prod (exit 0)" in summary
    # The smoke test's section comes from the promotion itself, between the plan and its output.
    assert summary.count("### Smoke test") == 1
    assert summary.index("### Plan") < summary.index("### Smoke test") < summary.index("### Result")


def test_a_failed_promotion_still_leaves_its_smoke_test_and_output_in_the_summary(tmp_path: Path) -> None:
    run = run_promote(tmp_path, request("canary"), fail="--summary-file")

    assert [(result.name, result.returncode) for result in run.results][-1] == ("Promote", 1)
    summary = (tmp_path / "summary.md").read_text()
    assert "### Smoke test (fake promotion CLI)" in summary
    assert "### Result: `canary --alias candidate --traffic 10` in prod (exit 1)" in summary
    assert "error: refused" in summary


@pytest.mark.parametrize(
    ("inputs", "args"),
    [
        (request("canary", "7", 5, env="dev"), "canary --version 7 --traffic 5"),
        (request("finish"), "finish"),
        (request("rollback", "ignored for rollback"), "rollback"),
    ],
)
def test_requests_become_promotion_cli_arguments(tmp_path: Path, inputs: dict[str, Any], args: str) -> None:
    run = run_promote(tmp_path, inputs)
    assert all(result.returncode == 0 for result in run.results)
    assert make_calls(tmp_path)[1:] == [
        ["promote", f"ENV={inputs['environment']}", f"ARGS={args} --dry-run"],
        ["promote", f"ENV={inputs['environment']}", f"ARGS={args} --summary-file {tmp_path / 'summary.md'}"],
    ]


def test_a_refused_plan_stops_the_job_before_anything_changes(tmp_path: Path) -> None:
    run = run_promote(tmp_path, request("canary"), fail="--dry-run")

    assert [(result.name, result.returncode) for result in run.results][-1] == ("Plan (dry run)", 1)
    assert [call for call in make_calls(tmp_path) if call[0] == "promote"] == [
        ["promote", "ENV=prod", "ARGS=canary --alias candidate --traffic 10 --dry-run"]
    ]
    summary = (tmp_path / "summary.md").read_text()
    assert "### Plan:" in summary and "error: refused" in summary and "### Result" not in summary


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
    run = run_promote(tmp_path, inputs)
    assert [result.returncode for result in run.results] == [1]
    assert f"::error::{message}" in run.results[0].output
    assert make_calls(tmp_path) == []


def test_promotions_run_from_main_only(tmp_path: Path) -> None:
    run = run_promote(tmp_path, request("finish"), ref="refs/heads/feature")
    assert [result.returncode for result in run.results] == [1]
    assert "::error::promotions run from main only" in run.results[0].output
    assert make_calls(tmp_path) == []
