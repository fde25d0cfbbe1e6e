"""What each promotion command plans for a given registry and endpoint state, and what the canary's
smoke test sends and decides from given answers (no cloud calls)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from components.serving_checks import Task
from pipeline.deploy_config import SmokeTestConfig
from runners.promotion import plan as plans
from runners.promotion.plan import (
    CreateEndpoint,
    Deploy,
    MoveAliases,
    NothingToDo,
    Refusal,
    SetTraffic,
    SmokeTest,
    Undeploy,
)
from runners.promotion.sampling import miss_probability, percentile, requests_needed
from runners.promotion.smoke import (
    Outcome,
    RequestPlan,
    Serving,
    SmokeResult,
    TooManyRequests,
    judge,
    plan_requests,
    send_requests,
)
from runners.promotion.smoke_summary import result_lines, result_markdown
from runners.promotion.state import Deployment, State, disagreements

MODEL = "my-model"  # the states here are made up: any registry model
ENDPOINT = "projects/p/locations/us-central1/endpoints/my-model-prod"


def state(traffic: dict[str, int] | None = None, **aliases: str) -> State:
    """traffic=None: the endpoint does not exist; aliases use '_' for '-' (previous_production=...)."""
    deployments = tuple(
        Deployment(f"dm-{version}", MODEL, version, percent) for version, percent in (traffic or {}).items()
    )
    named = {alias.replace("_", "-"): version for alias, version in aliases.items()}
    return State(MODEL, ENDPOINT, traffic is not None, named, deployments)


def test_first_canary_creates_the_endpoint_and_takes_all_traffic() -> None:
    plan = plans.plan_canary(state(candidate="1"), "1", 10)
    assert plan.steps == (CreateEndpoint(), Deploy("1", {"1": 100}), SmokeTest("1", 100))
    assert plan.traffic_after == {"1": 100}
    assert "no version is in production yet" in plan.notes[0]


def test_canary_next_to_production_then_ramp_then_rerun() -> None:
    stable = state({"3": 100}, production="3", candidate="4")
    plan = plans.plan_canary(stable, "4", 10)
    assert plan.steps == (Deploy("4", {"3": 90, "4": 10}), SmokeTest("4", 10))
    assert plan.aliases_after == stable.aliases  # a canary moves no alias

    running = state({"3": 90, "4": 10}, production="3")
    assert plans.plan_canary(running, "4", 25).steps == (SetTraffic({"3": 75, "4": 25}), SmokeTest("4", 25))
    assert plans.plan_canary(running, "4", 10).steps == (SmokeTest("4", 10),)  # only the smoke test again


@pytest.mark.parametrize(
    ("current", "version", "traffic", "message"),
    [
        (state({"3": 100}, production="3"), "3", 10, "already in production"),
        (state({"3": 100}, production="3"), "4", 100, "from 1 to 99 \\(got 100\\)"),
        # The first version takes all the traffic, but only for a share that would be valid later.
        (state(candidate="1"), "1", -5, "from 1 to 99 \\(got -5\\)"),
        (state(candidate="1"), "1", 0, "from 1 to 99 \\(got 0\\)"),
        (state({}, candidate="1"), "1", 101, "from 1 to 99 \\(got 101\\)"),
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
            MODEL,
            ENDPOINT,
            True,
            {"production": "4"},
            (Deployment("a", MODEL, "3", 100), Deployment("b", "other-model", "1", 0)),
        )
    )
    assert problems == [
        "the endpoint also serves other models: other-model",
        "alias production names v4, which is not deployed on the endpoint",
    ]


def test_plan_lines_show_the_labels_of_the_versions_it_deploys() -> None:
    labelled = State(
        MODEL,
        ENDPOINT,
        True,
        {"production": "3", "candidate": "4"},
        (Deployment("dm-3", MODEL, "3", 100),),
        {"3": {"blessed": "true"}, "4": {"blessed": "true", "git_commit": "abc123", "pipeline_job": "run-4"}},
    )
    lines = plans.plan_canary(labelled, "4", 10).lines()
    assert "  v4 labels: blessed=true, git_commit=abc123, pipeline_job=run-4" in lines
    assert not any(line.startswith("  v3 labels") for line in lines)  # v3 is not deployed by this plan


def test_plan_lines_name_version_endpoint_and_split() -> None:
    lines = plans.plan_canary(state({"3": 100}, production="3", candidate="4"), "4", 10).lines()
    assert lines[:5] == [
        "Plan: canary of v4 with 10% of the traffic",
        f"  model:    {MODEL}",
        f"  endpoint: {ENDPOINT}",
        "  traffic:  v3 100%  ->  v3 90%, v4 10%",
        "  aliases:  production v3, candidate v4  ->  production v3, candidate v4",
    ]
    assert lines[-2:] == [
        "    1. deploy v4 with 10% of the traffic (v3 90%, v4 10%)",
        "    2. smoke-test the endpoint (v4 at 10% must answer); on failure restore the traffic before",
    ]


# ---- the smoke test's statistics ----------------------------------------------------------------

DEFAULTS = SmokeTestConfig()  # configs/vertex-*.yaml use these, with their own max_latency_ms
PRODUCTION = Serving("dm-3", "3", 90)
CANARY = Serving("dm-4", "4", 10)


@pytest.mark.parametrize(("share", "requests"), [(0.01, 688), (0.05, 135), (0.10, 66), (0.50, 10)])
def test_requests_to_reach_the_canary_once_follow_the_closed_form(share: float, requests: int) -> None:
    assert requests_needed(share, 1, 0.001) == requests == math.ceil(math.log(0.001) / math.log(1 - share))


@pytest.mark.parametrize("needed", [1, 2, 3])
@pytest.mark.parametrize("share", [0.01, 0.05, 0.1, 0.37, 0.5, 0.9])
def test_requests_needed_is_the_fewest_that_keep_the_miss_probability_in_bounds(share: float, needed: int) -> None:
    requests = requests_needed(share, needed, 0.001)
    assert miss_probability(requests, share, needed) <= 0.001 < miss_probability(requests - 1, share, needed)


def test_miss_probabilities_of_the_old_fixed_50_requests() -> None:
    assert miss_probability(50, 0.01, 1) == pytest.approx(0.99**50)  # 60%: a 1% canary was mostly missed
    assert miss_probability(50, 0.10, 1) == pytest.approx(0.0052, abs=1e-4)
    # Two answers needed (one warm-up, one timed): P(0) + P(1) of binomial(89, 10%).
    assert miss_probability(89, 0.1, 2) == pytest.approx(0.9**89 + 89 * 0.1 * 0.9**88)
    assert (miss_probability(3, 1.0, 3), miss_probability(2, 1.0, 3), requests_needed(1.0, 2, 0.001)) == (0, 1, 2)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile(list(range(100, 0, -1)), 95) == 95
    assert percentile([float(value) for value in range(1, 21)], 95) == 19  # 19 of 20 are at most 19
    assert percentile([5.0, 1.0, 9.0], 95) == 9.0  # fewer than 20 values: p95 is the maximum
    assert (percentile([3.0, 1.0, 2.0], 50), percentile([3.0, 1.0], 100), percentile([], 95)) == (2.0, 3.0, None)


@pytest.mark.parametrize(
    ("percent", "requests", "canary_requests"),
    [(10, 89, 89), (5, 181, 181), (1, 920, 920), (50, 50, 14), (100, 50, 2)],
)
def test_the_request_count_covers_the_canary_share_and_the_minimum(
    percent: int, requests: int, canary_requests: int
) -> None:
    plan = plan_requests(DEFAULTS, "4", percent)
    assert (plan.requests, plan.canary_requests, plan.needed_answers) == (requests, canary_requests, 2)
    assert plan.miss_probability <= 0.001
    assert plan.describe().startswith(f"{requests} predict requests: at least 50, and enough that v4 at {percent}%")


def test_a_canary_share_that_needs_more_than_max_predictions_is_refused() -> None:
    config = SmokeTestConfig(max_predictions=500)
    with pytest.raises(TooManyRequests) as refusal:
        plan_requests(config, "4", 1)
    message = str(refusal.value)
    assert message.startswith("at 1% of the traffic the smoke test needs 920 predict requests for v4 to answer 2")
    capped = miss_probability(500, 0.01, 2)  # 4%
    assert f"max_predictions (500), with which the canary would be missed with probability {capped:.2%}" in message
    assert plan_requests(config, "4", 2).requests == 458  # 2% fits


@dataclass(frozen=True)
class Answer:
    """What `predict` gives the smoke test: an `aiplatform.models.Prediction`'s two fields it reads."""

    predictions: list[Any]
    deployed_model_id: str


def test_send_requests_records_who_answered_how_fast_and_what_failed() -> None:
    replies: list[Any] = [Answer([[0.5]], "dm-3"), RuntimeError("503 unavailable"), Answer([[1.5]], "dm-4")]
    ticks = iter([0.0, 0.010, 1.0, 1.250, 2.0, 2.030])

    def predict(instances: Sequence[dict[str, Any]]) -> Answer:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    outcomes = send_requests(predict, [{"amount": 1.0}], 3, clock=lambda: next(ticks), task=Task.binary())

    assert [(round(o.latency_ms), o.deployed_model_id) for o in outcomes] == [(10, "dm-3"), (250, None), (30, "dm-4")]
    assert outcomes[1].error == "RuntimeError: 503 unavailable"
    assert outcomes[2].schema_problems == ("prediction 0: outside [0, 1]: 1.5",)


def answers(deployed: Serving, *latencies_ms: float) -> list[Outcome]:
    return [Outcome(latency, deployed.deployed_model_id) for latency in latencies_ms]


def decide(outcomes: Sequence[Outcome], **config: Any) -> SmokeResult:
    settings = SmokeTestConfig(**{"min_predictions": 1, **config})
    return judge(outcomes, settings, plan_requests(settings, "4", 10), [PRODUCTION, CANARY])


def test_warm_up_answers_are_left_out_of_each_models_latency() -> None:
    # Each model's first answer pays a cold start; the canary's comes after production's.
    outcomes = [*answers(PRODUCTION, 3000, 20, 30), *answers(CANARY, 5000, 40), *answers(PRODUCTION, 25)]

    passed = decide(outcomes, warmup_answers=1, max_latency_ms=100)
    assert passed.passed, passed.failures
    production, canary = passed.models
    assert (production.warmup_ms, production.timed_ms) == ((3000,), (20, 30, 25))
    assert (canary.label, canary.warmup_ms, canary.timed_ms, canary.latency(95)) == ("v4 (canary)", (5000,), (40,), 40)

    failed = decide(outcomes, warmup_answers=0, max_latency_ms=100)
    assert failed.failures == (
        "v3: p95 latency 3000 ms over 4 answers after 0 warm-up, above 100 ms",
        "v4 (canary): p95 latency 5000 ms over 2 answers after 0 warm-up, above 100 ms",
    )


def test_latency_is_judged_on_the_percentile_not_the_slowest_answer() -> None:
    one_slow = [*answers(PRODUCTION, 10, *[20] * 19, 900), *answers(CANARY, 10, 20)]
    assert decide(one_slow, max_latency_ms=100).passed  # 19 of the 20 timed answers within 100 ms
    two_slow = [*answers(PRODUCTION, 10, *[20] * 18, 900, 900), *answers(CANARY, 10, 20)]
    assert decide(two_slow, max_latency_ms=100).failures == (
        "v3: p95 latency 900 ms over 20 answers after 1 warm-up, above 100 ms",
    )
    assert decide(two_slow, max_latency_ms=100, latency_percentile=90).passed


def test_a_canary_with_too_few_answers_fails_with_the_odds_of_that() -> None:
    outcomes = [*answers(PRODUCTION, *[10] * 88), *answers(CANARY, 10)]  # one answer: its warm-up only

    result = decide(outcomes)

    chance = miss_probability(89, 0.1, 2)  # P(at most 1 answer of 89 at 10%)
    assert result.failures == (
        "the canary v4 (deployed model dm-4) answered 1 of 89 requests, fewer than the 2 it needs "
        f"(1 warm-up + 1 timed); with 10% of the traffic that happens with probability {chance:.2%}: "
        "check the endpoint's traffic split, then run `canary` again",
    )
    missing = judge(answers(PRODUCTION, 10), DEFAULTS, plan_requests(DEFAULTS, "4", 10), [PRODUCTION])
    assert missing.failures == ("v4 is not among the deployed models of the endpoint",)


def test_errors_count_over_all_requests_sent() -> None:
    failed = [Outcome(5, error="BadRequest: 400 the model refuses")] * 2
    outcomes = [*answers(PRODUCTION, *[10] * 10), *answers(CANARY, 10, 10), *failed]

    assert decide(outcomes, max_error_rate=0.2).passed  # 2 of 14
    assert decide(outcomes, max_error_rate=0.1).failures == (
        "2 of 14 requests failed, error rate 14.3% above 10.0% (first: BadRequest: 400 the model refuses)",
    )


def test_answers_outside_the_schema_fail_and_name_the_model() -> None:
    wrong = Outcome(10, "dm-4", schema_problems=("prediction 0: outside [0, 1]: 1.5",))
    result = decide([*answers(PRODUCTION, 10, 10), *answers(CANARY, 10), wrong])
    assert result.failures == ("response schema: prediction 0: outside [0, 1]: 1.5 (answered by v4 (canary))",)


def test_the_report_shows_the_numbers_behind_the_decision() -> None:
    outcomes = [
        *answers(PRODUCTION, 800, *[10] * 7, *[20] * 71),
        *answers(CANARY, 1200, *[30] * 8),
        Outcome(5, error="ServiceUnavailable: 503"),
    ]
    settings = SmokeTestConfig(max_error_rate=0.05)
    result = judge(outcomes, settings, plan_requests(settings, "4", 10), [PRODUCTION, CANARY])

    assert result.passed
    lines = result_lines(result)
    assert lines[0] == (
        "smoke test: passed; sent 89 requests (at least 50; v4 at 10% needs 2 answers, 1 warm-up + 1 timed: "
        f"missed with probability {miss_probability(89, 0.1, 2):.2%}, limit 0.10%)"
    )
    assert lines[1] == "  errors: 1 of 89 (1.1%, limit 5.0%)"
    assert lines[2] == (
        "  v3, deployed model dm-3: 79 answers, 89.8% of the answers (configured 90%); p95 20 ms over 78 "
        "after 1 warm-up excluded (800 ms), max 20 ms; limit 2000 ms"
    )
    assert lines[3].startswith("  v4 (canary), deployed model dm-4: 9 answers, 10.2% of the answers (configured 10%)")
    markdown = result_markdown(result)
    assert markdown.startswith("### Smoke test of v4 (10% of the traffic): passed\n")
    assert "| Requests sent | 89 (at least 50; the canary's share alone needs 89) |" in markdown
    assert "| Errors | 1 of 89: 1.1% (limit 5.0%) |" in markdown
    assert "| dm-3 | v3 | 90% | 79 | 89.8% | 1 (800 ms) | 20 ms | 20 ms | 20 ms |" in markdown
    assert "| dm-4 | v4 (canary) | 10% | 9 | 10.2% | 1 (1200 ms) | 30 ms | 30 ms | 30 ms |" in markdown
    assert "First error: ServiceUnavailable: 503" in markdown


def test_request_plans_describe_themselves() -> None:
    plan = RequestPlan(66, 50, "4", 10, 0, 66, 0.000955, 0.001)
    assert plan.describe() == (
        "66 predict requests: at least 50, and enough that v4 at 10% answers 1 of them (1 timed) unless with "
        "probability 0.10% (limit 0.10%)"
    )
