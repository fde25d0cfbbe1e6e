"""The Evaluator's metrics: which ones a config may name for each task, how TFMA computes them, and
how its output reads in the run summary, the report and a registered version's description.

- `METRICS`: per task, the metrics `evaluation.metrics` and `evaluation.blessing.metric` may name,
  with TFMA's class and whether higher is better.
- Keys carry the class and the aggregation: `auc` (binary), `auc[setosa]` (one class against the
  rest) and `auc (macro average)` (their mean), so per-class values never overwrite overall ones.
- A value that is undefined (AUC on a slice holding one class, which TFMA reports as 0.0) reads as
  None, told apart with the label's mean per slice (`mean_label`, computed for this and not shown).
- `blessing_failures`: why the Evaluator did not bless, in plain words, from its validation result.

Plain Python until an evaluation is read; the task comes in as `serving_checks.Task`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.serving_checks import BINARY, MULTICLASS, REGRESSION, Task

EXAMPLE_COUNT = "example_count"
# The label's mean per slice (per class for multi-class): 0 or 1 means one class only.
MEAN_LABEL = "mean_label"
HIDDEN_METRICS = frozenset({MEAN_LABEL})
MACRO_AVERAGE = "macro average"
OVERALL = "Overall"
# Config keys named in explanations.
MINIMUM_KEY = "evaluation.blessing.minimum"
MAXIMUM_KEY = "evaluation.blessing.maximum"
MAX_DROP_KEY = "evaluation.blessing.max_drop"


@dataclass(frozen=True)
class MetricDefinition:
    name: str  # in the config and in TFMA's output
    class_name: str  # TFMA's metric class, or a Keras metric TFMA wraps
    config: str = ""  # TFMA MetricConfig.config: the class's arguments as JSON fields
    higher_is_better: bool = True
    # Undefined on a slice that holds one class (AUC needs positives and negatives).
    needs_both_classes: bool = False

    def metric_config_json(self) -> str:
        """The name first, so that TFMA's output carries the config's name (`accuracy`, not `binary_accuracy`)."""
        return ", ".join(part for part in (f'"name": "{self.name}"', self.config) if part)


# TFMA's default of 10,000 thresholds costs time on every slice; 1,000 moves the example's AUC by about 1e-6.
_THRESHOLDS = '"num_thresholds": 1000'
METRICS: dict[str, dict[str, MetricDefinition]] = {
    BINARY: {
        "auc": MetricDefinition("auc", "AUC", _THRESHOLDS, needs_both_classes=True),
        "auc_precision_recall": MetricDefinition(
            "auc_precision_recall", "AUCPrecisionRecall", _THRESHOLDS, needs_both_classes=True
        ),
        "accuracy": MetricDefinition("accuracy", "BinaryAccuracy"),
    },
    # AUC one class against the rest, per class, and its macro average; accuracy of the top class.
    MULTICLASS: {
        "auc": MetricDefinition("auc", "AUC", _THRESHOLDS, needs_both_classes=True),
        "accuracy": MetricDefinition("accuracy", "SparseCategoricalAccuracy"),
    },
    REGRESSION: {
        "mae": MetricDefinition("mae", "MeanAbsoluteError", higher_is_better=False),
        "mse": MetricDefinition("mse", "MeanSquaredError", higher_is_better=False),
        "rmse": MetricDefinition("rmse", "RootMeanSquaredError", higher_is_better=False),
    },
}
ALL_METRIC_NAMES = tuple(sorted({name for per_task in METRICS.values() for name in per_task}))


def metric_names(kind: str) -> tuple[str, ...]:
    return tuple(METRICS[kind])


def definition(name: str, task: Task) -> MetricDefinition:
    """The metric `name` for `task`; KeyError (naming the metrics it has) when it has none of that name."""
    try:
        return METRICS[task.kind][name]
    except KeyError:
        raise KeyError(
            f"{name!r} does not apply to {task.kind} (choose from {', '.join(METRICS[task.kind])})"
        ) from None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric `name` is better: the same for every task that has it."""
    for per_task in METRICS.values():
        if name in per_task:
            return per_task[name].higher_is_better
    raise KeyError(name)


@dataclass(frozen=True)
class MetricId:
    """A metric of the evaluation: its name, the class it is one-against-the-rest for, or the macro average."""

    name: str
    class_id: int | None = None
    macro_average: bool = False

    def text(self, task: Task | None) -> str:
        if self.class_id is not None:
            class_name = task.class_name(self.class_id) if task else f"class {self.class_id}"
            return f"{self.name}[{class_name}]"
        return f"{self.name} ({MACRO_AVERAGE})" if self.macro_average else self.name


def metric_id(key: Any) -> MetricId:  # a TFMA MetricKey proto
    sub_key, aggregation = key.sub_key, key.aggregation_type
    class_id = sub_key.class_id.value if sub_key.HasField("class_id") else None
    name = key.name
    if sub_key.HasField("top_k"):
        name = f"{name}@top{sub_key.top_k.value}"
    if sub_key.HasField("k"):
        name = f"{name}@k{sub_key.k.value}"
    return MetricId(name, class_id, aggregation.macro_average or aggregation.weighted_macro_average)


def blessing_metric_id(name: str, task: Task) -> MetricId:
    """The key the blessing reads: the macro average over the classes for a per-class metric."""
    per_class = task.kind == MULTICLASS and definition(name, task).needs_both_classes
    return MetricId(name, macro_average=per_class)


@dataclass
class SliceResult:
    """One slice's metrics, keyed by MetricId.text; None where the value is undefined."""

    slice_key: Any  # TFMA SliceKey proto
    values: dict[str, float | None] = field(default_factory=dict)
    baseline: dict[str, float | None] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why

    @property
    def name(self) -> str:
        return slice_name(self.slice_key)


def slice_name(slice_key: Any) -> str:  # TFMA SliceKey proto
    keys = slice_key.single_slice_keys
    if not keys:
        return OVERALL
    parts = []
    for key in keys:
        value = getattr(key, key.WhichOneof("kind"))
        parts.append(f"{key.column} = {value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts)


def read_slices(evaluation_uri: str, task: Task | None) -> list[SliceResult]:
    """Every slice's metrics of the candidate (and the baseline, when one was compared)."""
    import tensorflow_model_analysis as tfma

    results = []
    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        per_model: dict[str, dict[MetricId, float]] = {"candidate": {}, "baseline": {}}
        for entry in metrics_for_slice.metric_keys_and_values:
            if entry.key.is_diff or not entry.value.HasField("double_value"):
                continue
            model = "baseline" if entry.key.model_name == "baseline" else "candidate"
            per_model[model][metric_id(entry.key)] = entry.value.double_value.value
        result = SliceResult(metrics_for_slice.slice_key)
        result.values, result.undefined = _shown(per_model["candidate"], task)
        result.baseline, _ = _shown(per_model["baseline"], task)
        results.append(result)
    return results


def overall_metrics(evaluation_uri: str, task: Task | None = None) -> dict[str, float | None]:
    """The candidate's metrics over the whole eval split ({} when the evaluation has none)."""
    overall = next((s for s in read_slices(evaluation_uri, task) if not s.slice_key.single_slice_keys), None)
    return dict(overall.values) if overall else {}


def _shown(values: Mapping[MetricId, float], task: Task | None) -> tuple[dict[str, float | None], dict[str, str]]:
    """The values to show, by text key, with None (and why) where the slice makes them undefined."""
    shares = {metric.class_id: value for metric, value in values.items() if metric.name == MEAN_LABEL}
    shown: dict[str, float | None] = {}
    undefined: dict[str, str] = {}
    for metric, value in sorted(values.items(), key=lambda item: _order(item[0])):
        if metric.name in HIDDEN_METRICS:
            continue
        text = metric.text(task)
        why = _undefined_because(metric, shares, task) if _needs_both_classes(metric, task) else None
        shown[text] = None if why else value
        if why:
            undefined[text] = why
    return shown, undefined


def _order(metric: MetricId) -> tuple[str, int, int]:
    return (metric.name, 0 if metric.class_id is None else 1, metric.class_id or 0)


def _needs_both_classes(metric: MetricId, task: Task | None) -> bool:
    if task is None or not task.is_classification:
        return False
    known = METRICS[task.kind].get(metric.name)
    return bool(known and known.needs_both_classes)


def _undefined_because(metric: MetricId, shares: Mapping[int | None, float], task: Task | None) -> str | None:
    """Why `metric` has no value on a slice whose label means are `shares` (None: it has one)."""
    if metric.class_id is not None:
        share = shares.get(metric.class_id)
        if share in (0.0, 1.0):
            which = "no example of" if share == 0.0 else "only examples of"
            return f"the slice holds {which} '{_class(task, metric.class_id)}'"
        return None
    if metric.macro_average:
        absent = [class_id for class_id, share in sorted(shares.items(), key=_class_order) if share == 0.0]
        if absent:
            names = ", ".join(f"'{_class(task, class_id)}'" for class_id in absent)
            return f"the slice holds no example of {names}"
        return None
    share = shares.get(None)
    if share in (0.0, 1.0):
        only = _class(task, int(share)) if task else "one class"
        return f"the slice holds one class only ('{only}')"
    return None


def _class_order(item: tuple[int | None, float]) -> int:
    return -1 if item[0] is None else item[0]


def _class(task: Task | None, class_id: int | None) -> str:
    return task.class_name(class_id or 0) if task else f"class {class_id}"


def blessing_failures(evaluation_uri: str, task: Task | None) -> list[str]:
    """Why the Evaluator refused the blessing, one plain sentence per failed threshold ([] when blessed
    or when the evaluation holds no validation result)."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(evaluation_uri)
    except (OSError, ValueError, IndexError):
        return []
    if result.validation_ok:
        return []
    slices = {slice_name(s.slice_key): s for s in read_slices(evaluation_uri, task)}
    reasons = []
    for per_slice in result.metric_validations_per_slice:
        where = slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            reasons.append(explain_failure(failure, slices.get(where), task, where))
    reasons += [f"the Evaluator: {reason}" for reason in _missing_reasons(result)]
    return reasons


def _missing_reasons(result: Any) -> Iterable[str]:
    for missing in result.missing_slices:
        yield f"no examples in the slice {missing}"
    if result.HasField("validation_details") and not result.metric_validations_per_slice:
        for details in result.validation_details.slicing_details:
            if details.num_matching_slices == 0:
                yield "a slice the thresholds need matched no example"


def explain_failure(failure: Any, values: SliceResult | None, task: Task | None, where: str = OVERALL) -> str:
    """One failed threshold in plain words: the value, the bound it broke, the config key, what to do."""
    key = failure.metric_key
    metric = metric_id(key)
    text = metric.text(task)
    place = "" if where == OVERALL else f" on the slice {where}"
    candidate = values.values.get(text) if values else None
    if values and text in values.undefined:
        return f"{text} is undefined{place}: {values.undefined[text]}, so no threshold can pass"
    threshold = failure.metric_threshold
    value = failure.metric_value.double_value.value if failure.metric_value.HasField("double_value") else None
    try:
        better_high = higher_is_better(key.name)
    except KeyError:
        better_high = True
    if key.is_diff and threshold.HasField("change_threshold"):
        allowed = abs(threshold.change_threshold.absolute.value)
        baseline = values.baseline.get(text) if values else None
        shown = f" ({_number(candidate)} against the baseline's {_number(baseline)})" if baseline is not None else ""
        direction = "below" if better_high else "above"
        worse = abs(value) if value is not None else None
        return (
            f"{text} is {_number(worse)} {direction} the baseline model's{shown}{place}, more than the "
            f"{_number(allowed, precise=False)} allowed ({MAX_DROP_KEY})"
        )
    bounds = threshold.value_threshold
    lower = bounds.lower_bound.value if bounds.HasField("lower_bound") else None
    upper = bounds.upper_bound.value if bounds.HasField("upper_bound") else None
    if value is not None and upper is not None and value > upper:
        if better_high:
            return (
                f"{text} {_number(value)}{place} is above the ceiling {upper:g} ({MAXIMUM_KEY}): too good to be "
                "true. A score this high usually means the label leaks into the features (a feature that is the "
                "label, or that it is computed from); check models/label.py and the features before raising it"
            )
        return f"{text} {_number(value)}{place} is above the maximum {upper:g} ({MAXIMUM_KEY})"
    if value is not None and lower is not None and value < lower:
        if better_high:
            return f"{text} {_number(value)}{place} is below the minimum {lower:g} ({MINIMUM_KEY})"
        return (
            f"{text} {_number(value)}{place} is below the floor {lower:g} ({MINIMUM_KEY}): too good to be true. "
            "An error this small usually means the label leaks into the features (a feature that is the label, "
            "or that it is computed from); check models/label.py and the features before lowering it"
        )
    return f"{text} {_number(value)}{place} fails its threshold ({failure.message or 'see the report'})"


def _number(value: float | None, precise: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if precise else f"{value:g}"
