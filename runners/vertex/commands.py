"""The Vertex AI commands of `python -m pipeline`: compile, submit, schedule.

Each returns an exit code (runners/errors.py); problems are reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.config import ConfigError, PipelineConfig, VertexRunnerConfig, config_name
from pipeline.image import ImageError, require_digest
from runners.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, fail
from runners.vertex.environment import add_api_endpoint, add_environment, load_environment
from runners.vertex.spec import CompiledSpec, SpecError, check_spec_fits, read_spec

BUILD_DIR = Path("build")
DEFAULT_POLL_SECONDS = 30.0


def add_vertex_parsers(commands: argparse._SubParsersAction) -> None:
    compile_ = commands.add_parser("compile", help="compile the pipeline for Vertex AI Pipelines (offline)")
    add_environment(compile_)
    compile_.add_argument("--image", help="pipeline image REGISTRY/REPO/NAME@sha256:<digest> (overrides runner.image)")
    compile_.add_argument("--output", type=Path, help="spec file to write (default: build/<env>/pipeline.json)")
    compile_.set_defaults(handler=compile_command)

    submit = commands.add_parser("submit", help="start a run of a compiled spec on Vertex AI Pipelines")
    add_environment(submit)
    _add_spec(submit)
    submit.add_argument("--wait", action="store_true", help="follow the run until it ends")
    submit.add_argument("--timeout", type=float, help="with --wait: stop following after S seconds (job left running)")
    submit.add_argument(
        "--poll-interval", type=float, default=DEFAULT_POLL_SECONDS, help="seconds between state checks (default 30)"
    )
    submit.add_argument("--summary-file", type=Path, help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    submit.add_argument("--job-id", help="job ID (default: <pipeline>-<config>-<UTC time>-<random>)")
    submit.set_defaults(handler=cloud_command)

    schedule = commands.add_parser("schedule", help="create or update the recurring run from runner.schedule")
    add_environment(schedule)
    _add_spec(schedule)
    schedule.set_defaults(handler=cloud_command)


def _add_spec(command: argparse.ArgumentParser) -> None:
    command.add_argument("--spec", type=Path, help="compiled spec (default: build/<env>/pipeline.json)")
    add_api_endpoint(command)


def _default_spec(args: argparse.Namespace, config_file: Path) -> Path:
    return BUILD_DIR / (args.env or config_name(config_file)) / "pipeline.json"


def compile_command(args: argparse.Namespace) -> int:
    try:
        config, config_file = load_environment(args)
    except ConfigError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    return compile_spec(config, image=args.image, output=args.output or _default_spec(args, config_file))


def compile_spec(config: PipelineConfig, image: str | None, output: Path) -> int:
    """Compiles with `image` (from --image, else runner.image) into `output`; offline."""
    runner = _vertex(config)
    chosen = image or runner.image
    if chosen is None:
        return fail(
            "no pipeline image: pass --image REGISTRY/REPO/NAME@sha256:<digest> (`make image` prints it) "
            "or set runner.image",
            EXIT_BAD_INPUT,
        )
    try:
        require_digest(chosen)
    except ImageError as error:
        return fail(f"--image: {error}" if image else str(error), EXIT_BAD_INPUT)
    config = config.model_copy(update={"runner": runner.model_copy(update={"image": chosen})})

    from runners.vertex.compile import compile_pipeline

    written = compile_pipeline(config, output)
    print(f"Compiled '{config.pipeline_name}' for {runner.project} ({runner.region}) into {written}")
    print(f"  image: {chosen}")
    return EXIT_OK


def cloud_command(args: argparse.Namespace) -> int:
    """`submit` or `schedule` of the compiled spec, after checking it fits the config."""
    from runners.vertex.client import AUTH_HINT, credential_errors, init_vertex

    if args.command == "submit" and args.timeout is not None and not args.wait:
        return fail("--timeout needs --wait", EXIT_BAD_INPUT)
    try:
        config, config_file = load_environment(args)
    except ConfigError as error:
        return fail(str(error), EXIT_BAD_INPUT)
    runner = _vertex(config)
    try:
        spec = read_spec(args.spec or _default_spec(args, config_file))
        check_spec_fits(spec, config.pipeline_name, runner, str(config_file))
    except SpecError as error:
        return fail(str(error), EXIT_BAD_INPUT)

    from google.api_core import exceptions as api_exceptions

    try:
        init_vertex(runner, args.api_endpoint)
        if args.command == "submit":
            return _submit(config, config_file, spec, args)
        return _schedule(config, config_file, spec)
    except credential_errors():
        return fail(AUTH_HINT, EXIT_BAD_INPUT)
    except api_exceptions.GoogleAPICallError as error:
        message = " ".join(str(error.message).split()) or type(error).__name__
        return fail(f"Vertex AI refused the request: {error.code} {message}", EXIT_FAILED)


def _submit(config: PipelineConfig, config_file: Path, spec: CompiledSpec, args: argparse.Namespace) -> int:
    from runners.vertex.labels import git_commit
    from runners.vertex.submit import SubmitOptions, submit

    options = SubmitOptions(
        config_name=config_name(config_file),
        job_id=args.job_id,
        wait=args.wait,
        timeout=args.timeout,
        poll_interval=args.poll_interval,
        summary_file=args.summary_file,
        commit=git_commit(),
    )
    warn_about_placeholders(config)
    result = submit(config, spec, options, sys.stdout)
    if result.timed_out:
        return fail(
            f"--timeout {args.timeout:g} s reached while the run is {result.state}; job left running: {result.job_id}",
            EXIT_TIMEOUT,
        )
    if result.failed:
        return fail(f"pipeline run {result.job_id} {result.state}: {result.error or 'no error reported'}", EXIT_FAILED)
    if args.wait:
        print(f"Pipeline run {result.job_id} SUCCEEDED")
    return EXIT_OK


PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def warn_about_placeholders(config: PipelineConfig) -> None:
    """The template's configs ship a serving image with a placeholder digest: runs work until a
    model is blessed, whose registration then fails. Say so before a run starts."""
    if config.registry is not None and config.registry.serving_image.endswith("@" + PLACEHOLDER_DIGEST):
        print(
            f"warning: registry.serving_image ends in the placeholder digest {PLACEHOLDER_DIGEST[:15]}...: set the "
            "digest of the TF Serving image (docs/vertex.md, 'The serving runtime'), or blessed models will fail to "
            "register"
        )


def _schedule(config: PipelineConfig, config_file: Path, spec: CompiledSpec) -> int:
    from runners.vertex.labels import git_commit
    from runners.vertex.schedule import apply_schedule

    warn_about_placeholders(config)
    from runners.vertex.submit import SubmitOptions, build_job, job_labels

    runner = _vertex(config)
    if runner.schedule is None:
        print(f"No schedule: runner.schedule is not set in {config_file}; nothing to do")
        return EXIT_OK
    name = config_name(config_file)
    options = SubmitOptions(config_name=name, commit=git_commit())
    job = build_job(config, spec, options)
    result = apply_schedule(job, runner, f"{config.pipeline_name}-{name}", job_labels(config, spec, options))
    assert result is not None
    print(f"Schedule {result.action}: {result.name}")
    print(f"  cron '{runner.schedule.cron}', at most {runner.schedule.max_concurrent_runs} run(s) at a time")
    print(f"  state {result.state}")
    return EXIT_OK


def _vertex(config: PipelineConfig) -> VertexRunnerConfig:
    if not isinstance(config.runner, VertexRunnerConfig):
        raise ValueError(f"runner.kind is '{config.runner.kind}'; this command needs runner.kind 'vertex'")
    return config.runner
