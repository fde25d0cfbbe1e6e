"""The plan file: what `promote ... --dry-run --plan-file F` planned, for `promote apply --plan F`.

promote.yaml plans in a job that needs no approval and can only read, and applies in the approved
job (docs/promotion.md, "Plan, approve, apply"). The file holds the request with an alias resolved
to the version it named, the target and its settings, the state the plan was computed from (the
registry's aliases and every version's labels, the endpoint's deployed models and traffic split),
the steps, and the plan as printed. `apply` reads the registry and the endpoint again and refuses,
before any change, when the target or anything in that state differs: the reviewer approved that
plan, not another one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runners.promotion.plan import CreateEndpoint, Deploy, MoveAliases, Plan, SetTraffic, SmokeTest, Step, Undeploy
from runners.promotion.state import Deployment, State, describe_labels, describe_traffic
from runners.promotion.vertex import Target

FORMAT = "tfx-promotion-plan/1"
COMMANDS = ("canary", "finish", "rollback")


class PlanFileError(ValueError):
    """The plan file cannot be used; the message is one line."""


@dataclass(frozen=True)
class Request:
    """What was asked, with `--alias` resolved: `version` is always a version ID for a canary."""

    command: str
    version: str | None = None
    traffic: int | None = None
    asked: str = ""  # as typed, e.g. "--alias candidate --traffic 10"


@dataclass(frozen=True)
class PlanFile:
    request: Request
    target: Mapping[str, Any]
    state: State
    steps: tuple[Mapping[str, Any], ...]
    lines: tuple[str, ...]
    nothing_to_do: str | None = None  # the reason, when the plan changes nothing
    planned_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def target_settings(target: Target) -> dict[str, Any]:
    """What the plan is for and the settings its steps use: a plan applied with other ones is refused."""
    endpoint = target.endpoint
    return {
        "project": target.runner.project,
        "region": target.runner.region,
        "model": target.registry.model_id,
        "endpoint": target.endpoint_name,
        "machine_type": endpoint.machine_type,
        "min_replicas": endpoint.min_replicas,
        "max_replicas": endpoint.max_replicas,
        "service_account": endpoint.service_account,
        "smoke_test": endpoint.smoke_test.model_dump(mode="json"),
    }


def step_record(step: Step) -> dict[str, Any]:
    """A step as JSON: its kind and fields (traffic splits keyed by version)."""
    kinds = {
        CreateEndpoint: "create-endpoint",
        Deploy: "deploy",
        SetTraffic: "set-traffic",
        Undeploy: "undeploy",
        MoveAliases: "move-aliases",
        SmokeTest: "smoke-test",
    }
    record: dict[str, Any] = {"step": kinds[type(step)]}
    for name, value in asdict(step).items():
        if isinstance(value, tuple):
            value = list(value)
        record[name] = dict(value) if isinstance(value, Mapping) else value
    return record


def plan_file(request: Request, target: Target, plan: Plan | None, state: State, nothing: str | None) -> PlanFile:
    """The file for a plan, or for a state with nothing to do (`plan` None, `nothing` the reason)."""
    steps = tuple(step_record(step) for step in plan.steps) if plan else ()
    lines = tuple(plan.lines()) if plan else (f"Nothing to do: {nothing}",)
    return PlanFile(request, target_settings(target), state, steps, lines, nothing)


def write_plan(path: Path, planned: PlanFile) -> None:
    document = {
        "format": FORMAT,
        "planned_at": planned.planned_at,
        "request": asdict(planned.request),
        "target": dict(planned.target),
        "state": _state_record(planned.state),
        "nothing_to_do": planned.nothing_to_do,
        "steps": [dict(step) for step in planned.steps],
        "lines": list(planned.lines),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def read_plan(path: Path) -> PlanFile:
    """The plan in `path`; PlanFileError (one line) when it is missing, not JSON or not a plan."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise PlanFileError(f"cannot read the plan {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise PlanFileError(f"{path} is not a plan file (not JSON: {error.msg} at line {error.lineno})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PlanFileError(f"{path} is not a plan file of this version ({FORMAT}): plan again")
    try:
        request = Request(**document["request"])
        if request.command not in COMMANDS:
            raise ValueError(f"unknown command {request.command!r}")
        return PlanFile(
            request=request,
            target=dict(document["target"]),
            state=_state_from_record(document["state"]),
            steps=tuple(dict(step) for step in document["steps"]),
            lines=tuple(str(line) for line in document["lines"]),
            nothing_to_do=document["nothing_to_do"],
            planned_at=str(document["planned_at"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise PlanFileError(f"{path} is not a complete plan file ({problem}): plan again") from None


def target_changes(planned: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return [
        f"{name} {planned.get(name)!r} -> {now.get(name)!r}"
        for name in sorted(set(planned) | set(now))
        if planned.get(name) != now.get(name)
    ]


def state_changes(planned: State, now: State) -> list[str]:
    """What differs between the state a plan was computed from and the state now (empty: nothing)."""
    changes: list[str] = []
    if planned.endpoint_exists != now.endpoint_exists:
        changes.append("the endpoint was " + ("created" if now.endpoint_exists else "deleted"))
    for alias in sorted(set(planned.aliases) | set(now.aliases)):
        before, after = planned.aliases.get(alias), now.aliases.get(alias)
        if before != after:
            changes.append(f"alias {alias} {_version(before)} -> {_version(after)}")
    if _models(planned.deployments) != _models(now.deployments):
        models_before, models_after = _describe_models(planned.deployments), _describe_models(now.deployments)
        changes.append(f"deployed models {models_before} -> {models_after}")
    elif planned.traffic() != now.traffic():
        changes.append(f"traffic split {describe_traffic(planned.traffic())} -> {describe_traffic(now.traffic())}")
    for version in sorted(set(planned.labels) | set(now.labels), key=int):
        if version not in planned.labels:
            changes.append(f"new version v{version}")
        elif version not in now.labels:
            changes.append(f"v{version} was deleted")
        elif planned.labels[version] != now.labels[version]:
            labels_before, labels_after = describe_labels(planned.labels[version]), describe_labels(now.labels[version])
            changes.append(f"labels of v{version} {labels_before} -> {labels_after}")
    return changes


def _version(version: str | None) -> str:
    return f"v{version}" if version else "(none)"


def _models(deployments: Sequence[Deployment]) -> set[tuple[str, str, str]]:
    return {(d.deployed_model_id, d.model_id, d.version) for d in deployments}


def _describe_models(deployments: Sequence[Deployment]) -> str:
    shown = [f"v{d.version} ({d.model_id}, deployed model {d.deployed_model_id})" for d in deployments]
    return ", ".join(sorted(shown)) or "none"


def _state_record(state: State) -> dict[str, Any]:
    return {
        "model_id": state.model_id,
        "endpoint": state.endpoint,
        "endpoint_exists": state.endpoint_exists,
        "aliases": dict(state.aliases),
        "deployments": [asdict(deployment) for deployment in state.deployments],
        "labels": {version: dict(labels) for version, labels in state.labels.items()},
    }


def _state_from_record(record: Mapping[str, Any]) -> State:
    return State(
        model_id=str(record["model_id"]),
        endpoint=str(record["endpoint"]),
        endpoint_exists=bool(record["endpoint_exists"]),
        aliases={str(alias): str(version) for alias, version in record["aliases"].items()},
        deployments=tuple(Deployment(**deployment) for deployment in record["deployments"]),
        labels={str(version): dict(labels) for version, labels in record["labels"].items()},
    )
