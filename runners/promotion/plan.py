"""What `canary`, `finish` and `rollback` change, computed from the current state alone.

A plan lists the traffic before and after, the alias moves and the steps. Because it is computed
from the state, running a command again after it completed plans nothing, and running it again
after it was interrupted plans only what is left. Traffic splits in steps are keyed by version;
the deployed model IDs are looked up when a step runs (a rollback deploys a new one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from runners.promotion.state import (
    DEFAULT,
    PREVIOUS,
    PRODUCTION,
    State,
    describe_aliases,
    describe_labels,
    describe_traffic,
    disagreements,
)


class Refusal(Exception):
    """The command cannot act on this state; the message says why and how to resolve it."""


class NothingToDo(Refusal):
    """The state is already what the command would make it: not an error (exit 0)."""


@dataclass(frozen=True)
class CreateEndpoint:
    def describe(self) -> str:
        return "create the endpoint"


@dataclass(frozen=True)
class Deploy:
    version: str
    traffic: Mapping[str, int]  # version -> percent after the deploy, the new version included

    def describe(self) -> str:
        share = self.traffic[self.version]
        return f"deploy v{self.version} with {share}% of the traffic ({describe_traffic(self.traffic)})"


@dataclass(frozen=True)
class SetTraffic:
    traffic: Mapping[str, int]

    def describe(self) -> str:
        return f"set the traffic split to {describe_traffic(self.traffic)}"


@dataclass(frozen=True)
class Undeploy:
    version: str
    traffic: Mapping[str, int]  # the split left afterwards (empty when it is the last deployment)

    def describe(self) -> str:
        return f"undeploy v{self.version}" + (f" (leaving {describe_traffic(self.traffic)})" if self.traffic else "")


@dataclass(frozen=True)
class MoveAliases:
    version: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"give v{self.version} {', '.join(self.add)}" if self.add else ""]
        parts.append(f"take {', '.join(self.remove)} from v{self.version}" if self.remove else "")
        return "; ".join(part for part in parts if part)


@dataclass(frozen=True)
class SmokeTest:
    version: str
    traffic: int  # the canary's percent, which sets how many requests the smoke test sends

    def describe(self) -> str:
        return (
            f"smoke-test the endpoint (v{self.version} at {self.traffic}% must answer); "
            "on failure restore the traffic before"
        )


Step = CreateEndpoint | Deploy | SetTraffic | Undeploy | MoveAliases | SmokeTest


@dataclass(frozen=True)
class Plan:
    command: str
    summary: str
    before: State
    traffic_after: Mapping[str, int]
    aliases_after: Mapping[str, str]
    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps

    @property
    def deployed_versions(self) -> list[str]:
        """Versions this plan deploys: what a reviewer checks the labels (run, commit) of."""
        return [step.version for step in self.steps if isinstance(step, Deploy)]

    def lines(self) -> list[str]:
        before = self.before
        lines = [
            f"Plan: {self.summary}",
            f"  model:    {before.model_id}",
            f"  endpoint: {before.endpoint}",
            f"  traffic:  {describe_traffic(before.traffic(), before.endpoint_exists)}"
            f"  ->  {describe_traffic(self.traffic_after, before.endpoint_exists or bool(self.traffic_after))}",
            f"  aliases:  {describe_aliases(before.aliases)}  ->  {describe_aliases(self.aliases_after)}",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [
            f"  v{version} labels: {describe_labels(before.labels[version])}"
            for version in self.deployed_versions
            if version in before.labels
        ]
        if self.steps:
            lines.append("  steps:")
            lines += [f"    {index}. {step.describe()}" for index, step in enumerate(self.steps, start=1)]
        else:
            lines.append("  steps:    none, nothing to change")
        return lines


def plan_canary(state: State, version: str, traffic: int) -> Plan:
    """Deploy `version` next to production with `traffic`%, then smoke-test the endpoint. The first
    version, with nothing in production yet, takes all the traffic whatever the (valid) share."""
    if not 1 <= traffic <= 99:
        raise Refusal(f"--traffic must be a whole number from 1 to 99 (got {traffic})")
    _refuse_disagreement(state)
    production = state.production
    if version == production:
        raise Refusal(f"v{version} is already in production; a canary needs another version")
    _refuse_leftovers(state, "canary")
    for canary in state.canaries:
        if canary.version != version:
            raise Refusal(_running_canary(state, canary.version, canary.traffic))
    current = state.deployment(version)
    production_traffic = state.traffic().get(production, 0) if production else 0
    if production and current and production_traffic == 0:
        raise Refusal(_running_canary(state, version, current.traffic))
    notes: list[str] = []
    if production is None:
        after = {version: 100}
        notes.append(f"no version is in production yet: v{version} gets all the traffic, not {traffic}%")
    else:
        after = {production: 100 - traffic, version: traffic}
    steps: list[Step] = []
    if not state.endpoint_exists:
        steps.append(CreateEndpoint())
    if current is None:
        steps.append(Deploy(version, after))
    elif state.traffic() != after:
        steps.append(SetTraffic(after))
    else:
        notes.append(f"v{version} already receives {traffic}%: only the smoke test runs again")
    steps.append(SmokeTest(version, after[version]))
    summary = f"canary of v{version} with {after[version]}% of the traffic"
    return Plan("canary", summary, state, after, dict(state.aliases), tuple(steps), tuple(notes))


def plan_finish(state: State) -> Plan:
    """Give the canary all the traffic, make it production, undeploy the version it replaces."""
    _refuse_disagreement(state)
    production, previous = state.production, state.previous
    aliases = dict(state.aliases)
    if not state.canaries:
        steps = _cleanup(state, aliases)
        if not steps:
            raise _nothing("finish", state, "no canary is deployed")
        summary = "clean up after an interrupted promotion"
        return Plan("finish", summary, state, _without_leftovers(state), aliases, tuple(steps))
    canary = state.canaries[0]
    if _interrupted_rollback(state):
        raise Refusal(
            f"a rollback to v{canary.version} did not complete (it serves 100% while alias {PRODUCTION} still "
            f"names v{production}): run `rollback` again to complete it"
        )
    after = {canary.version: 100}
    steps: list[Step] = []
    if canary.traffic != 100:
        steps.append(SetTraffic({**{d.version: 0 for d in state.deployments}, canary.version: 100}))
    if production and previous != production:
        steps.append(MoveAliases(production, add=(PREVIOUS,)))
        aliases[PREVIOUS] = production
    missing = tuple(alias for alias in (PRODUCTION, DEFAULT) if state.aliases.get(alias) != canary.version)
    if missing:
        steps.append(MoveAliases(canary.version, add=missing))
        aliases.update(dict.fromkeys(missing, canary.version))
    steps += [Undeploy(d.version, after) for d in state.deployments if d.version != canary.version]
    return Plan("finish", f"make v{canary.version} production", state, after, aliases, tuple(steps))


def plan_rollback(state: State) -> Plan:
    """Abort a running canary, or give production back to the version under `previous-production`."""
    _refuse_disagreement(state)
    production, previous = state.production, state.previous
    aliases = dict(state.aliases)
    if state.canaries and not _interrupted_rollback(state):
        canary = state.canaries[0]
        after = {production: 100} if production else {}
        steps: list[Step] = [Undeploy(canary.version, after)]
        steps += [Undeploy(d.version, after) for d in state.leftovers if d.version != canary.version]
        if production and previous == production:
            steps.append(MoveAliases(production, remove=(PREVIOUS,)))
            aliases.pop(PREVIOUS)
        summary = f"abort the canary of v{canary.version}" + (f": v{production} gets 100% again" if production else "")
        return Plan("rollback", summary, state, after, aliases, tuple(steps))
    if previous is None or previous == production:
        steps = _cleanup(state, aliases)
        if not steps:
            raise _nothing("rollback", state, f"no version carries alias {PREVIOUS}")
        summary = "clean up after an interrupted promotion (nothing to roll back to)"
        return Plan("rollback", summary, state, _without_leftovers(state), aliases, tuple(steps))
    after = {previous: 100}
    steps = []
    restored = state.deployment(previous)
    if restored is None:
        steps.append(Deploy(previous, {**{d.version: 0 for d in state.deployments}, previous: 100}))
    elif restored.traffic != 100:
        steps.append(SetTraffic({**{d.version: 0 for d in state.deployments}, previous: 100}))
    steps.append(MoveAliases(previous, add=(PRODUCTION, DEFAULT), remove=(PREVIOUS,)))
    aliases.update({PRODUCTION: previous, DEFAULT: previous})
    aliases.pop(PREVIOUS)
    steps += [Undeploy(d.version, after) for d in state.deployments if d.version != previous]
    summary = f"give production back to v{previous}" + (f" (replacing v{production})" if production else "")
    return Plan("rollback", summary, state, after, aliases, tuple(steps))


def _interrupted_rollback(state: State) -> bool:
    """The previous production version serves 100% while production still names another one."""
    canary = state.canaries[0] if state.canaries else None
    return bool(canary and state.production and canary.version == state.previous and canary.traffic == 100)


def _cleanup(state: State, aliases: dict[str, str]) -> list[Step]:
    """Undeploy 0% leftovers; drop `previous-production` from the production version itself."""
    steps: list[Step] = [Undeploy(d.version, _without_leftovers(state)) for d in state.leftovers]
    if state.production and state.previous == state.production:
        steps.append(MoveAliases(state.production, remove=(PREVIOUS,)))
        aliases.pop(PREVIOUS)
    return steps


def _without_leftovers(state: State) -> dict[str, int]:
    return {d.version: d.traffic for d in state.deployments if d not in state.leftovers}


def _refuse_disagreement(state: State) -> None:
    problems = disagreements(state)
    if problems:
        raise Refusal(
            "the endpoint's live traffic does not match the registry aliases: "
            + "; ".join(problems)
            + ". Make them agree by hand first (docs/promotion.md, 'Recover'): set the endpoint's traffic split "
            f"or undeploy models in the console or with `gcloud ai endpoints`, or move alias {PRODUCTION} to "
            "the version that serves the traffic"
        )


def _refuse_leftovers(state: State, command: str) -> None:
    if state.leftovers:
        versions = ", ".join(f"v{d.version}" for d in state.leftovers)
        raise Refusal(
            f"{versions} still deployed with 0% of the traffic (an interrupted finish or rollback); "
            f"run `finish` (or `rollback`) again to complete it before a {command}"
        )


def _running_canary(state: State, version: str, traffic: int) -> str:
    if _interrupted_rollback(state):
        return f"a rollback to v{version} did not complete: run `rollback` again to complete it"
    if traffic == 100 and state.production:
        return f"v{version} already serves 100% (an interrupted finish): run `finish` to complete it, or `rollback`"
    return f"a canary of v{version} is running with {traffic}% of the traffic: `finish` or `rollback` it first"


def _nothing(command: str, state: State, why: str) -> NothingToDo:
    verb = {"rollback": "roll back"}.get(command, command)
    return NothingToDo(
        f"nothing to {verb}: {why}; traffic {describe_traffic(state.traffic(), state.endpoint_exists)}, "
        f"aliases {describe_aliases(state.aliases)}"
    )
