"""Smoke test of a Vertex AI endpoint after a canary deploy.

Sends `predictions` predict requests, each carrying every sample instance (raw feature values, as
clients send them), and checks: the error rate, the latency of every successful request, one
probability in [0, 1] per instance (components/serving_checks.py), and that the canary answered at
least once. The endpoint spreads requests by its traffic split, so at P% the canary answers about P%
of them; keep `predictions` high enough that it is reached (50 at 10% misses it with odds 0.5%).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.serving_checks import Instance, instance_problems, prediction_problems
from pipeline.deploy_config import SmokeTestConfig


class SampleError(ValueError):
    """The sample instances file cannot be used; the message is one line."""


@dataclass
class SmokeReport:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    schema_problems: list[str] = field(default_factory=list)
    answered_by: Counter[str] = field(default_factory=Counter)  # deployed model ID -> answers

    @property
    def error_rate(self) -> float:
        return len(self.errors) / self.requests if self.requests else 1.0

    def failures(self, config: SmokeTestConfig, canary_deployed_id: str | None) -> list[str]:
        """Why the endpoint fails the smoke test (empty when it passes)."""
        failures = []
        if self.error_rate > config.max_error_rate:
            first = f" (first: {self.errors[0]})" if self.errors else ""
            failures.append(
                f"{len(self.errors)} of {self.requests} requests failed, error rate {self.error_rate:.0%} "
                f"above {config.max_error_rate:.0%}{first}"
            )
        slowest = max(self.latencies_ms, default=0.0)
        if slowest > config.max_latency_ms:
            failures.append(f"slowest answer took {slowest:.0f} ms, above {config.max_latency_ms} ms")
        failures += [f"response schema: {problem}" for problem in self.schema_problems[:3]]
        if canary_deployed_id and not self.answered_by[canary_deployed_id]:
            failures.append(f"the canary (deployed model {canary_deployed_id}) answered none of the requests")
        return failures

    def summary(self) -> str:
        latencies = sorted(self.latencies_ms)
        median = latencies[len(latencies) // 2] if latencies else 0.0
        answered = ", ".join(f"{deployed} {count}" for deployed, count in sorted(self.answered_by.items()))
        return (
            f"{self.requests} requests, {len(self.errors)} failed, latency median {median:.0f} ms / "
            f"max {max(latencies, default=0.0):.0f} ms; answers per deployed model: {answered or 'none'}"
        )


def load_instances(path: Path) -> list[Instance]:
    try:
        instances = json.loads(path.read_text())
    except OSError as error:
        raise SampleError(f"{path}: cannot read the smoke test instances ({error.strerror})") from None
    except ValueError as error:
        raise SampleError(f"{path}: not JSON: {error}") from None
    if not isinstance(instances, list):
        raise SampleError(f"{path}: expected a JSON list of instances, got {type(instances).__name__}")
    problems = instance_problems(instances)
    if problems:
        raise SampleError(f"{path}: {problems[0]}")
    return instances


def smoke_test_endpoint(
    predict: Callable[[Sequence[Instance]], Any],
    instances: Sequence[Instance],
    config: SmokeTestConfig,
    clock: Callable[[], float] = time.monotonic,
) -> SmokeReport:
    """`predict(instances)` returns an `aiplatform.models.Prediction` (or raises)."""
    report = SmokeReport()
    for _ in range(config.predictions):
        report.requests += 1
        started = clock()
        try:
            answer = predict(instances)
        except Exception as error:  # any failure to answer counts as an error of the endpoint
            message = " ".join(str(error).split()) or type(error).__name__
            report.errors.append(f"{type(error).__name__}: {message}"[:300])
            continue
        report.latencies_ms.append((clock() - started) * 1000)
        report.answered_by[answer.deployed_model_id] += 1
        report.schema_problems += prediction_problems(list(answer.predictions), len(instances))
    return report
