"""Command line.

  python -m pipeline run-local [--config FILE] [--data DIR] [--output-dir DIR] [--wait-for-lock] [--verbose]
  python -m pipeline report    [--config FILE] [--output-dir DIR] [--run RUN_ID | --list] [--output FILE]
  python -m pipeline schema    [--config FILE] [--data DIR] [--output FILE]
  python -m pipeline compile  --env ENV --image REGISTRY/REPO/NAME@sha256:<digest>
  python -m pipeline submit   --env ENV [--spec FILE] [--wait] [--timeout S] [--summary-file F]
  python -m pipeline schedule --env ENV [--spec FILE]
  python -m pipeline promote  --env ENV canary (--version N | --alias A) --traffic P | finish | rollback [--dry-run]

ENV names configs/vertex-ENV.yaml, merged on top of configs/base.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import (
    BASE_CONFIG,
    LOCAL_CONFIG,
    VERTEX_CONFIG_PREFIX,
    ConfigError,
    PipelineConfig,
    VertexRunnerConfig,
    config_name,
    load_config,
    vertex_config_path,
)
from pipeline.data import DataError
from pipeline.run_lock import LockHolder
from pipeline.run_summary import RunSummary

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3
EXIT_TIMEOUT = 4

BUILD_DIR = Path("build")
DEFAULT_POLL_SECONDS = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    run.add_argument("--verbose", action="store_true", help="show TFX's, Beam's and TensorFlow's own logs and warnings")
    run.add_argument(
        "--wait-for-lock",
        action="store_true",
        help="when another run is using the output folder, wait for it to end instead of refusing to start",
    )
    run.add_argument(
        "--rerun-all",
        action="store_true",
        help="run the pipeline even when nothing changed since the last completed run (TFX's cache still applies)",
    )

    compile_ = commands.add_parser("compile", help="compile the pipeline for Vertex AI Pipelines (offline)")
    _add_environment(compile_)
    compile_.add_argument("--image", help="pipeline image REGISTRY/REPO/NAME@sha256:<digest> (overrides runner.image)")
    compile_.add_argument("--output", type=Path, help="spec file to write (default: build/<env>/pipeline.json)")

    submit = commands.add_parser("submit", help="start a run of a compiled spec on Vertex AI Pipelines")
    _add_environment(submit)
    _add_spec_and_endpoint(submit)
    submit.add_argument("--wait", action="store_true", help="follow the run until it ends")
    submit.add_argument("--timeout", type=float, help="with --wait: stop following after S seconds (job left running)")
    submit.add_argument(
        "--poll-interval", type=float, default=DEFAULT_POLL_SECONDS, help="seconds between state checks (default 30)"
    )
    submit.add_argument("--summary-file", type=Path, help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    submit.add_argument("--job-id", help="job ID (default: <pipeline>-<config>-<UTC time>-<random>)")

    schedule = commands.add_parser("schedule", help="create or update the recurring run from runner.schedule")
    _add_environment(schedule)
    _add_spec_and_endpoint(schedule)

    from pipeline.promotion.cli import add_promote_parser

    add_promote_parser(commands, _add_environment)

    from pipeline.report.command import add_report_parser
    from pipeline.schema_proposal import add_schema_parser

    add_report_parser(commands)
    add_schema_parser(commands)
    return parser


def _add_environment(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help=f"environment: configs/{VERTEX_CONFIG_PREFIX}ENV.yaml (dev, prod, ...)")
    where.add_argument("--config", type=Path, help="environment config file merged on top of base.yaml")


def _add_spec_and_endpoint(command: argparse.ArgumentParser) -> None:
    command.add_argument("--spec", type=Path, help="compiled spec (default: build/<env>/pipeline.json)")
    command.add_argument(
        "--api-endpoint",
        help="talk to this Vertex AI endpoint with anonymous credentials (local stand-ins, e.g. http://127.0.0.1:8765)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pipeline.progress import quiet_libraries

    if args.command == "run-local":
        with contextlib.nullcontext() if args.verbose else quiet_libraries():
            return _run_local_command(args)
    if args.command in ("report", "schema"):
        with quiet_libraries():
            return args.handler(args)
    if args.command == "submit" and args.timeout is not None and not args.wait:
        parser.error("--timeout needs --wait")
    try:
        config_file = vertex_config_path(args.env) if args.env else args.config
        config = load_config([BASE_CONFIG, config_file])
        if not isinstance(config.runner, VertexRunnerConfig):
            raise ConfigError(f"{config_file}: runner.kind is '{config.runner.kind}'; {args.command} needs 'vertex'")
    except ConfigError as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    if args.command == "promote":
        from pipeline.promotion.cli import run_promote

        return run_promote(config, config_file, args)
    from pipeline.vertex import commands

    default_spec = BUILD_DIR / (args.env or config_name(config_file)) / "pipeline.json"
    if args.command == "compile":
        return commands.compile_spec(config, image=args.image, output=args.output or default_spec)
    return commands.cloud_command(config, config_file, args.spec or default_spec, args)


def _run_local_command(args: argparse.Namespace) -> int:
    overrides = {}
    if args.data:
        overrides["data.path"] = args.data
    if args.output_dir:
        overrides["runner.output_dir"] = args.output_dir
    try:
        config = load_config([BASE_CONFIG, args.config], overrides)
        if config.runner.kind != "local":
            raise ConfigError(f"{args.config}: runner.kind is '{config.runner.kind}'; run-local needs 'local'")
        from pipeline import preflight

        # Schema, data and output folder, before anything is written.
        preflight.check(config, [BASE_CONFIG, args.config])
    except (ConfigError, DataError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)

    from pipeline.run_lock import OutputFolderBusy, RunLock

    # One run per output folder: a second run would train and push too, and report the other's results.
    lock = RunLock(config.runner.output_dir)
    try:
        killed_run = lock.acquire(wait=args.wait_for_lock, on_wait=_print_waiting)
    except OutputFolderBusy as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted while waiting for the other run to end; nothing was run", 128 + signal.SIGINT)
    try:
        if killed_run is not None:
            print(f"The last run on this output folder was killed ({killed_run.describe()}); cleaning up after it.")
        return _run_local(config, args)
    finally:
        lock.release()


def _print_waiting(holder: LockHolder | None) -> None:
    who = f" ({holder.describe()})" if holder else ""
    print(f"Waiting for the run using this output folder to end{who} ...", flush=True)


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _run_local(config: PipelineConfig, args: argparse.Namespace) -> int:
    from pipeline import rerun
    from pipeline.data import data_dir

    print(f"Running pipeline '{config.pipeline_name}' locally; outputs in {Path(config.runner.output_dir).resolve()}")
    fingerprint = rerun.inputs_fingerprint(config, data_dir(config))
    previous = None if args.rerun_all else rerun.unchanged_run(config, fingerprint)
    if previous is not None:
        print("Nothing changed since the last completed run (config, data, code, packages, schema): reusing it.")
        reused = RunSummary.from_dict(previous["summary"])
        reused.timings = []  # no step ran in this process
        return _finish(reused, previous.get("report"), args)
    rerun.forget_completed_run(config)

    from components.validation_gate import DataValidationError
    from pipeline.interrupt import StopSignals, report_interrupt, settle_abandoned_executions
    from pipeline.local_runner import run_local
    from pipeline.report.command import build_run_report, print_run_report

    # This process holds the output folder's lock: an execution still RUNNING belongs to a killed run.
    for step in settle_abandoned_executions(config):
        kept = "its partial outputs removed" if step.removed_outputs else "it had written nothing"
        print(f"  {step.component_id} (execution {step.execution_id}) of a killed run: marked {step.state}, {kept}")

    stop = StopSignals()
    try:
        with stop:
            summary = run_local(config, verbose=args.verbose)
    except DataValidationError as error:
        _fail(str(error), EXIT_BAD_INPUT)
        print_run_report(config)
        return EXIT_BAD_INPUT
    except BaseException as error:
        if stop.received is not None or isinstance(error, KeyboardInterrupt):
            return report_interrupt(config, stop.received or signal.SIGINT, since_ms=stop.started_ms)
        if not isinstance(error, Exception):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"error: the pipeline failed: {type(error).__name__}: {first_line}", file=sys.stderr)
        if args.verbose:
            raise
        return EXIT_FAILED
    report = build_run_report(config)
    rerun.record_completed_run(config, fingerprint, summary.to_json(), report)
    return _finish(summary, report, args)


def _finish(summary: RunSummary, report: str | None, args: argparse.Namespace) -> int:
    for line in summary.lines():
        print(line)
    if report:
        print(f"Report:        {report}")
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(summary.to_json())
    if args.require_blessing and not summary.blessed:
        print("error: the model was not blessed (--require-blessing)", file=sys.stderr)
        return EXIT_NOT_BLESSED
    return EXIT_OK
