"""What a local run produced: row counts, eval metrics, the blessing, the pushed model, step timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from runners.local.progress import ComponentTiming

# Continuation lines of the summary start under the values.
INDENT = " " * 15


@dataclass
class RunSummary:
    rows_per_split: dict[str, int] = field(default_factory=dict)
    # The candidate's metrics over the eval split; keys carry the class (`auc[setosa]`) or the
    # aggregation (`auc (macro average)`); None: undefined (components/eval_metrics.py).
    metrics: dict[str, float | None] = field(default_factory=dict)
    blessed: bool | None = None
    # Why the Evaluator did not bless, in plain words ([] when it did).
    blessing_failures: list[str] = field(default_factory=list)
    pushed_model: str | None = None
    executions: dict[str, str] = field(default_factory=dict)
    timings: list[ComponentTiming] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSummary:
        timings = [ComponentTiming(**timing) for timing in values.get("timings", [])]
        return cls(**{**values, "timings": timings})

    def lines(self) -> list[str]:
        rows = ", ".join(f"{split} {count:,}" for split, count in sorted(self.rows_per_split.items()))
        metrics = ", ".join(f"{name} {format_metric(name, value)}" for name, value in self.metrics.items())
        verdict = {True: "BLESSED", False: "NOT BLESSED", None: "not evaluated"}[self.blessed]
        reasons = self.blessing_failures if self.blessed is False else []
        model = [f"Model:         {verdict}" + (f": {reasons[0]}" if reasons else "")]
        model += [f"{INDENT}{reason}" for reason in reasons[1:]]
        return [
            f"Rows:          {rows or 'unknown'}",
            f"Eval metrics:  {metrics or 'none'}",
            *model,
            f"Pushed model:  {self.pushed_model or 'none pushed in this run'}",
        ]


def format_metric(name: str, value: float | None) -> str:
    """4 decimals; counts as whole numbers; 'undefined' for a metric a slice cannot have."""
    if value is None:
        return "undefined"
    if "count" in name and float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.4f}"
