"""Data anomalies in plain words: for each feature, what the schema expects and what was found.

TFDV reports anomalies as `Anomalies` protos whose descriptions name the problem but not the
rule that was broken. Here each anomaly becomes one line that says both, with the schema's own
numbers (the allowed values, the range, the share of rows that must be filled in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

_Type = anomalies_pb2.AnomalyInfo.Type
DATASET = "(whole dataset)"
_MAX_LISTED_VALUES = 8

_TYPE_NAMES = {
    schema_pb2.INT: "whole numbers (INT)",
    schema_pb2.FLOAT: "numbers (FLOAT)",
    schema_pb2.BYTES: "text (BYTES)",
    schema_pb2.STRUCT: "structs (STRUCT)",
}
_WRONG_TYPE = {
    _Type.UNEXPECTED_DATA_TYPE,
    _Type.FLOAT_TYPE_STRING_NOT_FLOAT,
    _Type.FLOAT_TYPE_NOT_FLOAT,
    _Type.FLOAT_TYPE_NON_STRING,
    _Type.FLOAT_TYPE_UNKNOWN_TYPE_NUMBER,
    _Type.INT_TYPE_INT_EXPECTED,
    _Type.INT_TYPE_NOT_INT_STRING,
    _Type.INT_TYPE_NOT_STRING,
    _Type.INT_TYPE_STRING_EXPECTED,
    _Type.INT_TYPE_UNKNOWN_TYPE_NUMBER,
    _Type.STRING_TYPE_NOW_FLOAT,
    _Type.STRING_TYPE_NOW_INT,
    _Type.ENUM_TYPE_BYTES_NOT_STRING,
    _Type.ENUM_TYPE_FLOAT_NOT_STRING,
    _Type.ENUM_TYPE_INT_NOT_STRING,
    _Type.ENUM_TYPE_INVALID_UTF8,
}
_OUT_OF_RANGE = {
    _Type.INT_TYPE_BIG_INT,
    _Type.INT_TYPE_SMALL_INT,
    _Type.FLOAT_TYPE_BIG_FLOAT,
    _Type.FLOAT_TYPE_SMALL_FLOAT,
}
# float_domain { disallow_nan: true disallow_inf: true }: Python's float() reads "nan", "NaN",
# "inf", "-Infinity" ..., so CsvExampleGen writes them as float values, and a model trained on them
# predicts NaN.
_NOT_FINITE = {_Type.FLOAT_TYPE_HAS_NAN, _Type.FLOAT_TYPE_HAS_INF}
_PRESENCE = {
    _Type.SCHEMA_MISSING_COLUMN,
    _Type.FEATURE_TYPE_NOT_PRESENT,
    _Type.FEATURE_TYPE_NO_VALUES,
    _Type.FEATURE_TYPE_LOW_FRACTION_PRESENT,
    _Type.FEATURE_TYPE_LOW_NUMBER_PRESENT,
}
# TFDV's wording -> plain words (the expected part is said from the schema instead).
_REWORDED = (
    (re.compile(r"^Expected data of type: \w+ but got (\w+)\.?$"), r"values of type \1"),
    (re.compile(r"^String values that were not floats were found, such as (.*?)\.?$"), r"text such as \1"),
    (re.compile(r"^String values that were not ints were found, such as (.*?)\.?$"), r"text such as \1"),
    (re.compile(r"^Examples contain values missing from the schema: (.*?)\.?$"), r"values not in the list: \1"),
    (re.compile(r"^Float feature has NaN values\.?$"), "NaN values (not a number, such as nan or NaN in the CSV)"),
    (re.compile(r"^Float feature has Inf values\.?$"), "infinite values (such as inf or -Infinity in the CSV)"),
)
BYTE_ORDER_MARK = "\ufeff"


@dataclass(frozen=True)
class Anomaly:
    """One broken rule: the feature, what the schema expects, what the data holds, and where."""

    feature: str
    expected: str
    found: str
    splits: tuple[str, ...] = ()

    def line(self) -> str:
        where = f" [{', '.join(self.splits)}]" if self.splits else ""
        return f"{shown_name(self.feature)}{where}: expected {self.expected}; found {self.found}"


def shown_name(name: str) -> str:
    """A feature name as it can be read: quoted, with escapes, when it holds invisible characters."""
    return name if name.isprintable() else repr(name)


def describe(anomalies: anomalies_pb2.Anomalies, schema: schema_pb2.Schema) -> list[Anomaly]:
    """The anomalies of one split (or one dataset), one entry per feature, sorted by feature."""
    features = {feature.name: feature for feature in schema.feature}
    domains = {domain.name: domain for domain in schema.string_domain}
    result = []
    if anomalies.data_missing:
        result.append(Anomaly(DATASET, "rows of data", "no data at all"))
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        result.append(Anomaly(DATASET, "what the schema says about the dataset", _found(info)))
    for name in sorted(anomalies.anomaly_info):
        info = anomalies.anomaly_info[name]
        feature = features.get(name)
        reason_types = [reason.type for reason in info.reason]
        expected = _expected(reason_types, feature, domains)
        found = _found(info)
        if name.startswith(BYTE_ORDER_MARK):
            found += (
                " (the name starts with a UTF-8 byte-order mark, which TFX's CSV reader on Dataflow keeps in the "
                "first column's name: save the CSV files without it)"
            )
        result.append(Anomaly(name, expected, found))
    return result


def merge_splits(per_split: Mapping[str, Iterable[Anomaly]]) -> list[Anomaly]:
    """One entry per (feature, expected), naming the splits; what was found is given per split when it differs."""
    merged: dict[tuple[str, str], dict[str, str]] = {}
    for split, anomalies in per_split.items():
        for anomaly in anomalies:
            merged.setdefault((anomaly.feature, anomaly.expected), {})[split] = anomaly.found
    result = []
    for (feature, expected), found in sorted(merged.items()):
        texts = set(found.values())
        text = texts.pop() if len(texts) == 1 else "; ".join(f"{split}: {value}" for split, value in found.items())
        result.append(Anomaly(feature, expected, text, tuple(found)))
    return result


def summary(anomalies: list[Anomaly], schema_source: str) -> str:
    """One line: how many features break the schema, and which."""
    features = sorted({anomaly.feature for anomaly in anomalies})
    noun = "feature breaks" if len(features) == 1 else "features break"
    names = ", ".join(shown_name(feature) for feature in features)
    return f"the data does not match the schema {schema_source}: {len(features)} {noun} it ({names})"


def _expected(
    reason_types: list[int], feature: schema_pb2.Feature | None, domains: Mapping[str, schema_pb2.StringDomain]
) -> str:
    if feature is None:
        if _Type.SCHEMA_NEW_COLUMN in reason_types:
            return "only the columns the schema lists (this one is not in it)"
        return "a feature the schema lists"
    parts = []
    if any(kind in _WRONG_TYPE for kind in reason_types):
        parts.append(_TYPE_NAMES.get(feature.type, schema_pb2.FeatureType.Name(feature.type)))
    if _Type.ENUM_TYPE_UNEXPECTED_STRING_VALUES in reason_types:
        parts.append(_domain_text(feature, domains))
    if any(kind in _OUT_OF_RANGE for kind in reason_types):
        parts.append(_range_text(feature))
    if any(kind in _NOT_FINITE for kind in reason_types):
        parts.append("numbers that are neither NaN nor infinite")
    if any(kind in _PRESENCE for kind in reason_types):
        parts.append(_presence_text(feature))
    if _Type.FEATURE_TYPE_UNEXPECTED_REPEATED in reason_types or _Type.FEATURE_TYPE_HIGH_NUMBER_VALUES in reason_types:
        parts.append("one value per row")
    return "; ".join(parts) or "what the schema says for this feature"


def _domain_text(feature: schema_pb2.Feature, domains: Mapping[str, schema_pb2.StringDomain]) -> str:
    domain = feature.string_domain if feature.HasField("string_domain") else domains.get(feature.domain)
    values = list(domain.value) if domain else []
    listed = ", ".join(values[:_MAX_LISTED_VALUES])
    if len(values) > _MAX_LISTED_VALUES:
        listed += f", ... ({len(values)} values)"
    mass = feature.distribution_constraints.min_domain_mass if feature.HasField("distribution_constraints") else 1.0
    share = "only values" if mass >= 1.0 else f"at least {mass:.0%} of the values"
    return f"{share} from the schema's list ({listed})"


def _range_text(feature: schema_pb2.Feature) -> str:
    kind = feature.WhichOneof("domain_info")
    domain = getattr(feature, kind) if kind in ("int_domain", "float_domain") else None
    if domain is None:
        return "finite values"
    low = _number(domain.min) if domain.HasField("min") else None
    high = _number(domain.max) if domain.HasField("max") else None
    if low is not None and high is not None:
        return f"values from {low} to {high}"
    if low is not None:
        return f"values of at least {low}"
    if high is not None:
        return f"values of at most {high}"
    return "finite values"


def _presence_text(feature: schema_pb2.Feature) -> str:
    fraction = feature.presence.min_fraction
    if fraction >= 1.0:
        return "a value in every row"
    if fraction > 0:
        return f"a value in at least {fraction:.0%} of the rows"
    return "the column to be present"


def _found(info: anomalies_pb2.AnomalyInfo) -> str:
    descriptions = [_reword(reason.description) for reason in info.reason if reason.description.strip()]
    text = ", ".join(descriptions) if descriptions else _reword(info.description)
    return text or "an anomaly TFDV did not describe"


def _reword(description: str) -> str:
    text = description.strip()
    for pattern, replacement in _REWORDED:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    text = text.rstrip(". ")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# ---- drift: this run's data against the data of the baseline model --------------------------

_Measurement = anomalies_pb2.DriftSkewInfo.Measurement.Type
_MEASURE_NAMES = {
    _Measurement.L_INFTY: "L-infinity distance",
    _Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon divergence",
    _Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: "normalized absolute difference",
}
_MEASURE_OF_REASON = {
    _Type.COMPARATOR_L_INFTY_HIGH: _Measurement.L_INFTY,
    _Type.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH: _Measurement.JENSEN_SHANNON_DIVERGENCE,
    _Type.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH: _Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE,
}
_MOST_CHANGED = re.compile(r"The feature value with maximum difference is: (.*)$")
NOT_COMPARED = "could not be compared"


@dataclass(frozen=True)
class Drift:
    """One feature whose distribution moved beyond its threshold, with what it moved by per split.

    `measure` is empty when the feature could not be compared (then `moved` holds TFDV's words)."""

    feature: str
    measure: str
    allowed: float | None
    moved: tuple[tuple[str, str], ...]  # (split, how far it moved)

    def line(self) -> str:
        splits = ", ".join(split for split, _ in self.moved)
        where = f"{shown_name(self.feature)} [{splits} vs the baseline's data]"
        texts = {text for _, text in self.moved}
        moved = texts.pop() if len(texts) == 1 else ", ".join(f"{text} in {split}" for split, text in self.moved)
        if not self.measure:
            return f"{where}: {NOT_COMPARED} ({moved})"
        return f"{where}: the distribution moved by {self.measure} {moved} (allowed {self.allowed:g})"


def describe_drift(per_pair: Mapping[str, anomalies_pb2.Anomalies]) -> list[Drift]:
    """The features of DistributionValidator's split pairs that moved beyond their thresholds, sorted."""
    merged: dict[tuple[str, str, float | None], dict[str, str]] = {}
    for pair, anomalies in per_pair.items():
        split = _split_of_pair(pair)
        for feature, measure, allowed, moved in _drift_of_pair(anomalies):
            merged.setdefault((feature, measure, allowed), {})[split] = moved
    return [
        Drift(feature, measure, allowed, tuple(moved.items()))
        for (feature, measure, allowed), moved in sorted(merged.items(), key=lambda item: item[0][:2])
    ]


def drift_summary(drift: list[Drift], schema_source: str) -> str:
    """One line: how many features moved beyond the drift thresholds, and which."""
    features = sorted({item.feature for item in drift})
    noun = "feature moved" if len(features) == 1 else "features moved"
    names = ", ".join(shown_name(feature) for feature in features)
    return (
        f"the data differs from the data the current model was trained on: {len(features)} {noun} beyond the "
        f"drift thresholds of {schema_source} ({names})"
    )


def _drift_of_pair(anomalies: anomalies_pb2.Anomalies) -> list[tuple[str, str, float | None, str]]:
    measurements = {
        ".".join(info.path.step): {m.type: m for m in info.drift_measurements} for info in anomalies.drift_skew_info
    }
    result = []
    for feature in sorted(anomalies.anomaly_info):
        for reason in anomalies.anomaly_info[feature].reason:
            kind = _MEASURE_OF_REASON.get(reason.type)
            measurement = measurements.get(feature, {}).get(kind) if kind is not None else None
            if measurement is None:
                result.append((feature, "", None, _reword(reason.description) or NOT_COMPARED))
                continue
            moved = _moved(measurement.value, measurement.threshold)
            most = _MOST_CHANGED.search(reason.description)
            if most:
                moved += f", most in the share of {most.group(1)}"
            result.append((feature, _MEASURE_NAMES[kind], measurement.threshold, moved))
    if anomalies.HasField("dataset_anomaly_info"):
        result.append((DATASET, "", None, _found(anomalies.dataset_anomaly_info)))
    return result


def _moved(value: float, threshold: float) -> str:
    """The value with two decimals, or as TFDV gives it (six significant digits) where two would not
    show that it is above the threshold."""
    text = f"{value:.2f}"
    return text if float(text) > threshold else f"{value:.6g}"


def _split_of_pair(pair: str) -> str:
    """'train_train' -> 'train': DistributionValidator names a pair <split>_<baseline split>."""
    half = len(pair) // 2
    return pair[:half] if len(pair) % 2 == 1 and pair[half] == "_" and pair[:half] == pair[half + 1 :] else pair
