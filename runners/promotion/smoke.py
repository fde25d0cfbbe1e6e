"""Smoke test of a Vertex AI endpoint after a canary deploy.

A predict request cannot name a deployed model (docs/promotion.md): the endpoint routes each one at
random by its traffic split, and the answer's `deployedModelId` says who answered. So the test
sends enough requests, each carrying every sample instance (raw feature values, as clients send
them), for the canary to answer `warmup_answers + 1` of them unless with probability
`max_miss_probability` (sampling.py), at least `min_predictions`, and refuses a canary share that
needs more than `max_predictions` before anything changes. It then judges:

- the error rate (failed requests over requests sent; a failure cannot be attributed to a model);
- that the canary answered `warmup_answers + 1` requests or more;
- per deployed model, the `latency_percentile` of its answers after its first `warmup_answers`
  (cold start) against `max_latency_ms`;
- that every answer holds one of the task's answers per instance: a probability in [0, 1] (binary),
  one per class summing to 1 (multi-class) or a finite number (regression), as models/label.py
  declares the task (components/serving_checks.py).

The instances are the serving instances the pipeline's smoke test sent to the model before it was
registered (`endpoint.smoke_test.instances_file`), checked against the model's features.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.serving_checks import Instance, Task, instance_problems, prediction_problems
from pipeline.deploy_config import SmokeTestConfig
from runners.promotion.sampling import miss_probability, percentile, requests_needed

MAX_SCHEMA_FAILURES = 3


class SampleError(ValueError):
    """The sample instances file cannot be used; the message is one line."""


class TooManyRequests(ValueError):
    """The canary's share needs more requests than `max_predictions`; the message is one line."""


@dataclass(frozen=True)
class RequestPlan:
    """How many requests the smoke test sends, and why."""

    requests: int
    min_predictions: int
    canary_version: str
    canary_percent: int
    warmup_answers: int
    canary_requests: int  # what the canary's share alone needs
    miss_probability: float  # of the canary answering fewer than `needed_answers` of `requests`
    max_miss_probability: float

    @property
    def needed_answers(self) -> int:
        return self.warmup_answers + 1

    def describe(self) -> str:
        return (
            f"{self.requests} predict requests: at least {self.min_predictions}, and enough that "
            f"v{self.canary_version} at {self.canary_percent}% answers {self.needed_answers} of them "
            f"({needed_text(self.warmup_answers)}) unless with probability "
            f"{probability_text(self.miss_probability)} (limit {probability_text(self.max_miss_probability)})"
        )


def plan_requests(config: SmokeTestConfig, canary_version: str, canary_percent: int) -> RequestPlan:
    """The number of requests for a canary with `canary_percent`% of the traffic; raises
    TooManyRequests when that is more than `config.max_predictions`."""
    share, needed = canary_percent / 100, config.warmup_answers + 1
    canary_requests = requests_needed(share, needed, config.max_miss_probability)
    if canary_requests > config.max_predictions:
        capped = miss_probability(config.max_predictions, share, needed)
        raise TooManyRequests(
            f"at {canary_percent}% of the traffic the smoke test needs {canary_requests} predict requests for "
            f"v{canary_version} to answer {needed} of them ({needed_text(config.warmup_answers)}) unless with "
            f"probability {probability_text(config.max_miss_probability)} (endpoint.smoke_test."
            f"max_miss_probability), more than endpoint.smoke_test.max_predictions ({config.max_predictions}), "
            f"with which the canary would be missed with probability {probability_text(capped)}. Give the canary "
            "more traffic, or raise max_predictions (or max_miss_probability) in the config"
        )
    requests = max(config.min_predictions, canary_requests)
    return RequestPlan(
        requests=requests,
        min_predictions=config.min_predictions,
        canary_version=canary_version,
        canary_percent=canary_percent,
        warmup_answers=config.warmup_answers,
        canary_requests=canary_requests,
        miss_probability=miss_probability(requests, share, needed),
        max_miss_probability=config.max_miss_probability,
    )


@dataclass(frozen=True)
class Outcome:
    """One predict request: who answered (None: it failed), how long it took, what was wrong."""

    latency_ms: float
    deployed_model_id: str | None = None
    error: str = ""
    schema_problems: tuple[str, ...] = ()


def send_requests(
    predict: Callable[[Sequence[Instance]], Any],
    instances: Sequence[Instance],
    count: int,
    clock: Callable[[], float] = time.monotonic,
    task: Task | None = None,
) -> list[Outcome]:
    """`predict(instances)` returns an `aiplatform.models.Prediction` (or raises); each answer is
    checked against `task` (default: the model's, models/label.py)."""
    task = task or model_task()
    outcomes = []
    for _ in range(count):
        started = clock()
        try:
            answer = predict(instances)
        except Exception as error:  # any failure to answer counts as an error of the endpoint
            message = " ".join(str(error).split()) or type(error).__name__
            outcomes.append(Outcome((clock() - started) * 1000, error=f"{type(error).__name__}: {message}"[:300]))
            continue
        latency_ms = (clock() - started) * 1000
        problems = tuple(prediction_problems(list(answer.predictions), len(instances), task))
        outcomes.append(Outcome(latency_ms, str(answer.deployed_model_id), schema_problems=problems))
    return outcomes


@dataclass(frozen=True)
class Serving:
    """A deployed model of the endpoint and its configured share of the traffic."""

    deployed_model_id: str
    version: str
    percent: int


@dataclass(frozen=True)
class ModelResult:
    """What one deployed model answered: warm-up latencies first, then the timed ones, in order."""

    serving: Serving
    canary: bool
    warmup_ms: tuple[float, ...]
    timed_ms: tuple[float, ...]

    @property
    def answers(self) -> int:
        return len(self.warmup_ms) + len(self.timed_ms)

    @property
    def label(self) -> str:
        return f"v{self.serving.version}" + (" (canary)" if self.canary else "")

    def latency(self, percent: float) -> float | None:
        return percentile(self.timed_ms, percent)


@dataclass(frozen=True)
class SmokeResult:
    config: SmokeTestConfig
    plan: RequestPlan
    requests: int
    models: tuple[ModelResult, ...]
    errors: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def answered(self) -> int:
        return sum(model.answers for model in self.models)

    @property
    def error_rate(self) -> float:
        return len(self.errors) / self.requests if self.requests else 1.0

    @property
    def canary(self) -> ModelResult | None:
        return next((model for model in self.models if model.canary), None)

    @property
    def percentile_label(self) -> str:
        return f"p{self.config.latency_percentile:g}"


def judge(
    outcomes: Sequence[Outcome],
    config: SmokeTestConfig,
    plan: RequestPlan,
    serving: Sequence[Serving],
) -> SmokeResult:
    """The smoke test's decision on `outcomes`, for an endpoint serving `serving` (plan.canary_version
    being the canary)."""
    models = _per_model(outcomes, serving, plan.canary_version, config.warmup_answers)
    errors = tuple(outcome.error for outcome in outcomes if outcome.deployed_model_id is None)
    result = SmokeResult(config, plan, len(outcomes), models, errors, ())
    failures = [*_error_failures(result), *_canary_failures(result), *_latency_failures(result)]
    failures += _schema_failures(outcomes, models)
    return SmokeResult(config, plan, len(outcomes), models, errors, tuple(failures))


def load_instances(path: Path, features: Sequence[str] | None = None) -> list[Instance]:
    """The instances of `path`, each carrying exactly `features` (default: the model's, models/features.py)."""
    if features is None:
        from models.features import RAW_FEATURE_KEYS

        features = RAW_FEATURE_KEYS
    try:
        instances = json.loads(path.read_text())
    except OSError as error:
        raise SampleError(f"{path}: cannot read the smoke test instances ({error.strerror})") from None
    except ValueError as error:
        raise SampleError(f"{path}: not JSON: {error}") from None
    if not isinstance(instances, list):
        raise SampleError(f"{path}: expected a JSON list of instances, got {type(instances).__name__}")
    problems = instance_problems(instances, features)
    if problems:
        raise SampleError(f"{path}: {problems[0]}")
    return instances


def model_task() -> Task:
    """The task the model answers (models/label.py)."""
    from models.label import TASK

    return TASK


def needed_text(warmup_answers: int) -> str:
    return f"{warmup_answers} warm-up + 1 timed" if warmup_answers else "1 timed"


def probability_text(probability: float) -> str:
    return f"{probability:.2%}" if probability >= 0.0001 else "< 0.01%"


def _per_model(
    outcomes: Iterable[Outcome], serving: Sequence[Serving], canary_version: str, warmup: int
) -> tuple[ModelResult, ...]:
    latencies: dict[str, list[float]] = {deployed.deployed_model_id: [] for deployed in serving}
    for outcome in outcomes:
        if outcome.deployed_model_id is not None:
            latencies.setdefault(outcome.deployed_model_id, []).append(outcome.latency_ms)
    known = {deployed.deployed_model_id: deployed for deployed in serving}
    models = [
        ModelResult(
            serving=known.get(deployed_id, Serving(deployed_id, "?", 0)),
            canary=deployed_id in known and known[deployed_id].version == canary_version,
            warmup_ms=tuple(answered[:warmup]),
            timed_ms=tuple(answered[warmup:]),
        )
        for deployed_id, answered in latencies.items()
    ]
    return tuple(sorted(models, key=lambda model: model.canary))


def _error_failures(result: SmokeResult) -> list[str]:
    if result.error_rate <= result.config.max_error_rate:
        return []
    first = f" (first: {result.errors[0]})" if result.errors else ""
    return [
        f"{len(result.errors)} of {result.requests} requests failed, error rate {result.error_rate:.1%} "
        f"above {result.config.max_error_rate:.1%}{first}"
    ]


def _canary_failures(result: SmokeResult) -> list[str]:
    plan, canary = result.plan, result.canary
    if canary is None:
        return [f"v{plan.canary_version} is not among the deployed models of the endpoint"]
    if canary.answers >= plan.needed_answers:
        return []
    chance = miss_probability(result.requests, plan.canary_percent / 100, canary.answers + 1)
    return [
        f"the canary v{plan.canary_version} (deployed model {canary.serving.deployed_model_id}) answered "
        f"{canary.answers} of {result.requests} requests, fewer than the {plan.needed_answers} it needs "
        f"({needed_text(plan.warmup_answers)}); with {plan.canary_percent}% of the traffic that happens with "
        f"probability {probability_text(chance)}: check the endpoint's traffic split, then run `canary` again"
    ]


def _latency_failures(result: SmokeResult) -> list[str]:
    failures = []
    bound, label = result.config.max_latency_ms, result.percentile_label
    for model in result.models:
        latency = model.latency(result.config.latency_percentile)
        if latency is not None and latency > bound:
            failures.append(
                f"{model.label}: {label} latency {latency:.0f} ms over {len(model.timed_ms)} answers after "
                f"{len(model.warmup_ms)} warm-up, above {bound} ms"
            )
    return failures


def _schema_failures(outcomes: Iterable[Outcome], models: Sequence[ModelResult]) -> list[str]:
    labels = {model.serving.deployed_model_id: model.label for model in models}
    problems = [
        f"response schema: {problem} (answered by {labels[outcome.deployed_model_id]})"
        for outcome in outcomes
        if outcome.deployed_model_id is not None
        for problem in outcome.schema_problems
    ]
    return list(dict.fromkeys(problems))[:MAX_SCHEMA_FAILURES]
