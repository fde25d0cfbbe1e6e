"""What a good answer from the model looks like, wherever it is asked: in the pipeline's smoke test
of the exported SavedModel (components/smoke_test.py) and in the smoke test of a Vertex AI endpoint
(runners/promotion/smoke.py).

Both serving signatures return {"probabilities": [batch, 1]}; an endpoint serving them answers one
prediction per instance, `[p]`. Plain Python, no TensorFlow, so the promotion CLI stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from models import features

# JSON value of one raw feature in an instance: what Vertex AI `instances` and `serving_default` take.
FeatureValue = float | int | str
Instance = dict[str, FeatureValue]


def prediction_problems(predictions: Sequence[Any], instances: int) -> list[str]:
    """Why `predictions` is not one probability per instance (empty when it is).

    A prediction is a list holding exactly one finite number in [0, 1]: the row of a [batch, 1]
    output. At most three problems are listed, the first ones found.
    """
    problems: list[str] = []
    if len(predictions) != instances:
        problems.append(f"{len(predictions)} predictions for {instances} instances")
    for index, prediction in enumerate(predictions):
        problem = _problem_with(prediction)
        if problem:
            problems.append(f"prediction {index}: {problem}")
        if len(problems) >= 3:
            break
    return problems


def _problem_with(prediction: Any) -> str | None:
    if not isinstance(prediction, list | tuple) or len(prediction) != 1:
        return f"expected [probability], got {prediction!r}"
    value = prediction[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {value!r}"
    if not math.isfinite(value):
        return f"not finite: {value!r}"
    if not 0.0 <= value <= 1.0:
        return f"outside [0, 1]: {value!r}"
    return None


def instance_problems(instances: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why `instances` cannot be sent to the model (empty when they can): each must carry exactly
    the raw features the model serves, with a number or a string."""
    expected = set(features.RAW_FEATURE_KEYS)
    problems: list[str] = []
    if not instances:
        problems.append("no instances")
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            problems.append(f"instance {index}: expected an object of feature values, got {instance!r}")
            continue
        missing, unknown = sorted(expected - set(instance)), sorted(set(instance) - expected)
        if missing or unknown:
            problems.append(f"instance {index}: missing features {missing}, unknown features {unknown}")
        wrong = [
            key for key, value in instance.items() if isinstance(value, bool) or not isinstance(value, FeatureValue)
        ]
        if wrong:
            problems.append(f"instance {index}: {', '.join(sorted(wrong))} must be numbers or strings")
    return problems
