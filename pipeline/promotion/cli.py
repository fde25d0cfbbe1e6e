"""`python -m pipeline promote --env ENV canary|finish|rollback`: plan, print the plan, apply it.

Exit codes: 0 done, or nothing to do, or --dry-run; 1 a step failed (a failed canary smoke test
restores the traffic before it and undeploys the canary); 2 refused before any change (bad
config, no credentials, unknown or unblessed version, registry and endpoint disagree, a canary
share too small for the smoke test to reach within endpoint.smoke_test.max_predictions).

--summary-file F appends the smoke test's decision and numbers to F as Markdown (a command
without a smoke test appends nothing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from components.registration.settings import BLESSED_LABEL
from pipeline.config import PipelineConfig, VertexRunnerConfig
from pipeline.promotion import plan as plans
from pipeline.promotion.smoke import (
    RequestPlan,
    SampleError,
    TooManyRequests,
    judge,
    load_instances,
    plan_requests,
    send_requests,
)
from pipeline.promotion.smoke_summary import append_markdown, result_lines
from pipeline.promotion.state import State, describe_aliases, describe_traffic
from pipeline.promotion.vertex import (
    PromotionError,
    Target,
    apply,
    predictor,
    read_state,
    serving_models,
    version_details,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2


def add_promote_parser(
    commands: argparse._SubParsersAction, add_environment: Callable[[argparse.ArgumentParser], None]
) -> None:
    promote = commands.add_parser(
        "promote",
        help="move a registered model version into the endpoint's traffic (docs/promotion.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_environment(promote)
    promote.add_argument(
        "--api-endpoint",
        help="talk to this Vertex AI endpoint with anonymous credentials (local stand-ins, e.g. http://127.0.0.1:8765)",
    )
    steps = promote.add_subparsers(dest="step", required=True)
    canary = steps.add_parser("canary", help="deploy a version next to production with some traffic, smoke-test it")
    which = canary.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="model version ID, e.g. 7")
    which.add_argument("--alias", help="version alias, e.g. candidate")
    canary.add_argument("--traffic", type=int, required=True, help="percent of the traffic for the canary (1-99)")
    finish = steps.add_parser("finish", help="give the canary 100%%, make it production, undeploy the version before")
    rollback = steps.add_parser(
        "rollback", help="abort a running canary, or give production back to the previous-production version"
    )
    for command in (canary, finish, rollback):
        command.add_argument("--dry-run", action="store_true", help="print the plan only; change nothing")
        command.add_argument(
            "--summary-file",
            type=Path,
            help="append the smoke test's decision and numbers as Markdown (e.g. $GITHUB_STEP_SUMMARY)",
        )


def run_promote(config: PipelineConfig, config_file: Path, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not isinstance(config.runner, VertexRunnerConfig) or config.registry is None or config.endpoint is None:
        return _fail(f"{config_file}: promote needs runner 'vertex' and the registry and endpoint sections")
    target = Target.of(config)
    from google.api_core import exceptions

    from pipeline.vertex.client import AUTH_HINT, credential_errors, init_vertex

    try:
        instances = load_instances(target.endpoint.smoke_test.instances_path) if args.step == "canary" else []
        init_vertex(config.runner, args.api_endpoint)
        with _quiet_sdk():
            return _promote(target, args, instances, out)
    except SampleError as error:
        return _fail(str(error))
    except credential_errors():
        return _fail(AUTH_HINT)
    except exceptions.GoogleAPICallError as error:
        message = " ".join(str(error.message).split()) or type(error).__name__
        return _fail(f"Vertex AI refused the request: {error.code} {message}", EXIT_FAILED)


def _promote(target: Target, args: argparse.Namespace, instances: list, out: TextIO) -> int:
    from google.api_core import exceptions

    try:
        state = read_state(target)
        plan = _plan(target, state, args)
        requests = _request_plan(target, plan)
    except plans.NothingToDo as nothing:
        out.write(f"Nothing to do: {nothing}\n")
        return EXIT_OK
    except (plans.Refusal, PromotionError, TooManyRequests) as refusal:
        return _fail(f"{args.step} refused: {refusal}")
    out.write("\n".join(plan.lines()) + "\n")
    if requests is not None:
        out.write(f"  smoke test: {requests.describe()}\n")
    if args.dry_run:
        out.write("Dry run: nothing was changed.\n")
        return EXIT_OK
    for index, step in enumerate(plan.steps, start=1):
        out.write(f"[{index}/{len(plan.steps)}] {step.describe()}\n")
        out.flush()
        if isinstance(step, plans.SmokeTest) and requests is not None:
            return _smoke_test(target, plan, requests, instances, args.summary_file, out)
        try:
            apply(target, step)
        except (exceptions.GoogleAPICallError, exceptions.RetryError, PromotionError, OSError) as error:
            return _step_failed(target, plan, step, error, out)
    _report(target, "Done.", out)
    return EXIT_OK


def _plan(target: Target, state: State, args: argparse.Namespace) -> plans.Plan:
    if args.step == "finish":
        return plans.plan_finish(state)
    if args.step == "rollback":
        return plans.plan_rollback(state)
    details = version_details(target, args.version or args.alias)
    if details.labels.get(BLESSED_LABEL) != "true":
        raise plans.Refusal(
            f"v{details.version} carries no label {BLESSED_LABEL}=true (labels: {dict(details.labels) or 'none'}); "
            "only versions the pipeline registered after the Evaluator blessed them can be promoted"
        )
    return plans.plan_canary(state, details.version, args.traffic)


def _request_plan(target: Target, plan: plans.Plan) -> RequestPlan | None:
    """How many requests the plan's smoke test sends (None without one); raises TooManyRequests."""
    step = next((step for step in plan.steps if isinstance(step, plans.SmokeTest)), None)
    return plan_requests(target.endpoint.smoke_test, step.version, step.traffic) if step else None


def _smoke_test(
    target: Target, plan: plans.Plan, requests: RequestPlan, instances: list, summary: Path | None, out: TextIO
) -> int:
    config = target.endpoint.smoke_test
    endpoint, predict = predictor(target)
    outcomes = send_requests(predict, instances, requests.requests)
    result = judge(outcomes, config, requests, serving_models(endpoint))
    out.write("".join(f"  {line}\n" for line in result_lines(result)))
    if summary is not None:
        try:
            append_markdown(summary, result)
        except OSError as error:  # the report is extra: the decision and the restore must not depend on it
            out.write(f"  warning: cannot append the smoke test to {summary}: {error.strerror or error}\n")
    if result.passed:
        _report(target, "Done: the canary passed the smoke test.", out)
        return EXIT_OK
    for failure in result.failures:
        out.write(f"  FAILED: {failure}\n")
    _restore(target, plan, requests.canary_version, out)
    return _fail(f"the smoke test of v{requests.canary_version} failed: {result.failures[0]}", EXIT_FAILED)


def _step_failed(target: Target, plan: plans.Plan, step: plans.Step, error: Exception, out: TextIO) -> int:
    first_line = " ".join(str(error).split()) or type(error).__name__
    out.write(f"  FAILED: {type(error).__name__}: {first_line}\n")
    if plan.command == "canary":
        _restore(target, plan, getattr(step, "version", ""), out)
        return _fail(f"canary failed at '{step.describe()}': {first_line}", EXIT_FAILED)
    _report(target, "Stopped.", out)
    return _fail(
        f"{plan.command} failed at '{step.describe()}': {first_line}; run `{plan.command}` again to complete it "
        "(it plans only what is left)",
        EXIT_FAILED,
    )


def _restore(target: Target, plan: plans.Plan, version: str, out: TextIO) -> None:
    """Back to the traffic split before the canary; the canary is undeployed if this run deployed it."""
    before = plan.before.traffic()
    now = read_state(target)
    deployed_here = version not in before and now.deployment(version) is not None
    steps: list[plans.Step] = []
    if deployed_here:
        steps.append(plans.Undeploy(version, before))
    elif now.traffic() != before and before:
        steps.append(plans.SetTraffic(before))
    for restore in steps:
        out.write(f"  restoring: {restore.describe()}\n")
        apply(target, restore)
    if not deployed_here and now.deployment(version) is not None:
        out.write(f"  v{version} was deployed before this command and stays; `rollback` undeploys it\n")
    _report(target, "Restored." if steps else "Unchanged.", out)


def _report(target: Target, heading: str, out: TextIO) -> None:
    state = read_state(target)
    out.write(
        f"{heading} Traffic: {describe_traffic(state.traffic(), state.endpoint_exists)}; "
        f"aliases: {describe_aliases(state.aliases)}\n"
    )


def _fail(message: str, status: int = EXIT_REFUSED) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """The SDK logs every call at INFO on stdout, from loggers set to INFO one per module; the plan
    and step lines say it better."""
    names = [name for name in logging.Logger.manager.loggerDict if name.startswith("google.cloud.aiplatform")]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
