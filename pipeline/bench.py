"""Measures local runs: wall time per component, total wall time, peak memory, eval AUC.

`python -m pipeline.bench [--data DIR | --rows N] [--repeats N] [--baseline] [--out FILE]` writes a
JSON result (default bench-results/<time>.json) and prints tables. Each repeat, in this order:

- with --baseline, a cold run of the TFX taxi template copied out of the installed tfx package
  with every component enabled (pipeline.bench_template), on the same data;
- a cold run of ours (empty output directory);
- a cached re-run of ours on that same output directory.

Every run is a child process; its peak memory is the kernel's high-water mark of resident memory
of that process (or of the largest process it started), from getrusage in a small wrapper. With
--baseline, the ratios ours / template per pair of runs made back to back, and their medians, are
reported too. --rows N generates (once, cached under .local/bench-data/) N rows scaled from the
taxi sample.
It asserts nothing: this machine's speed drifts, so compare only runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import bench_report, bench_template
from pipeline.bench_data import cached_dataset
from pipeline.data import taxi_sample_dir

REPO = Path(__file__).resolve().parents[1]
DATA_CACHE = REPO / ".local" / "bench-data"
RESULTS = REPO / "bench-results"
_CHILD_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
# argv: PEAK_FILE COMMAND...; runs COMMAND, writes its peak RSS in KiB to PEAK_FILE, exits with its code.
_PEAK_WRAPPER = (
    "import pathlib, resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "pathlib.Path(sys.argv[1]).write_text(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)


class BenchError(Exception):
    """A measured run failed; the message ends with the tail of its log."""


def run_child(command: list[str], cwd: Path, log: Path) -> tuple[float, float, int]:
    """Runs `command`, output to `log`; returns wall seconds, peak RSS in MB and the exit code.

    A child's ru_maxrss starts at its parent's resident size when it is started (Linux carries
    the high-water mark over fork and exec), so the command is started by a bare Python wrapper
    of about 10 MB, which reports its children's peak: that of the command alone.
    """
    env = {**_CHILD_ENV, **os.environ}
    peak_file = log.with_suffix(".peak")
    with log.open("w") as out:
        started = time.monotonic()
        wrapped = [sys.executable, "-S", "-c", _PEAK_WRAPPER, str(peak_file), *command]
        code = subprocess.run(wrapped, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
        wall = time.monotonic() - started
    return wall, int(peak_file.read_text()) / 1024, code


def measure(command: list[str], cwd: Path, summary_json: Path, log: Path) -> dict[str, Any]:
    wall, peak_rss_mb, code = run_child(command, cwd, log)
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"{' '.join(command)} failed (exit {code}):\n{tail}")
    summary = json.loads(summary_json.read_text())
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "components": {t["component_id"]: round(t["seconds"], 2) for t in summary["timings"]},
        "cached_components": [t["component_id"] for t in summary["timings"] if t["cached"]],
        "metrics": summary["metrics"],
        "rows_per_split": summary["rows_per_split"],
        "blessed": summary["blessed"],
    }


def measure_ours(work: Path, name: str, data: Path | None, config: Path | None) -> dict[str, Any]:
    """A run of ours with outputs in work/ours: cold the first time, cached after."""
    summary = work / f"{name}.json"
    command = [sys.executable, "-m", "pipeline", "run-local", "--output-dir", str(work / "ours")]
    command += ["--summary-json", str(summary)]
    command += ["--data", str(data)] if data else []
    command += ["--config", str(config)] if config else []
    return measure(command, REPO, summary, work / f"{name}.log")


def measure_template(work: Path, data: Path) -> dict[str, Any]:
    """A cold run of a fresh copy of the TFX taxi template, outputs in work/template-out."""
    copy = bench_template.copy_template(work / "template", data, work / "template-out")
    summary = work / "template.json"
    return measure(bench_template.run_command(copy, summary), copy, summary, work / "template.log")


def run_bench(data: Path | None, config: Path | None, repeats: int, baseline: bool) -> dict[str, list[dict[str, Any]]]:
    names = ([bench_report.TEMPLATE] if baseline else []) + [bench_report.OURS, bench_report.OURS_CACHED]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            work = Path(tmp)
            for name in names:
                if name == bench_report.TEMPLATE:
                    run = measure_template(work, data or taxi_sample_dir())
                else:
                    run = measure_ours(work, name, data, config)
                runs[name].append(run)
                print(f"repeat {index + 1}/{repeats} {name:<12} {run['wall_seconds']:6.1f} s", file=sys.stderr)
    return runs


def build_result(runs: dict[str, list[dict[str, Any]]], data: str, rows: int | None) -> dict[str, Any]:
    variants = {name: {"runs": r, "aggregate": bench_report.aggregate(r)} for name, r in runs.items()}
    result: dict[str, Any] = {
        "created": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "data": data,
        "rows": rows,
        "repeats": len(runs[bench_report.OURS]),
        "variants": variants,
    }
    if bench_report.TEMPLATE in variants:
        result["pairs"] = bench_report.pair_ratios(variants)
        result["pair_ratios"] = bench_report.ratio_medians(result["pairs"])
    return result


def machine() -> dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for path, key, name in (("/proc/cpuinfo", "model name", "cpu_model"), ("/proc/meminfo", "MemTotal", "memory")):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        value = next((line.split(":", 1)[1].strip() for line in lines if line.startswith(key)), None)
        if value:
            info[name] = value
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.bench", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="CSV folder (default: the taxi sample)")
    source.add_argument("--rows", type=int, help="scale the taxi sample to this many rows (pipeline.bench_data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scaled data (with --rows)")
    parser.add_argument("--config", type=Path, help="environment config (default: configs/local.yaml)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="also run the TFX taxi template, alternating")
    parser.add_argument("--out", type=Path, help="JSON result file (default: bench-results/<time>.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.rows is not None and args.rows < 1):
        parser.error("--repeats and --rows must be at least 1")

    data = args.data.resolve() if args.data else None
    if args.rows:
        data = cached_dataset(args.rows, DATA_CACHE, args.seed)
    config = args.config.resolve() if args.config else None
    try:
        runs = run_bench(data, config, args.repeats, args.baseline)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result = build_result(runs, str(data or "taxi sample (tfx package)"), args.rows)
    out = args.out or RESULTS / f"{result['created']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(bench_report.result_tables(result))
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
