"""What a local run produced: row counts, eval metrics, the blessing, the pushed model, step timings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from runners.local.progress import ComponentTiming


@dataclass
class RunSummary:
    rows_per_split: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool | None = None
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
        metrics = ", ".join(f"{name} {value:.4f}" for name, value in sorted(self.metrics.items()))
        verdict = {True: "BLESSED", False: "NOT BLESSED", None: "not evaluated"}[self.blessed]
        return [
            f"Rows:          {rows or 'unknown'}",
            f"Eval metrics:  {metrics or 'none'}",
            f"Model:         {verdict}",
            f"Pushed model:  {self.pushed_model or 'none pushed in this run'}",
        ]
