"""Measures cold local runs: wall time per component, total wall time, peak memory, eval metrics.

`python -m pipeline.bench [--data DIR] [--repeats N] [--out FILE]` writes a JSON result and
prints a table. It asserts nothing about speed: it is for measuring, and this machine's speed
drifts, so compare only runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def measure_run(data: str | None, config: Path | None) -> dict[str, Any]:
    """One cold run (empty output directory) in a child process."""
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        summary_file = Path(work) / "summary.json"
        command = [sys.executable, "-m", "pipeline", "run-local", "--output-dir", f"{work}/out"]
        command += ["--summary-json", str(summary_file)]
        if data:
            command += ["--data", data]
        if config:
            command += ["--config", str(config)]
        started = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        if completed.returncode != 0:
            raise RuntimeError(f"pipeline run failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
        summary = json.loads(summary_file.read_text())
    return {
        "wall_seconds": round(wall, 2),
        # Largest resident set of any child so far: each run is measured in a fresh child.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "components": {t["component_id"]: round(t["seconds"], 2) for t in summary["timings"]},
        "metrics": summary["metrics"],
        "rows_per_split": summary["rows_per_split"],
        "blessed": summary["blessed"],
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}

    component_ids = list(runs[0]["components"])
    return {
        "wall_seconds": spread([r["wall_seconds"] for r in runs]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "auc": spread([r["metrics"].get("auc", float("nan")) for r in runs]),
        "components": {c: spread([r["components"].get(c, 0.0) for r in runs]) for c in component_ids},
    }


def table(result: dict[str, Any]) -> str:
    agg = result["aggregate"]
    lines = [f"{'component':<32} {'median s':>9} {'min s':>7} {'max s':>7}"]
    for component, s in agg["components"].items():
        lines.append(f"{component:<32} {s['median']:>9.2f} {s['min']:>7.2f} {s['max']:>7.2f}")
    wall = agg["wall_seconds"]
    lines.append(f"{'total wall (process)':<32} {wall['median']:>9.2f} {wall['min']:>7.2f} {wall['max']:>7.2f}")
    lines.append(f"peak memory: {agg['peak_rss_mb']:.0f} MB   eval AUC (median): {agg['auc']['median']:.4f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__)
    parser.add_argument("--data", help="CSV folder (default: the taxi sample)")
    parser.add_argument("--config", type=Path, help="environment config (default: configs/local.yaml)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="JSON result file (default: bench-results/<time>.json)")
    args = parser.parse_args(argv)

    runs = []
    for index in range(args.repeats):
        runs.append(measure_run(args.data, args.config))
        print(f"run {index + 1}/{args.repeats}: {runs[-1]['wall_seconds']:.1f} s", file=sys.stderr)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {
        "created": stamp,
        "machine": {"python": platform.python_version(), "cpus": _cpu_count(), "platform": platform.platform()},
        "data": args.data or "taxi sample (tfx package)",
        "runs": runs,
        "aggregate": aggregate(runs),
    }
    out = args.out or Path("bench-results") / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"result: {out}")
    return 0


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
