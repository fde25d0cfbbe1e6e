"""The validation gate, the plain-words anomalies and what the curated schema accepts.

The gate and the plain words are checked with a schema of the tests' own; what the configured schema
accepts, on rows of the configured data (the taxi schema's own values: tests/example/)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import anomaly_text
from components.curated_schema import SCHEMA_FINGERPRINT_KEY, CuratedSchemaGen, schema_fingerprint
from components.validation_gate import (
    ANOMALIES_FILE,
    ANOMALIES_KEY,
    SCHEMA_KEY,
    SCHEMA_SOURCE_KEY,
    VALIDATED_SCHEMA_KEY,
    DataValidationError,
    Executor,
)
from models import features, label
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from pipeline.paths import in_repository
from runners.local.schema_proposal import example_statistics
from tests.components.conftest import ConfiguredData, write_csv

Type = anomalies_pb2.AnomalyInfo.Type
UNEXPECTED_VALUES = "Examples contain values missing from the schema"  # TFDV's wording
# The tests' own schema: a text category with a list of values, an integer range, numbers that must
# be finite, and a label present in training only.
OWN_SCHEMA = """\
default_environment: "TRAINING"
default_environment: "SERVING"
feature {
  name: "payment_type"
  type: BYTES
  domain: "payment_type"
  presence { min_fraction: 1.0 min_count: 1 }
  distribution_constraints { min_domain_mass: 0.99 }
}
feature { name: "trip_start_hour" type: INT int_domain { min: 0 max: 23 } }
feature { name: "company" type: BYTES presence { min_count: 1 } }
feature { name: "fare" type: FLOAT float_domain { min: 0.0 disallow_nan: true disallow_inf: true } }
feature { name: "pickup_latitude" type: FLOAT float_domain { disallow_nan: true disallow_inf: true } }
feature {
  name: "tips"
  type: FLOAT
  presence { min_fraction: 1.0 min_count: 1 }
  not_in_environment: "SERVING"
}
string_domain {
  name: "payment_type"
  value: "Cash"
  value: "Credit Card"
  value: "Dispute"
  value: "No Charge"
  value: "Pcard"
  value: "Prcard"
  value: "Unknown"
}
"""
# A value no schema lists.
UNKNOWN_VALUE = "never-seen-before"


@pytest.fixture(scope="module")
def schema() -> schema_pb2.Schema:
    return text_format.Parse(OWN_SCHEMA, schema_pb2.Schema())


@pytest.fixture(scope="module")
def configured_schema(configured_data: ConfiguredData) -> schema_pb2.Schema:
    return configured_data.schema


def curated_path() -> Path:
    """The configured curated schema file, which these tests read as the pipeline imports it."""
    path = load_config().schema_path
    assert path is not None and "://" not in path, "these tests need a curated schema in the repository"
    return in_repository(path)


def anomalies(**features: tuple[int, str]) -> anomalies_pb2.Anomalies:
    """Anomalies as TFDV writes them: feature -> (reason type, reason description)."""
    result = anomalies_pb2.Anomalies()
    for name, (kind, description) in features.items():
        info = result.anomaly_info[name]
        info.description = description
        info.reason.add(type=kind, description=description)
    return result


def test_each_anomaly_says_what_the_schema_expects_and_what_was_found(schema: schema_pb2.Schema) -> None:
    found = anomalies(
        payment_type=(Type.ENUM_TYPE_UNEXPECTED_STRING_VALUES, f"{UNEXPECTED_VALUES}: Bitcoin (~5%). "),
        trip_start_hour=(Type.INT_TYPE_BIG_INT, "Unexpectedly large value: 30."),
        company=(Type.SCHEMA_MISSING_COLUMN, "Column is completely missing"),
        fare=(Type.UNEXPECTED_DATA_TYPE, "Expected data of type: FLOAT but got STRING"),
        driver_rating=(Type.SCHEMA_NEW_COLUMN, "New column (column in data but not in schema)"),
    )  # fmt: skip
    lines = [anomaly.line() for anomaly in anomaly_text.describe(found, schema)]
    assert lines == [
        "company: expected the column to be present; found column is completely missing",
        "driver_rating: expected only the columns the schema lists (this one is not in it); "
        "found new column (column in data but not in schema)",
        "fare: expected numbers (FLOAT); found values of type STRING",
        "payment_type: expected at least 99% of the values from the schema's list (Cash, Credit Card, Dispute, "
        "No Charge, Pcard, Prcard, Unknown); found values not in the list: Bitcoin (~5%)",
        "trip_start_hour: expected values from 0 to 23; found unexpectedly large value: 30",
    ]


def test_splits_with_the_same_anomaly_are_merged() -> None:
    same = anomaly_text.Anomaly("fare", "numbers (FLOAT)", "values of type STRING")
    other = anomaly_text.Anomaly("tips", "values of at least 0", "small value: -1")
    merged = anomaly_text.merge_splits(
        {
            "train": [same, other],
            "eval": [same, anomaly_text.Anomaly("tips", "values of at least 0", "small value: -3")],
        }
    )
    assert [anomaly.line() for anomaly in merged] == [
        "fare [train, eval]: expected numbers (FLOAT); found values of type STRING",
        "tips [train, eval]: expected values of at least 0; found train: small value: -1; eval: small value: -3",
    ]
    assert anomaly_text.summary(merged, "schema/schema.pbtxt") == (
        "the data does not match the schema schema/schema.pbtxt: 2 features break it (fare, tips)"
    )


def run_gate(tmp_path: Path, per_split: dict[str, anomalies_pb2.Anomalies]) -> Path:
    found = standard_artifacts.ExampleAnomalies()
    found.uri = str(tmp_path / "anomalies")
    found.split_names = artifact_utils.encode_split_names(list(per_split))
    for split, proto in per_split.items():
        folder = Path(found.uri) / f"Split-{split}"
        folder.mkdir(parents=True)
        (folder / ANOMALIES_FILE).write_bytes(proto.SerializeToString())
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    Path(schema.uri).mkdir()
    (Path(schema.uri) / "schema.pbtxt").write_text(OWN_SCHEMA)
    validated = standard_artifacts.Schema()
    validated.uri = str(tmp_path / "validated")
    Executor().Do(
        {ANOMALIES_KEY: [found], SCHEMA_KEY: [schema]},
        {VALIDATED_SCHEMA_KEY: [validated]},
        {SCHEMA_SOURCE_KEY: "schema/schema.pbtxt"},
    )
    return Path(validated.uri) / "schema.pbtxt"


def test_the_gate_passes_the_schema_on_when_no_split_has_anomalies(tmp_path: Path) -> None:
    passed = run_gate(tmp_path, {"train": anomalies_pb2.Anomalies(), "eval": anomalies_pb2.Anomalies()})
    assert passed.read_text() == OWN_SCHEMA


def test_the_gate_fails_with_a_summary_then_one_line_per_anomaly(tmp_path: Path) -> None:
    broken = anomalies(tips=(Type.FEATURE_TYPE_NOT_PRESENT, "The feature was not present in any examples."))
    with pytest.raises(DataValidationError) as error:
        run_gate(tmp_path, {"train": anomalies_pb2.Anomalies(), "eval": broken})
    assert str(error.value).splitlines() == [
        "the data does not match the schema schema/schema.pbtxt: 1 feature breaks it (tips); "
        "the run stopped before Transform",
        "  tips [eval]: expected a value in every row; found the feature was not present in any examples",
        "to accept a legitimate change in the data: `make schema`, then see docs/data-validation.md",
    ]
    assert not (tmp_path / "validated").exists()


def statistics_with(folder: Path, data: ConfiguredData, changes: dict[str, Callable[[int, str], str]]) -> object:
    """Statistics as the pipeline computes them, of the configured rows with each column of `changes`
    changed by value(row index, old value)."""
    names = [name.removeprefix("\ufeff") for name in data.header]
    at = {names.index(column): value for column, value in changes.items()}
    rows = [[at[j](i, cell) if j in at else cell for j, cell in enumerate(row)] for i, row in enumerate(data.rows)]
    write_csv(folder, data.header, rows)
    statistics, _ = example_statistics(str(folder), data.missing)  # and warnings about numeric-looking text
    return statistics


def tolerant_text_features() -> list[tuple[str, float]]:
    """The configured schema's text features with a list of values that tolerate a share of others:
    (name, min_domain_mass)."""
    path = load_config().schema_path
    if path is None or "://" in path:
        return []
    schema = text_format.Parse(in_repository(path).read_text(encoding="utf-8"), schema_pb2.Schema())
    domains = {domain.name for domain in schema.string_domain}
    return [
        (feature.name, feature.distribution_constraints.min_domain_mass)
        for feature in schema.feature
        if feature.type == schema_pb2.BYTES
        and (feature.HasField("string_domain") or feature.domain in domains)
        and 0 < feature.distribution_constraints.min_domain_mass < 1
    ]


@pytest.mark.parametrize(("feature", "min_domain_mass"), tolerant_text_features())
def test_a_few_unknown_text_values_pass_and_many_do_not(
    tmp_path: Path,
    configured_data: ConfiguredData,
    configured_schema: schema_pb2.Schema,
    feature: str,
    min_domain_mass: float,
) -> None:
    """Values outside the schema's list, in half the share it tolerates, pass; in five times that share, not."""
    tolerated = 1 - min_domain_mass
    column = [name.removeprefix("\ufeff") for name in configured_data.header].index(feature)
    present = [i for i, row in enumerate(configured_data.rows) if row[column] not in configured_data.missing]

    def unknown_in_every(step: int) -> Callable[[int, str], str]:
        chosen = set(present[min(3, step - 1) :: step])
        return lambda i, value: UNKNOWN_VALUE if i in chosen else value

    few = statistics_with(tmp_path / "few", configured_data, {feature: unknown_in_every(math.ceil(2 / tolerated))})
    assert not tfdv.validate_statistics(few, configured_schema).anomaly_info
    many_step = max(1, math.floor(1 / (5 * tolerated)))
    many = statistics_with(tmp_path / "many", configured_data, {feature: unknown_in_every(many_step)})
    assert set(tfdv.validate_statistics(many, configured_schema).anomaly_info) == {feature}


def test_the_label_is_required_in_training_but_not_in_serving(
    tmp_path: Path, configured_data: ConfiguredData, configured_schema: schema_pb2.Schema
) -> None:
    """The label's own columns (models/label.py, not features) are training-only, as `make schema` proposes."""
    own = set(label.COLUMNS) - set(features.RAW_FEATURE_KEYS)
    assert own, "every label column is a feature: serving requests carry them all"
    no_label = statistics_with(tmp_path / "no-label", configured_data, dict.fromkeys(own, lambda i, v: ""))
    assert set(tfdv.validate_statistics(no_label, configured_schema).anomaly_info) == own  # ExampleValidator: no env
    assert set(tfdv.validate_statistics(no_label, configured_schema, environment="TRAINING").anomaly_info) == own
    assert not tfdv.validate_statistics(no_label, configured_schema, environment="SERVING").anomaly_info


def test_an_edited_schema_is_imported_again(tmp_path: Path) -> None:
    curated = curated_path()
    first, edited = tmp_path / "first.pbtxt", tmp_path / "edited.pbtxt"
    first.write_text(curated.read_text())
    edited.write_text(curated.read_text() + '\nfeature { name: "added_in_review" type: INT }\n')
    fingerprints = [
        CuratedSchemaGen(schema_file=str(path), fingerprint=schema_fingerprint(path)).exec_properties[
            SCHEMA_FINGERPRINT_KEY
        ]
        for path in (first, curated, edited)
    ]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_an_inferred_schema_is_gated_too(tmp_path: Path) -> None:
    config = load_config(overrides={"runner.output_dir": str(tmp_path), "schema_path": None})
    components = {c.id: c for c in tfx_pipeline.create_pipeline(config).components}
    assert type(components[tfx_pipeline.SCHEMA_GEN]).__name__ == "SchemaGen"
    gate = components[tfx_pipeline.VALIDATION_GATE]
    assert {node.id for node in gate.upstream_nodes} == {tfx_pipeline.EXAMPLE_VALIDATOR, tfx_pipeline.SCHEMA_GEN}
    assert tfx_pipeline.VALIDATION_GATE in {node.id for node in components[tfx_pipeline.TRANSFORM].upstream_nodes}


def test_nan_and_infinity_are_said_in_plain_words(schema: schema_pb2.Schema) -> None:
    # TFDV's types and wording for float_domain { disallow_nan: true disallow_inf: true }.
    found = anomalies(
        fare=(Type.FLOAT_TYPE_HAS_NAN, "Float feature has NaN values."),
        pickup_latitude=(Type.FLOAT_TYPE_HAS_INF, "Float feature has Inf values."),
    )
    lines = [anomaly.line() for anomaly in anomaly_text.describe(found, schema)]
    assert lines == [
        "fare: expected numbers that are neither NaN nor infinite; "
        "found NaN values (not a number, such as nan or NaN in the CSV)",
        "pickup_latitude: expected numbers that are neither NaN nor infinite; "
        "found infinite values (such as inf or -Infinity in the CSV)",
    ]


def test_every_float_feature_of_the_curated_schema_refuses_nan_and_infinity(configured_data: ConfiguredData) -> None:
    """FLOAT in the schema is what CsvExampleGen reads as floats from the data, and none takes NaN or infinity."""
    schema = text_format.Parse(curated_path().read_text(encoding="utf-8"), schema_pb2.Schema())
    floats = [feature for feature in schema.feature if feature.type == schema_pb2.FLOAT]
    float_columns = {name for name, kind in configured_data.column_types.items() if kind == "FLOAT"}
    assert {feature.name for feature in floats} == float_columns & {feature.name for feature in schema.feature}
    for feature in floats:
        assert feature.float_domain.disallow_nan and feature.float_domain.disallow_inf, feature.name


def test_a_byte_order_mark_in_a_column_name_is_made_visible(schema: schema_pb2.Schema) -> None:
    # TFX's CSV reader on Dataflow keeps the mark in the first column's name.
    marked = "\ufeffpickup_community_area"
    found = anomalies(**{marked: (Type.SCHEMA_NEW_COLUMN, "New column (column in data but not in schema)")})
    (anomaly,) = anomaly_text.describe(found, schema)
    assert anomaly.line().startswith("'\\ufeffpickup_community_area': expected only the columns the schema lists")
    assert "byte-order mark" in anomaly.line()
    assert "('\\ufeffpickup_community_area')" in anomaly_text.summary([anomaly], "schema/schema.pbtxt")
