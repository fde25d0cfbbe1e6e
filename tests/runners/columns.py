"""The configured data's columns by the role the declarations give them, and tables of its rows to change.

The tests of real runs build bad data from models/features.py, models/label.py and the curated
schema (`schema_path`) rather than from the taxi columns, so that they hold in a fork (README "Make
it yours"): "a numeric feature in every row", "the model's text category with a list of values",
"the label's source column". A role no column plays (a model without text categories, say) skips
the tests that need it, saying why.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features, label
from models.task import label_array
from pipeline.config import load_config
from pipeline.paths import in_repository

Table = tuple[list[str], list[list[str]]]
# A value no list of the schema holds, and a column no schema lists.
UNLISTED_VALUE = "Bitcoin"
UNLISTED_COLUMN = "driver_rating"
# How the validation gate names the number types (components/anomaly_text.py), and how many of a
# list's values it shows.
NUMBER_TYPE_NAMES = {schema_pb2.INT: "whole numbers (INT)", schema_pb2.FLOAT: "numbers (FLOAT)"}
LISTED_VALUES_SHOWN = 8
# How far beyond the share of unlisted values a text category tolerates the tests go.
BEYOND_THE_TOLERANCE = 0.04


def read_table(folder: Path) -> Table:
    with (folder / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    return header, rows


def write_table(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return folder


def with_column(table: Table, column: str, value: Callable[[int, str], str]) -> Table:
    """The table with each cell of `column` replaced by value(row index, old cell)."""
    header, rows = table
    at = header.index(column)
    return header, [[*row[:at], value(index, row[at]), *row[at + 1 :]] for index, row in enumerate(rows)]


def without_column(table: Table, column: str) -> Table:
    header, rows = table
    at = header.index(column)
    return [name for name in header if name != column], [row[:at] + row[at + 1 :] for row in rows]


def curated_schema() -> schema_pb2.Schema:
    """The schema file `schema_path` names (configs/base.yaml); skips when the pipeline infers one."""
    path = load_config().schema_path
    if path is None or "://" in path:
        pytest.skip("no curated schema in this repository (schema_path is null or in the cloud)")
    return text_format.Parse(in_repository(path).read_text(encoding="utf-8"), schema_pb2.Schema())


def schema_source() -> str:
    """The schema as the validation gate and `make schema` name it: `schema_path` as configured."""
    return str(load_config().schema_path)


def schema_feature(name: str) -> schema_pb2.Feature:
    return next(feature for feature in curated_schema().feature if feature.name == name)


def model_columns() -> list[str]:
    """The columns the model reads: its features, then the label's (models/features.py, models/label.py)."""
    return list(dict.fromkeys([*features.RAW_FEATURE_KEYS, *label.COLUMNS]))


def training_only_columns() -> list[str]:
    """The label's columns that are not features: absent from serving requests."""
    return [column for column in label.COLUMNS if column not in features.RAW_FEATURE_KEYS]


def in_every_row(feature: schema_pb2.Feature) -> bool:
    return feature.presence.min_fraction >= 1.0


def required(feature: schema_pb2.Feature) -> bool:
    """Whether the schema requires the column (in the header) at all."""
    return feature.presence.min_fraction > 0 or feature.presence.min_count > 0


def feature_types() -> dict[str, int]:
    """The model's raw features (models/features.py) with their types in the curated schema."""
    types = {feature.name: feature.type for feature in curated_schema().feature}
    return {key: types[key] for key in features.RAW_FEATURE_KEYS}


def numeric_feature() -> schema_pb2.Feature:
    """A feature of the model with a number in every row: the first FLOAT one (models/features.py's
    order, amounts first), else the first INT one."""
    candidates = [schema_feature(key) for key in features.RAW_FEATURE_KEYS]
    for kind in (schema_pb2.FLOAT, schema_pb2.INT):
        found = [feature for feature in candidates if feature.type == kind and in_every_row(feature)]
        if found:
            return found[0]
    pytest.skip("no feature of the model holds a number in every row")


def finite_float_features() -> list[str]:
    """The model's FLOAT features whose schema refuses NaN and infinity, in models/features.py's order."""
    return [
        key
        for key in features.RAW_FEATURE_KEYS
        if (feature := schema_feature(key)).type == schema_pb2.FLOAT
        and feature.float_domain.disallow_nan
        and feature.float_domain.disallow_inf
    ]


def required_column() -> str:
    """The first column of the model the schema requires in the header."""
    found = [name for name in model_columns() if required(schema_feature(name))]
    if not found:
        pytest.skip("the schema requires none of the model's columns")
    return found[0]


@dataclass(frozen=True)
class TextCategory:
    """A text feature whose schema lists its values and tolerates a share of others."""

    name: str
    values: tuple[str, ...]
    min_domain_mass: float

    @property
    def expected(self) -> str:
        """What the gate says the schema expects of it."""
        listed = ", ".join(self.values[:LISTED_VALUES_SHOWN])
        if len(self.values) > LISTED_VALUES_SHOWN:
            listed += f", ... ({len(self.values)} values)"
        return f"at least {self.min_domain_mass:.0%} of the values from the schema's list ({listed})"

    @property
    def breaking_every(self) -> int:
        """n, so that one value in every n-th row outside the list is clearly more than the schema
        tolerates (20 for a tolerance of 1%)."""
        share = 1.0 - self.min_domain_mass + BEYOND_THE_TOLERANCE
        return max(2, min(20, math.floor(1 / share + 1e-9)))


def text_category() -> TextCategory:
    """The model's text category with a list of values that tolerates the smallest share of others
    (not a column of the label)."""
    schema = curated_schema()
    domains = {domain.name: domain for domain in schema.string_domain}
    found = []
    for key in features.RAW_FEATURE_KEYS:
        feature = schema_feature(key)
        domain = feature.string_domain if feature.HasField("string_domain") else domains.get(feature.domain)
        mass = feature.distribution_constraints.min_domain_mass if feature.HasField("distribution_constraints") else 1
        if feature.type == schema_pb2.BYTES and domain and mass < 1.0 and key not in label.COLUMNS:
            found.append(TextCategory(key, tuple(domain.value), mass))
    if not found:
        pytest.skip("no text feature of the model has a list of values in the schema with a tolerated share")
    return max(found, key=lambda category: category.min_domain_mass)


def missing_token() -> str | None:
    """A value of `data.missing_values` other than the empty cell, if the config has one."""
    return next((token for token in load_config().data.missing_tokens if token), None)


def label_source() -> str:
    """The first column models/label.py computes the label from."""
    return label.COLUMNS[0]


def label_of(cells: dict[str, str]) -> Any:
    """models/label.py's label of one row, its columns typed as in the schema."""
    import numpy as np

    kinds = {schema_pb2.INT: np.int64, schema_pb2.FLOAT: np.float32}
    columns = {
        column: np.array([cells[column]], kinds.get(schema_feature(column).type, np.str_)) for column in label.COLUMNS
    }
    return label_array(label.TASK, label.compute(columns))[0]


def with_one_label(table: Table) -> tuple[Table, str]:
    """Every row's label columns set to those of the first row that has them all: data whose rows
    all have one label. Returns the table and what the check before a run says of it."""
    header, rows = table
    at = [header.index(column) for column in label.COLUMNS]
    missing = set(load_config().data.missing_tokens)
    first = next(row for row in rows if all(row[index].strip() and row[index] not in missing for index in at))
    changed = [list(row) for row in rows]
    for row in changed:
        for index in at:
            row[index] = first[index]
    value = label_of({column: first[index] for column, index in zip(label.COLUMNS, at, strict=True)})
    source = f"models/label.py computes the label from {', '.join(label.COLUMNS)}"
    if label.TASK.is_classification:
        said = (
            f"every labelled row is one class ('{label.TASK.class_name(int(value))}'; {source}); the model needs at "
            "least two classes to learn"
        )
    else:
        said = (
            f"every labelled row has the same label ({value:g}) ({source}); the model needs labels that vary to "
            "learn"
        )
    return (header, changed), said


def rarest_value(table: Table, column: str) -> str:
    """The value of `column` in the fewest rows (the first of them in the data), empty cells left out."""
    header, rows = table
    at = header.index(column)
    counts = Counter(row[at] for row in rows if row[at].strip())
    return min(counts, key=lambda value: counts[value])  # the first seen of the rarest, Counter keeps order


def same_size_edit(text: str) -> str:
    """`text` with its last character changed (to '$', or '#' where it is '$'): a value of the same size."""
    return text[:-1] + ("#" if text.endswith("$") else "$")
