"""The statistics of the endpoint smoke test (docs/promotion.md, "The endpoint smoke test").

The endpoint routes each predict request to one deployed model at random, in proportion to the
traffic split, and a predict request cannot name a deployed model. So the number of requests a
deployed model with share `s` answers out of `n` is binomial(n, s), and the smoke test chooses `n`
so that the canary answers at least `needed` of them unless with a small, configured probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def miss_probability(requests: int, share: float, needed: int) -> float:
    """P(fewer than `needed` of `requests` reach a deployed model that gets `share` of the traffic)."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if needed <= 0:
        return 0.0
    if share == 1:
        return 0.0 if requests >= needed else 1.0
    return min(1.0, sum(_binomial(requests, share, hits) for hits in range(min(needed, requests + 1))))


def requests_needed(share: float, needed: int, max_miss_probability: float) -> int:
    """The fewest requests for which `miss_probability` is at most `max_miss_probability`.

    For `needed == 1` this is ceil(log(p) / log(1 - share)): 66 at 10% with p = 0.001.
    """
    if not 0 < max_miss_probability < 1:
        raise ValueError(f"max_miss_probability must be in (0, 1), got {max_miss_probability}")
    if needed <= 0:
        return 0

    def enough(requests: int) -> bool:
        return miss_probability(requests, share, needed) <= max_miss_probability

    # The miss probability falls as requests grow: double until enough, then bisect.
    low, high = needed - 1, needed
    while not enough(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def percentile(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile: the smallest value at least `percent`% of `values` do not exceed
    (p95 of fewer than 20 values is their maximum). None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _binomial(trials: int, probability: float, hits: int) -> float:
    """P(exactly `hits` successes in `trials`), in logs so that large `trials` do not underflow early."""
    log = (
        math.lgamma(trials + 1)
        - math.lgamma(hits + 1)
        - math.lgamma(trials - hits + 1)
        + hits * math.log(probability)
        + (trials - hits) * math.log1p(-probability)
    )
    return math.exp(log)
