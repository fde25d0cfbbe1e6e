"""`python -m pipeline run-local`: checks, the output folder's lock, the re-run shortcut, the run,
its summary and report."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, PipelineConfig, load_config
from pipeline.data import DataError
from runners.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_BLESSED, EXIT_OK, fail
from runners.local.run_lock import LockHolder
from runners.local.run_summary import RunSummary


def add_run_local_parser(commands: argparse._SubParsersAction) -> None:
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
    run.set_defaults(handler=run_local_command)


def run_local_command(args: argparse.Namespace) -> int:
    from runners.local.progress import quiet_libraries

    with contextlib.nullcontext() if args.verbose else quiet_libraries():
        return _run_local_command(args)


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
        from runners.local import preflight

        # Schema, data and output folder, before anything is written.
        preflight.check(config, [BASE_CONFIG, args.config])
    except (ConfigError, DataError) as error:
        return fail(str(error), EXIT_BAD_INPUT)

    from runners.local.run_lock import OutputFolderBusy, RunLock

    # One run per output folder: a second run would train and push too, and report the other's results.
    lock = RunLock(config.runner.output_dir)
    try:
        killed_run = lock.acquire(wait=args.wait_for_lock, on_wait=_print_waiting)
    except OutputFolderBusy as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return fail("interrupted while waiting for the other run to end; nothing was run", 128 + signal.SIGINT)
    try:
        if killed_run is not None:
            print(f"The last run on this output folder was killed ({killed_run.describe()}); cleaning up after it.")
        return _run_local(config, args)
    finally:
        lock.release()


def _print_waiting(holder: LockHolder | None) -> None:
    who = f" ({holder.describe()})" if holder else ""
    print(f"Waiting for the run using this output folder to end{who} ...", flush=True)


def _run_local(config: PipelineConfig, args: argparse.Namespace) -> int:
    from pipeline.data import data_dir
    from runners.local import rerun

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
    from runners.local.interrupt import StopSignals, report_interrupt, settle_abandoned_executions
    from runners.local.run import run_local
    from runners.report.command import build_run_report, print_run_report

    # This process holds the output folder's lock: an execution still RUNNING belongs to a killed run.
    for step in settle_abandoned_executions(config):
        kept = "its partial outputs removed" if step.removed_outputs else "it had written nothing"
        print(f"  {step.component_id} (execution {step.execution_id}) of a killed run: marked {step.state}, {kept}")

    stop = StopSignals()
    try:
        with stop:
            summary = run_local(config, verbose=args.verbose)
    except DataValidationError as error:
        fail(str(error), EXIT_BAD_INPUT)
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
