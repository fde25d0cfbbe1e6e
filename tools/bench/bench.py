"""Measures local runs: wall time per component, total wall time, peak memory, eval AUC.

`python -m tools.bench.bench [--data DIR | --rows N] [--repeats N] [--baseline [--keras-modes M,...]]
[--out FILE]` writes a JSON result (default bench-results/<time>.json) and prints tables. Each
repeat runs, back to back:

- a cold run of ours (empty output directory), then a cached re-run of ours on that same output
  directory; ours always runs with TF_USE_LEGACY_KERAS=1 (TFT and TFMA need Keras 2);
- with --baseline, a cold run of the TFX taxi template copied out of the installed tfx package
  with every component enabled (tools.bench.template), on the same data, once per Keras mode:
  `default` (Keras 3, no TF_USE_LEGACY_KERAS) and `legacy` (tf_keras, TF_USE_LEGACY_KERAS=1).

Order (`repeat_order`): our two runs stay together, between the template's modes, and the order
reverses from one repeat to the next (odd: default, ours, cached, legacy; even: legacy, ours,
cached, default). So each mode runs as often before ours as after it (with an even number of
repeats), and a drift of the machine's speed during a repeat does not favour either side.

Every run is a child process; its peak memory is the kernel's high-water mark of resident memory
of that process (or of the largest process it started), from getrusage in a small wrapper. With
--baseline, the ratios ours / template per pair of runs made back to back (one pair per repeat and
Keras mode), and their medians, are reported per mode. --rows N generates (once, cached under
.local/bench-data/) N rows scaled from the taxi sample.

Bytecode (tools.bench.bytecode): before timing, our packages and each template copy are
compiled to .pyc, and the venv is checked for sources without bytecode (`make setup` compiles it);
an untimed warm-up process imports the libraries both sides load (reading them into the page cache
for the first run too) with `python -v`, and the modules it had to compile from source are listed.
PYTHONDONTWRITEBYTECODE is passed on unchanged: the timed runs find bytecode and compile nothing.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.data import example_data_dir
from pipeline.paths import REPO_ROOT
from tools.bench import bytecode as bench_bytecode
from tools.bench import report as bench_report
from tools.bench import template as bench_template
from tools.bench.data import cached_dataset

REPO = REPO_ROOT
DATA_CACHE = REPO / ".local" / "bench-data"
RESULTS = REPO / "bench-results"
# Our packages that a run of ours imports: compiled before timing.
OUR_PACKAGES = ("pipeline", "components", "models")
# What the warm-up imports: the libraries both pipelines load, both Keras packages included.
_WARMUP_IMPORTS = (
    "tensorflow",
    "keras",
    "tf_keras",
    "apache_beam",
    "tensorflow_data_validation",
    "tensorflow_transform",
    "tensorflow_model_analysis",
    "tfx.components",
)
# argv: PEAK_FILE COMMAND...; runs COMMAND, writes its peak RSS in KiB to PEAK_FILE, exits with its code.
_PEAK_WRAPPER = (
    "import pathlib, resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "pathlib.Path(sys.argv[1]).write_text(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)


class BenchError(Exception):
    """A measured run failed; the message ends with the tail of its log."""


def child_env(keras_mode: str = bench_template.LEGACY_KERAS) -> dict[str, str]:
    """This process's environment for a child in `keras_mode` (TF's C++ logs down to errors by default)."""
    return bench_template.keras_env(keras_mode, {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ})


def run_child(command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Runs `command`, output to `log`; returns wall seconds, peak RSS in MB and the exit code.

    A child's ru_maxrss starts at its parent's resident size when it is started (Linux carries
    the high-water mark over fork and exec), so the command is started by a bare Python wrapper
    of about 10 MB, which reports its children's peak: that of the command alone.
    """
    env = child_env() if env is None else env
    peak_file = log.with_suffix(".peak")
    with log.open("w") as out:
        started = time.monotonic()
        wrapped = [sys.executable, "-S", "-c", _PEAK_WRAPPER, str(peak_file), *command]
        code = subprocess.run(wrapped, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
        wall = time.monotonic() - started
    return wall, int(peak_file.read_text()) / 1024, code


def measure(
    command: list[str], cwd: Path, summary_json: Path, log: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    wall, peak_rss_mb, code = run_child(command, cwd, log, env)
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"{' '.join(command)} failed (exit {code}):\n{tail}")
    summary = json.loads(summary_json.read_text())
    run = {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "components": {t["component_id"]: round(t["seconds"], 2) for t in summary["timings"]},
        "cached_components": [t["component_id"] for t in summary["timings"] if t["cached"]],
        "metrics": summary["metrics"],
        "rows_per_split": summary["rows_per_split"],
        "blessed": summary["blessed"],
    }
    if "keras" in summary:
        run["keras"] = summary["keras"]
    return run


def measure_ours(work: Path, name: str, data: Path | None, config: Path | None) -> dict[str, Any]:
    """A run of ours with outputs in work/ours: cold the first time, cached after."""
    summary = work / f"{name}.json"
    command = [sys.executable, "-m", "pipeline", "run-local", "--output-dir", str(work / "ours")]
    command += ["--summary-json", str(summary)]
    command += ["--data", str(data)] if data else []
    command += ["--config", str(config)] if config else []
    return measure(command, REPO, summary, work / f"{name}.log")


def measure_template(work: Path, data: Path, keras_mode: str) -> dict[str, Any]:
    """A cold run of a fresh copy of the TFX taxi template in `keras_mode`, outputs in work/."""
    name = bench_report.template_variant(keras_mode)
    copy = bench_template.copy_template(work / name, data, work / f"{name}-out")
    summary = work / f"{name}.json"
    command = bench_template.run_command(copy, summary)
    return measure(command, copy, summary, work / f"{name}.log", child_env(keras_mode))


def repeat_order(index: int, keras_modes: Sequence[str]) -> list[str]:
    """The variants of repeat `index` (from 0) in the order they run: our cold run and its cached
    re-run together, amid the template's modes, reversed every other repeat."""
    templates = [[bench_report.template_variant(mode)] for mode in keras_modes]
    middle = (len(templates) + 1) // 2
    blocks = [*templates[:middle], [bench_report.OURS, bench_report.OURS_CACHED], *templates[middle:]]
    if index % 2:
        blocks.reverse()
    return [name for block in blocks for name in block]


def warm_up(log: Path) -> dict[str, Any]:
    """An untimed process that imports what both sides load, with `python -v`: reads the libraries
    into the page cache before the first timed run, and lists modules compiled from source."""
    command = [sys.executable, "-v", "-c", "import " + ", ".join(_WARMUP_IMPORTS)]
    wall, _, code = run_child(command, REPO, log)
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise BenchError(f"the warm-up imports failed (exit {code}):\n{tail}")
    compiled = bench_bytecode.imports_compiled_from_source(log.read_text(errors="replace"))
    return {"seconds": round(wall, 2), "compiled_from_source": compiled}


MeasureVariant = Callable[[Path, str], dict[str, Any]]


def variant_measure(data: Path | None, config: Path | None) -> MeasureVariant:
    """Measures one run of a variant in a repeat's work folder."""

    def measure_variant(work: Path, name: str) -> dict[str, Any]:
        if name.startswith(bench_report.TEMPLATE_PREFIX):
            return measure_template(work, data or example_data_dir(), name.removeprefix(bench_report.TEMPLATE_PREFIX))
        return measure_ours(work, name, data, config)

    return measure_variant


@dataclass
class BenchRuns:
    runs: dict[str, list[dict[str, Any]]]  # per variant, one run per repeat
    orders: list[list[str]]  # per repeat, the variants in the order they ran
    # Per repeat, our sources whose bytecode was stale after it: edited while it ran (the runs
    # compiled them, and may have run a mix of old and new code).
    edited: list[list[str]]


def run_bench(
    repeats: int, keras_modes: Sequence[str], measure_variant: MeasureVariant, packages: Sequence[Path] | None = None
) -> BenchRuns:
    """Runs every repeat, each in a fresh work folder, our `packages` compiled before it."""
    packages = packages or [REPO / package for package in OUR_PACKAGES]
    root = packages[0].parent
    result = BenchRuns({}, [repeat_order(index, keras_modes) for index in range(repeats)], [])
    result.runs = {name: [] for name in result.orders[0]}
    for index, order in enumerate(result.orders):
        bench_bytecode.compile_sources(packages)
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            for name in order:
                run = measure_variant(Path(tmp), name)
                result.runs[name].append(run)
                print(f"repeat {index + 1}/{repeats} {name:<16} {run['wall_seconds']:6.1f} s", file=sys.stderr)
        edited = [str(path.relative_to(root)) for p in packages for path in bench_bytecode.sources_without_bytecode(p)]
        if edited:
            print(f"warning: sources edited during repeat {index + 1}: {', '.join(edited)}", file=sys.stderr)
        result.edited.append(edited)
    return result


def bytecode_report(warmup: dict[str, Any], edited: list[list[str]], baseline: bool) -> dict[str, Any]:
    """How bytecode was handled, for the result."""
    compiled = [f"{package}/" for package in OUR_PACKAGES] + (["each template copy"] if baseline else [])
    return {
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "venv": bench_bytecode.venv_status(),
        "compiled_before_timing": compiled,
        "warmup_seconds": warmup["seconds"],
        "warmup_sources_compiled": warmup["compiled_from_source"],
        "sources_edited_during_repeat": edited,
        "how": "make setup compiles the venv; the benchmark compiles our packages (and each template copy) "
        "before timing; children keep PYTHONDONTWRITEBYTECODE and only read .pyc files",
    }


def build_result(
    runs: dict[str, list[dict[str, Any]]],
    data: str,
    rows: int | None,
    orders: list[list[str]] | None = None,
    bytecode: dict[str, Any] | None = None,
) -> dict[str, Any]:
    # Variants in a fixed order (template modes first), whatever order the first repeat ran them in.
    names = sorted(runs, key=lambda name: (not name.startswith(bench_report.TEMPLATE_PREFIX), name))
    variants = {name: {"runs": runs[name], "aggregate": bench_report.aggregate(runs[name])} for name in names}
    result: dict[str, Any] = {
        "created": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine(),
        "data": data,
        "rows": rows,
        "repeats": len(runs[bench_report.OURS]),
        "order": orders,
        "bytecode": bytecode,
        "ours_keras": "TF_USE_LEGACY_KERAS=1",
        "variants": variants,
    }
    modes = bench_report.template_modes(variants)
    if modes:
        result["keras_modes"] = {
            mode: {
                "variant": bench_report.template_variant(mode),
                "TF_USE_LEGACY_KERAS": "1" if bench_template.KERAS_MODES.get(mode) else None,
                "title": bench_template.KERAS_MODE_TITLES.get(mode, mode),
            }
            for mode in modes
        }
        result["pairs"] = {
            mode: bench_report.pair_ratios(variants, bench_report.template_variant(mode)) for mode in modes
        }
        result["pair_ratios"] = {mode: bench_report.ratio_medians(pairs) for mode, pairs in result["pairs"].items()}
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


ALL_MODES = tuple(bench_template.KERAS_MODES)


def keras_modes_arg(value: str) -> list[str]:
    modes = list(dict.fromkeys(mode.strip() for mode in value.split(",") if mode.strip()))
    unknown = [mode for mode in modes if mode not in bench_template.KERAS_MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"Keras modes are {', '.join(ALL_MODES)} (got {value!r})")
    return modes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.bench", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="CSV folder (default: the taxi sample)")
    source.add_argument("--rows", type=int, help="scale the taxi sample to this many rows (tools.bench.data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scaled data (with --rows)")
    parser.add_argument("--config", type=Path, help="environment config (default: configs/local.yaml)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="also run the TFX taxi template, alternating")
    parser.add_argument(
        "--keras-modes",
        type=keras_modes_arg,
        help=f"with --baseline: the template's Keras modes, comma-separated (default: {','.join(ALL_MODES)})",
    )
    parser.add_argument("--out", type=Path, help="JSON result file (default: bench-results/<time>.json)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.rows is not None and args.rows < 1):
        parser.error("--repeats and --rows must be at least 1")
    if args.keras_modes and not args.baseline:
        parser.error("--keras-modes chooses the template's modes: it needs --baseline")
    keras_modes = (args.keras_modes or list(ALL_MODES)) if args.baseline else []

    data = args.data.resolve() if args.data else None
    if args.rows:
        data = cached_dataset(args.rows, DATA_CACHE, args.seed)
    config = args.config.resolve() if args.config else None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-warmup-") as tmp:
            warmup = warm_up(Path(tmp, "warmup.log"))
        bench_runs = run_bench(args.repeats, keras_modes, variant_measure(data, config))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bytecode = bytecode_report(warmup, bench_runs.edited, bool(keras_modes))
    data_name = str(data or "taxi sample (tfx package)")
    result = build_result(bench_runs.runs, data_name, args.rows, bench_runs.orders, bytecode)
    out = args.out or RESULTS / f"{result['created']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(bench_report.result_tables(result))
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
