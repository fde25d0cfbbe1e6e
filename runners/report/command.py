"""`python -m pipeline report [--config FILE] [--output-dir DIR] [--run RUN_ID] [--output FILE]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, PipelineConfig, load_config
from runners.errors import EXIT_BAD_INPUT, EXIT_OK
from runners.local.progress import quietly


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="write the HTML report of a local run (default: the latest)")
    report.add_argument("--config", type=Path, default=LOCAL_CONFIG, help="environment config the run used")
    report.add_argument("--output-dir", help="the run's output folder (overrides runner.output_dir)")
    report.add_argument("--run", help="run id, as the report lists them (default: the latest run)")
    report.add_argument("--output", type=Path, help="HTML file to write (default: <output dir>/reports/...)")
    report.add_argument("--list", action="store_true", help="list the run ids instead")
    report.set_defaults(handler=quietly(run_report_command))


def run_report_command(args: argparse.Namespace) -> int:
    from runners.report import write_report
    from runners.report.collect import ReportError, open_store, run_ids

    try:
        config = _config(args)
        if args.list:
            for run_id in run_ids(open_store(config)):
                print(run_id)
            return EXIT_OK
        path = write_report(config, args.run, args.output)
    except (ConfigError, ReportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Report: {path}")
    return EXIT_OK


def build_run_report(config: PipelineConfig) -> str | None:
    """Writes the latest run's report and returns its path; never fails the run."""
    from runners.report import write_report

    try:
        return str(write_report(config))
    except Exception as error:  # the run's outcome matters more than its report
        print(f"warning: no run report: {type(error).__name__}: {error}", file=sys.stderr)
        return None


def print_run_report(config: PipelineConfig) -> None:
    """After a stopped `run-local`: writes the latest run's report and prints its path."""
    path = build_run_report(config)
    if path:
        print(f"Report:        {path}")


def _config(args: argparse.Namespace) -> PipelineConfig:
    overrides = {"runner.output_dir": args.output_dir} if args.output_dir else {}
    config = load_config([BASE_CONFIG, args.config], overrides)
    if config.runner.kind != "local":
        raise ConfigError(f"{args.config}: runner.kind is '{config.runner.kind}'; report reads local runs")
    return config
