"""`python -m pipeline promote --env ENV canary|finish|rollback|apply`: plan, print the plan, apply it.

  canary (--version N | --alias A) --traffic P   finish   rollback   [--dry-run [--plan-file F]]
  apply --plan F: the plan a dry run wrote to F, exactly, or nothing when the registry or the
  endpoint changed since (docs/promotion.md, "Plan, approve, apply").

Exit codes: 0 done, or nothing to do, or --dry-run; 1 a step failed (a failed canary smoke test
restores the traffic before it and undeploys the canary); 2 refused before any change (bad
arguments or config, no credentials, unknown or unblessed version, registry and endpoint disagree,
a canary share too small for the smoke test to reach within endpoint.smoke_test.max_predictions,
a plan file that does not match the registry, the endpoint or the config any more).

--summary-file F appends the smoke test's decision and numbers to F as Markdown (a command
without a smoke test appends nothing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from components.registration.settings import BLESSED_LABEL
from pipeline.config import ConfigError, PipelineConfig, VertexRunnerConfig
from runners.errors import EXIT_FAILED, EXIT_OK, fail
from runners.promotion import plan as plans
from runners.promotion.arguments import OneLineParser, alias, traffic_percent, version_id
from runners.promotion.plan_file import (
    PlanFile,
    PlanFileError,
    Request,
    plan_file,
    read_plan,
    state_changes,
    step_record,
    target_changes,
    target_settings,
    write_plan,
)
from runners.promotion.smoke import (
    RequestPlan,
    SampleError,
    TooManyRequests,
    judge,
    load_instances,
    plan_requests,
    send_requests,
)
from runners.promotion.smoke_summary import append_markdown, result_lines
from runners.promotion.state import State, describe_aliases, describe_traffic
from runners.promotion.vertex import (
    PromotionError,
    Target,
    apply,
    predictor,
    read_state,
    serving_models,
)
from runners.vertex.environment import add_api_endpoint, add_environment, load_environment


def add_promote_parser(commands: argparse._SubParsersAction) -> None:
    promote = commands.add_parser(
        "promote",
        help="move a registered model version into the endpoint's traffic (docs/promotion.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_environment(promote)
    add_api_endpoint(promote)
    promote.set_defaults(handler=promote_command)
    steps = promote.add_subparsers(dest="step", required=True, parser_class=OneLineParser)
    canary = steps.add_parser("canary", help="deploy a version next to production with some traffic, smoke-test it")
    which = canary.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=version_id, help="model version ID, e.g. 7")
    which.add_argument("--alias", type=alias, help="version alias, e.g. candidate (resolved to its version once)")
    canary.add_argument(
        "--traffic",
        type=traffic_percent,
        required=True,
        help="percent of the traffic for the canary (1-99; the first version, with none in production, takes 100)",
    )
    finish = steps.add_parser("finish", help="give the canary 100%%, make it production, undeploy the version before")
    rollback = steps.add_parser(
        "rollback", help="abort a running canary, or give production back to the previous-production version"
    )
    for command in (canary, finish, rollback):
        command.add_argument("--dry-run", action="store_true", help="print the plan only; change nothing")
        command.add_argument(
            "--plan-file",
            type=Path,
            help="with --dry-run: also write the plan as JSON, for `apply --plan` (an alias resolved to its version)",
        )
    apply_plan = steps.add_parser(
        "apply", help="apply a plan file written by --dry-run --plan-file, if nothing changed since it was made"
    )
    apply_plan.add_argument("--plan", type=Path, required=True, help="the plan file")
    for command in (canary, finish, rollback, apply_plan):
        command.add_argument(
            "--summary-file",
            type=Path,
            help="append the smoke test's decision and numbers as Markdown (e.g. $GITHUB_STEP_SUMMARY)",
        )


def promote_command(args: argparse.Namespace) -> int:
    try:
        config, config_file = load_environment(args)
    except ConfigError as error:
        return fail(str(error))
    return run_promote(config, config_file, args)


def run_promote(config: PipelineConfig, config_file: Path, args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not isinstance(config.runner, VertexRunnerConfig) or config.registry is None or config.endpoint is None:
        return fail(f"{config_file}: promote needs runner 'vertex' and the registry and endpoint sections")
    target = Target.of(config)
    from google.api_core import exceptions

    from runners.vertex.client import AUTH_HINT, credential_errors, init_vertex

    try:
        if args.step == "apply":
            planned = read_plan(args.plan)
            request = planned.request
        else:
            planned, request = None, _request(args)
            if args.plan_file and not args.dry_run:
                return fail(f"{args.step} refused: --plan-file needs --dry-run (then `apply --plan` applies it)")
        instances = load_instances(target.endpoint.smoke_test.instances_path) if request.command == "canary" else []
        init_vertex(config.runner, args.api_endpoint)
        with _quiet_sdk():
            if planned is not None:
                return _apply(target, planned, args, instances, out)
            return _promote(target, request, args, instances, out)
    except PlanFileError as error:
        return fail(f"apply refused: {error}")
    except PromotionError as error:  # reading the state: no such model in the registry
        return fail(f"{args.step} refused: {error}")
    except SampleError as error:
        return fail(str(error))
    except credential_errors():
        return fail(AUTH_HINT)
    except exceptions.GoogleAPICallError as error:
        message = " ".join(str(error.message).split()) or type(error).__name__
        return fail(f"Vertex AI refused the request: {error.code} {message}", EXIT_FAILED)


def _request(args: argparse.Namespace) -> Request:
    if args.step != "canary":
        return Request(args.step)
    which = f"--version {args.version}" if args.version else f"--alias {args.alias}"
    return Request("canary", args.version, args.traffic, f"{which} --traffic {args.traffic}")


def _promote(target: Target, request: Request, args: argparse.Namespace, instances: list, out: TextIO) -> int:
    if args.plan_file:
        args.plan_file.unlink(missing_ok=True)  # a refused plan must not leave an older one to apply
    state = read_state(target)
    try:
        request, plan = _plan(state, request, args.alias if request.command == "canary" else None)
        requests = _request_plan(target, plan)
    except plans.NothingToDo as nothing:
        out.write(f"Nothing to do: {nothing}\n")
        if args.plan_file:
            write_plan(args.plan_file, plan_file(request, target, None, state, str(nothing)))
            out.write(f"Plan file: {args.plan_file} (nothing to do)\n")
        return EXIT_OK
    except (plans.Refusal, PromotionError, TooManyRequests) as refusal:
        return fail(f"{request.command} refused: {refusal}")
    _print_plan(plan, requests, out)
    if args.dry_run:
        if args.plan_file:
            write_plan(args.plan_file, plan_file(request, target, plan, state, None))
            out.write(f"Plan file: {args.plan_file} (`promote apply --plan {args.plan_file}` applies exactly this)\n")
        out.write("Dry run: nothing was changed.\n")
        return EXIT_OK
    return _execute(target, plan, requests, instances, args.summary_file, out)


def _apply(target: Target, planned: PlanFile, args: argparse.Namespace, instances: list, out: TextIO) -> int:
    """Applies the planned steps if the target, its settings and the state are those of the plan."""
    request, when = planned.request, planned.planned_at
    differences = target_changes(planned.target, target_settings(target))
    if differences:
        return fail(
            f"apply refused: the plan of {when} was made for another target or other settings "
            f"({'; '.join(differences)}); nothing was changed: plan again with this config"
        )
    state = read_state(target)
    changes = state_changes(planned.state, state)
    if changes:
        return fail(
            f"apply refused: the registry or the endpoint changed since the plan of {when} "
            f"({'; '.join(changes)}); nothing was changed: plan again"
        )
    try:
        _, plan = _plan(state, request, None)
        requests = _request_plan(target, plan)
    except plans.NothingToDo as nothing:
        if planned.steps:
            return fail(f"apply refused: the plan of {when} has steps, but now there is nothing to do: {nothing}")
        out.write(f"Nothing to do: {nothing} (checked: as when planned at {when})\n")
        return EXIT_OK
    except (plans.Refusal, PromotionError, TooManyRequests) as refusal:
        return fail(f"apply refused: {request.command} is refused in the state of the plan of {when}: {refusal}")
    if tuple(step_record(step) for step in plan.steps) != planned.steps:
        return fail(
            f"apply refused: the plan of {when} lists other steps than `{request.command}` plans from the same "
            "state (was it made by another version of this code?); nothing was changed: plan again"
        )
    out.write(f"Applying the plan of {when}: the registry and the endpoint are as it saw them.\n")
    if request.asked:
        plan = replace(plan, notes=(f"requested as `{request.command} {request.asked}`", *plan.notes))
    _print_plan(plan, requests, out)
    return _execute(target, plan, requests, instances, args.summary_file, out)


def _print_plan(plan: plans.Plan, requests: RequestPlan | None, out: TextIO) -> None:
    out.write("\n".join(plan.lines()) + "\n")
    if requests is not None:
        out.write(f"  smoke test: {requests.describe()}\n")


def _execute(
    target: Target, plan: plans.Plan, requests: RequestPlan | None, instances: list, summary: Path | None, out: TextIO
) -> int:
    from google.api_core import exceptions

    for index, step in enumerate(plan.steps, start=1):
        out.write(f"[{index}/{len(plan.steps)}] {step.describe()}\n")
        out.flush()
        if isinstance(step, plans.SmokeTest) and requests is not None:
            return _smoke_test(target, plan, requests, instances, summary, out)
        try:
            apply(target, step)
        except (exceptions.GoogleAPICallError, exceptions.RetryError, PromotionError, OSError) as error:
            return _step_failed(target, plan, step, error, out)
    _report(target, "Done.", out)
    return EXIT_OK


def _plan(state: State, request: Request, asked_alias: str | None) -> tuple[Request, plans.Plan]:
    """The plan of a request in this state, and the request with an alias resolved to its version."""
    if request.command == "finish":
        return request, plans.plan_finish(state)
    if request.command == "rollback":
        return request, plans.plan_rollback(state)
    version = request.version
    if asked_alias is not None:
        version = state.aliases.get(asked_alias)
        if version is None:
            raise PromotionError(f"model {state.model_id} has no version or alias '{asked_alias}'")
        request = Request("canary", version, request.traffic, request.asked)
    assert version is not None and request.traffic is not None
    if version not in state.labels:
        raise PromotionError(f"model {state.model_id} has no version or alias '{version}'")
    labels = state.labels[version]
    if labels.get(BLESSED_LABEL) != "true":
        raise plans.Refusal(
            f"v{version} carries no label {BLESSED_LABEL}=true (labels: {dict(labels) or 'none'}); "
            "only versions the pipeline registered after the Evaluator blessed them can be promoted"
        )
    plan = plans.plan_canary(state, version, request.traffic)
    if asked_alias is not None:
        note = f"alias {asked_alias} names v{version} now; the plan deploys v{version} wherever the alias moves"
        plan = replace(plan, notes=(note, *plan.notes))
    return request, plan


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
    return fail(f"the smoke test of v{requests.canary_version} failed: {result.failures[0]}", EXIT_FAILED)


def _step_failed(target: Target, plan: plans.Plan, step: plans.Step, error: Exception, out: TextIO) -> int:
    first_line = " ".join(str(error).split()) or type(error).__name__
    out.write(f"  FAILED: {type(error).__name__}: {first_line}\n")
    if plan.command == "canary":
        _restore(target, plan, getattr(step, "version", ""), out)
        return fail(f"canary failed at '{step.describe()}': {first_line}", EXIT_FAILED)
    _report(target, "Stopped.", out)
    return fail(
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
