"""checkov over infra/: no failed check, and every suppression says why."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.checkov import failures, scan, suppressions
from tests.infra.terraform import INFRA, text_of_all_files


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return scan("--directory", str(INFRA), "--framework", "terraform")


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    assert failures(report) == []
    assert report["summary"]["parsing_errors"] == 0


def test_checkov_actually_checked_the_configuration(report: dict[str, Any]) -> None:
    assert report["summary"]["resource_count"] >= 40
    assert report["summary"]["passed"] >= 50
    passed = {check["check_id"] for check in report["results"]["passed_checks"]}
    # Uniform access, public access prevention, versioning; the GitHub provider's condition.
    assert {"CKV_GCP_29", "CKV_GCP_114", "CKV_GCP_78", "CKV_GCP_118"} <= passed


def test_every_suppression_is_justified(report: dict[str, Any]) -> None:
    comments = suppressions(text_of_all_files())
    assert comments, "no suppressions left: simplify this test"
    for check_id, reason in comments:
        assert len(reason.split()) >= 8, f"checkov:skip={check_id} needs a reason after ':'"
    skipped = report["results"]["skipped_checks"]
    assert {check["check_id"] for check in skipped} == {check_id for check_id, _ in comments}
    assert all(check["check_result"]["suppress_comment"] for check in skipped)
