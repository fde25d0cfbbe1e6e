"""The summary a run prints: metrics by key (the class or the aggregation in the key), 'undefined'
for a value a slice cannot have, and why a model was not blessed."""

from __future__ import annotations

from runners.local.run_summary import RunSummary


def test_metrics_keep_their_keys_and_undefined_reads_as_such() -> None:
    summary = RunSummary(
        rows_per_split={"eval": 50, "train": 100},
        metrics={"auc (macro average)": None, "auc[setosa]": 0.98, "example_count": 5019.0},
        blessed=True,
    )
    assert summary.lines()[1] == "Eval metrics:  auc (macro average) undefined, auc[setosa] 0.9800, example_count 5,019"
    assert summary.lines()[2] == "Model:         BLESSED"


def test_not_blessed_says_why_one_reason_a_line() -> None:
    reasons = ["auc 0.9999 is above the ceiling 0.995 (evaluation.blessing.maximum): too good to be true", "second"]
    summary = RunSummary(metrics={"auc": 0.9999}, blessed=False, blessing_failures=reasons)
    lines = summary.lines()
    assert lines[2] == f"Model:         NOT BLESSED: {reasons[0]}"
    assert lines[3] == "               second"
    assert RunSummary.from_dict({"metrics": {"auc": 0.95}, "blessed": True}).blessing_failures == []  # older records
    assert RunSummary.from_dict(summary.__dict__ | {"timings": []}).lines() == lines
