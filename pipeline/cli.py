"""Command line: `python -m pipeline run-local [--config FILE] [--data DIR] [--output-dir DIR]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, load_config
from pipeline.data import DataError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run-local", help="run the whole pipeline on this machine")
    run.add_argument(
        "--config",
        type=Path,
        default=LOCAL_CONFIG,
        help=f"environment config merged on top of {BASE_CONFIG.name} (default: configs/{LOCAL_CONFIG.name})",
    )
    run.add_argument("--data", help="folder of CSV files to train on (overrides data.path)")
    run.add_argument("--output-dir", help="where artifacts, metadata and models go (overrides runner.output_dir)")
    run.add_argument("--require-blessing", action="store_true", help="exit 3 when the model is not blessed")
    run.add_argument("--summary-json", type=Path, help="also write the run summary to this JSON file")
    run.add_argument("--verbose", action="store_true", help="show TFX's own logs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    if args.data:
        overrides["data.path"] = args.data
    if args.output_dir:
        overrides["runner.output_dir"] = args.output_dir
    try:
        config = load_config([BASE_CONFIG, args.config], overrides)
        from pipeline.data import data_dir

        data_dir(config)  # checked before any output is written
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _run_local(config, args)


def _run_local(config, args: argparse.Namespace) -> int:
    from pipeline.local_runner import run_local

    print(f"Running pipeline '{config.pipeline_name}' locally; outputs in {Path(config.runner.output_dir).resolve()}")
    try:
        summary = run_local(config, verbose=args.verbose)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: the pipeline failed: {type(error).__name__}: {first_line}", file=sys.stderr)
        if args.verbose:
            raise
        return EXIT_FAILED
    for line in summary.lines():
        print(line)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(summary.to_json())
    if args.require_blessing and not summary.blessed:
        print("error: the model was not blessed (--require-blessing)", file=sys.stderr)
        return EXIT_NOT_BLESSED
    return EXIT_OK
