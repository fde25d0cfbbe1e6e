"""What the model predicts, and what a good answer from it looks like, wherever it is asked: in the
pipeline's smoke test of the exported SavedModel (components/smoke_test.py) and in the smoke test
of a Vertex AI endpoint (runners/promotion/smoke.py).

`Task` is the model's task as models/label.py declares it (binary or multi-class classification,
or regression), passed to components as JSON. Both serving signatures answer
{task.output_key: [batch, task.output_width]}; an endpoint serving them answers one prediction
per instance, the row of that output. Plain Python, no TensorFlow, so the promotion CLI stays light.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# JSON value of one raw feature in an instance: what Vertex AI `instances` and `serving_default` take.
FeatureValue = float | int | str
Instance = dict[str, FeatureValue]

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASK_KINDS = (BINARY, MULTICLASS, REGRESSION)
# The serving signatures' output: class probabilities, or the predicted value.
PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"
# How far a row of class probabilities may sum from 1 (softmax in float32).
SUM_TOLERANCE = 1e-3
# At most this many problems are listed, the first ones found.
MAX_PROBLEMS = 3


@dataclass(frozen=True)
class Task:
    """The model's task. Build it with `Task.binary(...)`, `Task.multiclass(...)` or `Task.regression()`.

    Classification labels are class indices: 0 .. len(classes) - 1, in the order of `classes`. A
    binary model answers the probability of classes[1] (the positive class); a multi-class model
    one probability per class.
    """

    kind: str
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind {self.kind!r}: expected one of {', '.join(TASK_KINDS)}")
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        if any(not isinstance(name, str) or not name for name in classes):
            raise ValueError(f"class names must be non-empty strings (got {list(classes)})")
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must differ (got {list(classes)})")
        if self.kind == BINARY and len(classes) != 2:
            raise ValueError(f"a binary task has 2 classes, the negative then the positive (got {list(classes)})")
        if self.kind == MULTICLASS and len(classes) < 3:
            raise ValueError(f"a multi-class task has 3 classes or more; for 2 use Task.binary (got {list(classes)})")
        if self.kind == REGRESSION and classes:
            raise ValueError("a regression task has no classes")

    @classmethod
    def binary(cls, classes: Sequence[str] = ("0", "1")) -> Task:
        """Two classes, the negative then the positive: the model answers the positive's probability."""
        return cls(BINARY, tuple(classes))

    @classmethod
    def multiclass(cls, classes: Sequence[str]) -> Task:
        """Three classes or more: the model answers one probability per class, summing to 1."""
        return cls(MULTICLASS, tuple(classes))

    @classmethod
    def regression(cls) -> Task:
        """A number: the model answers one value per row."""
        return cls(REGRESSION)

    @property
    def is_classification(self) -> bool:
        return self.kind != REGRESSION

    @property
    def output_key(self) -> str:
        """The serving signatures' output name."""
        return PROBABILITIES if self.is_classification else PREDICTIONS

    @property
    def output_width(self) -> int:
        """Values per row of the output: the positive class's probability, one per class, or the value."""
        return len(self.classes) if self.kind == MULTICLASS else 1

    def class_name(self, class_id: int) -> str:
        return self.classes[class_id] if 0 <= class_id < len(self.classes) else f"class {class_id}"

    def describe(self) -> str:
        if self.kind == BINARY:
            return f"binary classification: the probability of '{self.classes[1]}' (against '{self.classes[0]}')"
        if self.kind == MULTICLASS:
            return f"{len(self.classes)}-class classification ({', '.join(self.classes)})"
        return "regression: one number per row"

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "classes": list(self.classes)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Task:
        values = json.loads(text)
        return cls(values["kind"], tuple(values.get("classes", ())))


def prediction_problems(predictions: Sequence[Any], instances: int, task: Task) -> list[str]:
    """Why `predictions` is not one answer of `task` per instance (empty when it is).

    A prediction is the row of a [batch, task.output_width] output: [probability] (binary), one
    probability per class summing to 1 (multi-class), or [finite number] (regression).
    """
    problems: list[str] = []
    if len(predictions) != instances:
        problems.append(f"{len(predictions)} predictions for {instances} instances")
    for index, prediction in enumerate(predictions):
        problem = _problem_with(prediction, task)
        if problem:
            problems.append(f"prediction {index}: {problem}")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def _problem_with(prediction: Any, task: Task) -> str | None:
    width = task.output_width
    expected = {BINARY: "[probability]", MULTICLASS: f"{width} class probabilities", REGRESSION: "[value]"}[task.kind]
    if not isinstance(prediction, list | tuple) or len(prediction) != width:
        return f"expected {expected}, got {prediction!r}"
    for value in prediction:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if not math.isfinite(value):
            return f"not finite: {value!r}"
        if task.is_classification and not 0.0 <= value <= 1.0:
            return f"outside [0, 1]: {value!r}"
    if task.kind == MULTICLASS and abs(sum(prediction) - 1.0) > SUM_TOLERANCE:
        return f"class probabilities sum to {sum(prediction):.6g}, not 1"
    return None


def instance_problems(instances: Sequence[Mapping[str, Any]], features: Iterable[str]) -> list[str]:
    """Why `instances` cannot be sent to the model (empty when they can): each must carry exactly
    the raw `features` the model serves, with a number or a string."""
    expected = set(features)
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


def value_type_problems(instances: Sequence[Mapping[str, Any]], types: Mapping[str, str | None]) -> list[str]:
    """Why values do not fit their feature's type (empty when they do): `types` maps a feature to
    'int', 'float' or 'string' (None: not known, not checked). As TF Serving reads JSON: an int64
    input takes integers only (not 23.0), a float input any number, a string input text."""
    problems: list[str] = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            continue
        for key, kind in types.items():
            if key not in instance or kind not in ("int", "float", "string"):
                continue
            value = instance[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            fits = {"int": isinstance(value, int) and not isinstance(value, bool), "float": number}.get(
                kind, isinstance(value, str)
            )
            if not fits:
                wanted = {"int": "an integer", "float": "a number"}.get(kind, "a string")
                problems.append(f"instance {index}: {key} must be {wanted} (the model reads {kind}), got {value!r}")
            if len(problems) >= MAX_PROBLEMS:
                return problems
    return problems
