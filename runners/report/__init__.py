"""The run report: one self-contained HTML page per local run (`python -m pipeline report`)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import PipelineConfig

REPORTS_DIR = "reports"


def report_path(config: PipelineConfig, run_id: str) -> Path:
    """<output dir>/reports/<pipeline>/run-<run id with ':' and '.' replaced>.html"""
    safe = re.sub(r"[^0-9A-Za-z_-]", "-", run_id)
    return Path(config.runner.output_dir).resolve() / REPORTS_DIR / config.pipeline_name / f"run-{safe}.html"


def write_report(config: PipelineConfig, run_id: str | None = None, output: Path | None = None) -> Path:
    """Writes the report of `run_id` (default: the latest run); returns its path."""
    from runners.report.collect import collect
    from runners.report.render import render

    data = collect(config, run_id)
    path = output or report_path(config, data.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(data), encoding="utf-8")
    return path
