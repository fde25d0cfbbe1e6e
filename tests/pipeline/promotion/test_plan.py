"""What each promotion command plans for a given registry and endpoint state (no cloud calls)."""

from __future__ import annotations

import pytest

from pipeline.promotion import plan as plans
from pipeline.promotion.plan import (
    CreateEndpoint,
    Deploy,
    MoveAliases,
    NothingToDo,
    Refusal,
    SetTraffic,
    SmokeTest,
    Undeploy,
)
from pipeline.promotion.state import Deployment, State, disagreements

ENDPOINT = "projects/p/locations/us-central1/endpoints/taxi-tips-prod"


def state(traffic: dict[str, int] | None = None, **aliases: str) -> State:
    """traffic=None: the endpoint does not exist; aliases use '_' for '-' (previous_production=...)."""
    deployments = tuple(
        Deployment(f"dm-{version}", "taxi-tips", version, percent) for version, percent in (traffic or {}).items()
    )
    named = {alias.replace("_", "-"): version for alias, version in aliases.items()}
    return State("taxi-tips", ENDPOINT, traffic is not None, named, deployments)


def test_first_canary_creates_the_endpoint_and_takes_all_traffic() -> None:
    plan = plans.plan_canary(state(candidate="1"), "1", 10)
    assert plan.steps == (CreateEndpoint(), Deploy("1", {"1": 100}), SmokeTest("1"))
    assert plan.traffic_after == {"1": 100}
    assert "no version is in production yet" in plan.notes[0]


def test_canary_next_to_production_then_ramp_then_rerun() -> None:
    stable = state({"3": 100}, production="3", candidate="4")
    plan = plans.plan_canary(stable, "4", 10)
    assert plan.steps == (Deploy("4", {"3": 90, "4": 10}), SmokeTest("4"))
    assert plan.aliases_after == stable.aliases  # a canary moves no alias

    running = state({"3": 90, "4": 10}, production="3")
    assert plans.plan_canary(running, "4", 25).steps == (SetTraffic({"3": 75, "4": 25}), SmokeTest("4"))
    assert plans.plan_canary(running, "4", 10).steps == (SmokeTest("4"),)  # only the smoke test again


@pytest.mark.parametrize(
    ("current", "version", "traffic", "message"),
    [
        (state({"3": 100}, production="3"), "3", 10, "already in production"),
        (state({"3": 100}, production="3"), "4", 100, "between 1 and 99"),
        (state({"3": 90, "5": 10}, production="3"), "4", 10, "a canary of v5 is running with 10%"),
        (state({"3": 100, "2": 0}, production="3"), "4", 10, "v2 still deployed with 0%"),
        (state({"3": 0, "4": 100}, production="3"), "4", 10, "interrupted finish"),
        (state({"2": 100, "3": 0}, production="3", previous_production="2"), "4", 10, "rollback to v2 did not"),
        (state({"3": 100}, production="4"), "5", 10, "v4, which is not deployed"),
        (state({"3": 60, "4": 20, "5": 20}, production="3"), "6", 10, "at most one canary"),
        (state({"3": 90}, production="3"), "4", 10, "adds up to 90%"),
    ],
)
def test_canary_refusals(current: State, version: str, traffic: int, message: str) -> None:
    with pytest.raises(Refusal, match=message):
        plans.plan_canary(current, version, traffic)


def test_finish_promotes_the_canary_and_keeps_the_one_it_replaces_as_previous() -> None:
    plan = plans.plan_finish(state({"3": 90, "4": 10}, production="3", previous_production="2", default="3"))
    assert plan.steps == (
        SetTraffic({"3": 0, "4": 100}),
        MoveAliases("3", add=("previous-production",)),
        MoveAliases("4", add=("production", "default")),
        Undeploy("3", {"4": 100}),
    )
    assert plan.aliases_after == {"production": "4", "previous-production": "3", "default": "4"}


def test_finish_continues_where_it_was_interrupted() -> None:
    traffic_moved = state({"3": 0, "4": 100}, production="3", previous_production="3")
    assert plans.plan_finish(traffic_moved).steps == (
        MoveAliases("4", add=("production", "default")),
        Undeploy("3", {"4": 100}),
    )
    aliases_moved = state({"3": 0, "4": 100}, production="4", previous_production="3", default="4")
    assert plans.plan_finish(aliases_moved).steps == (Undeploy("3", {"4": 100}),)
    with pytest.raises(NothingToDo, match="no canary is deployed"):
        plans.plan_finish(state({"4": 100}, production="4", previous_production="3", default="4"))
    with pytest.raises(Refusal, match="rollback to v3 did not complete"):
        plans.plan_finish(state({"3": 100, "4": 0}, production="4", previous_production="3"))


def test_rollback_restores_previous_production() -> None:
    plan = plans.plan_rollback(state({"4": 100}, production="4", previous_production="3", default="4"))
    assert plan.steps == (
        Deploy("3", {"4": 0, "3": 100}),
        MoveAliases("3", add=("production", "default"), remove=("previous-production",)),
        Undeploy("4", {"3": 100}),
    )
    assert plan.aliases_after == {"production": "3", "default": "3"}
    interrupted = state({"3": 100, "4": 0}, production="4", previous_production="3")
    assert plans.plan_rollback(interrupted).steps == plan.steps[1:]
    with pytest.raises(NothingToDo, match="nothing to roll back"):
        plans.plan_rollback(state({"3": 100}, production="3", default="3"))


def test_rollback_during_a_canary_aborts_it() -> None:
    plan = plans.plan_rollback(state({"3": 90, "4": 10}, production="3", previous_production="2"))
    assert plan.steps == (Undeploy("4", {"3": 100}),)
    assert plan.aliases_after == {"production": "3", "previous-production": "2"}
    first = plans.plan_rollback(state({"1": 100}, candidate="1"))
    assert first.steps == (Undeploy("1", {}),)


def test_a_state_made_by_hand_is_reported_as_disagreement() -> None:
    problems = disagreements(
        State(
            "taxi-tips",
            ENDPOINT,
            True,
            {"production": "4"},
            (Deployment("a", "taxi-tips", "3", 100), Deployment("b", "other-model", "1", 0)),
        )
    )
    assert problems == [
        "the endpoint also serves other models: other-model",
        "alias production names v4, which is not deployed on the endpoint",
    ]


def test_plan_lines_name_version_endpoint_and_split() -> None:
    lines = plans.plan_canary(state({"3": 100}, production="3", candidate="4"), "4", 10).lines()
    assert lines[:5] == [
        "Plan: canary of v4 with 10% of the traffic",
        "  model:    taxi-tips",
        f"  endpoint: {ENDPOINT}",
        "  traffic:  v3 100%  ->  v3 90%, v4 10%",
        "  aliases:  production v3, candidate v4  ->  production v3, candidate v4",
    ]
    assert lines[-2:] == [
        "    1. deploy v4 with 10% of the traffic (v3 90%, v4 10%)",
        "    2. smoke-test the endpoint (v4 must answer); on failure restore the traffic before",
    ]
