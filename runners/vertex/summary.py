"""A Markdown summary of a pipeline run, e.g. for $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVALUATOR_TASK = "Evaluator"


@dataclass(frozen=True)
class RunReport:
    job_id: str
    console_url: str
    state: str
    config_name: str
    project: str
    region: str
    image: str | None
    duration: dt.timedelta | None = None
    error: str | None = None
    note: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    blessed: bool | None = None

    def markdown(self) -> str:
        rows = [
            ("Run", f"[{self.job_id}]({self.console_url})"),
            ("State", self.state + (f" ({self.note})" if self.note else "")),
            ("Duration", _duration(self.duration)),
            ("Config", f"{self.config_name} (project {self.project}, {self.region})"),
            ("Image", f"`{self.image}`" if self.image else "unknown"),
        ]
        if self.blessed is not None:
            rows.append(("Model", "blessed" if self.blessed else "NOT blessed"))
        lines = [f"### Vertex AI pipeline run: {self.state}", "", "| | |", "| --- | --- |"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
        if self.error:
            lines += ["", f"**Error:** {_cell(self.error)}"]
        if self.metrics:
            lines += ["", "Evaluator metrics:", "", "| Metric | Value |", "| --- | --- |"]
            lines += [f"| {name} | {value:.4f} |" for name, value in sorted(self.metrics.items())]
        return "\n".join(lines) + "\n"


def write_summary(path: Path, report: RunReport) -> None:
    """Appends (GitHub collects the step summary from every step that appends to the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as summary:
        summary.write(report.markdown())


def run_duration(resource: Any, now: dt.datetime | None = None) -> dt.timedelta | None:
    """End minus start of a PipelineJob resource; up to now while it runs."""
    start = _timestamp(resource.start_time) or _timestamp(resource.create_time)
    if start is None:
        return None
    end = _timestamp(resource.end_time) or now or dt.datetime.now(dt.timezone.utc)
    return end - start


def evaluator_results(resource: Any) -> tuple[dict[str, float], bool | None]:
    """Numeric metadata of the Evaluator's output artifacts, and its blessing if recorded."""
    metrics: dict[str, float] = {}
    blessed: bool | None = None
    for task in resource.job_detail.task_details:
        if task.task_name != EVALUATOR_TASK:
            continue
        for output in task.outputs.values():
            for artifact in output.artifacts:
                for key, value in dict(artifact.metadata).items():
                    if key == "blessed":
                        blessed = bool(value)
                    elif isinstance(value, int | float) and not isinstance(value, bool):
                        metrics[key] = float(value)
    return metrics, blessed


def _timestamp(value: Any) -> dt.datetime | None:
    if not value or value.timestamp() == 0:
        return None
    return value


def _duration(duration: dt.timedelta | None) -> str:
    if duration is None:
        return "unknown"
    minutes, seconds = divmod(int(duration.total_seconds()), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
