"""checkov's GitHub Actions checks over the workflows (script injection, curl with secrets,
write-all permissions, unsecure commands): no failed check, and every suppression says why."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.checkov import failures, scan, suppressions
from tests.workflows.workflows import REPO_ROOT, workflow_files


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    files = [str(path.relative_to(REPO_ROOT)) for path in workflow_files()]
    return scan("--framework", "github_actions", "--file", *files)


def test_checkov_finds_no_failed_check_in_the_workflows(report: dict[str, Any]) -> None:
    assert failures(report) == []
    assert report["summary"]["passed"] >= 100
    assert {check["check_id"] for check in report["results"]["passed_checks"]} >= {"CKV_GHA_2", "CKV2_GHA_1"}


def test_every_workflow_suppression_is_justified(report: dict[str, Any]) -> None:
    comments = [comment for path in workflow_files() for comment in suppressions(path.read_text())]
    # CKV_GHA_7 (SLSA: no workflow_dispatch inputs) on train.yaml and promote.yaml, which need them.
    assert [check_id for check_id, _ in comments] == ["CKV_GHA_7", "CKV_GHA_7"]
    assert all(len(reason.split()) >= 8 for _, reason in comments)
    skipped = {(check["check_id"], check["resource"]) for check in report["results"]["skipped_checks"]}
    assert skipped == {("CKV_GHA_7", "on(promote)"), ("CKV_GHA_7", "on(train)")}
