"""The drift check: the curated schema's thresholds, TFX's DistributionValidator (with the executor of
components/drift.py) on statistics computed as the pipeline computes them, and the gate's words.

The executor and the gate run on data and a schema of the tests' own; the configured schema's
thresholds are checked for what holds in any project (the taxi schema's own: tests/example/)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from components import anomaly_text, drift, validation_gate
from components.baseline.executor import FOUND_KEY, REASON_KEY
from components.baseline.statistics import DATA_OF_KEY
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from runners.local.schema_proposal import example_statistics
from tests.pipeline.expected import DRIFT_STEPS, curated_schema, schema_with_drift_thresholds

SCHEMA_SOURCE = "schema/schema.pbtxt"
# The tests' own schema: a drift threshold on a number (quantile histograms, not swung by one outlier)
# and on a text column.
OWN_SCHEMA = """\
feature {
  name: "amount"
  type: FLOAT
  presence { min_fraction: 1.0 min_count: 1 }
  shape { dim { size: 1 } }
  drift_comparator { jensen_shannon_divergence { threshold: 0.3 source { type: QUANTILES } } }
}
feature {
  name: "kind"
  type: BYTES
  presence { min_fraction: 1.0 min_count: 1 }
  shape { dim { size: 1 } }
  drift_comparator { infinity_norm { threshold: 0.3 } }
}
"""
OWN_ROWS = 600
DATA_OF = "the data of the model pushed by Pusher execution 11 (run 2026-11-30T10:00:00)"
Type = anomalies_pb2.AnomalyInfo.Type
Measurement = anomalies_pb2.DriftSkewInfo.Measurement.Type


@pytest.mark.parametrize("variant", ["as configured", "one added", "none"])
def test_the_schemas_thresholds_become_the_validators_config(variant: str) -> None:
    """Each drift_comparator of the configured schema (refused if it does not fit its feature's type),
    as it is, on its feature; a schema without one compares nothing."""
    schema = curated_schema(load_config()) or text_format.Parse(OWN_SCHEMA, schema_pb2.Schema())
    if variant != "as configured":
        schema = schema_with_drift_thresholds(schema, present=variant == "one added")
    config = drift.drift_config(schema, SCHEMA_SOURCE)
    thresholds = {
        comparator.path.step[0]: comparator.distribution_comparator
        for comparator in config.default_slice_config.feature
    }
    assert thresholds == {
        feature.name: feature.drift_comparator for feature in schema.feature if feature.HasField("drift_comparator")
    }
    if variant != "as configured":
        assert len(thresholds) == (1 if variant == "one added" else 0)


@pytest.mark.parametrize(
    ("feature", "comparator", "expected"),
    [
        (
            'name: "fare" type: FLOAT',
            "infinity_norm { threshold: 0.1 }",
            "schema.pbtxt: feature fare (FLOAT): drift_comparator infinity_norm does not apply: L-infinity",
        ),
        (
            'name: "company" type: BYTES',
            "jensen_shannon_divergence { threshold: 0.1 }",
            "schema.pbtxt: feature company (BYTES): drift_comparator jensen_shannon_divergence does not apply: ",
        ),
    ],
)
def test_a_comparator_that_does_not_fit_the_type_is_refused(feature: str, comparator: str, expected: str) -> None:
    # TFDV would compare nothing there, without a word.
    schema = text_format.Parse(f"feature {{ {feature} drift_comparator {{ {comparator} }} }}", schema_pb2.Schema())
    with pytest.raises(drift.DriftThresholdError) as error:
        drift.drift_config(schema, "schema.pbtxt")
    assert str(error.value).startswith(expected)


def test_only_a_local_curated_schema_with_thresholds_adds_the_drift_check(tmp_path: Path) -> None:
    def step_ids(**overrides: object) -> set[str]:
        config = load_config(overrides={"runner.output_dir": str(tmp_path), **overrides})
        return {component.id for component in tfx_pipeline.create_pipeline(config).components}

    schema = curated_schema(load_config())
    assert schema is not None, "these tests need a curated schema in the repository (schema_path)"
    files = {}
    for present in (True, False):
        files[present] = tmp_path / f"drift-{present}.pbtxt"
        files[present].write_text(text_format.MessageToString(schema_with_drift_thresholds(schema, present)))
    assert step_ids(schema_path=str(files[True])) >= DRIFT_STEPS
    assert not DRIFT_STEPS & step_ids(schema_path=None)  # inferred: no thresholds
    assert not DRIFT_STEPS & step_ids(schema_path=str(files[False]))


# ---- the plain words --------------------------------------------------------------------------


def drift_anomalies(feature: str, kind: int, value: float, threshold: float, description: str = "") -> bytes:
    """One split pair's Anomalies as TFX's DistributionValidator writes them."""
    reason = {Measurement.L_INFTY: Type.COMPARATOR_L_INFTY_HIGH}.get(
        kind, Type.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH
    )
    result = anomalies_pb2.Anomalies()
    result.anomaly_info[feature].reason.add(type=reason, description=description)
    info = result.drift_skew_info.add()
    info.path.step.append(feature)
    info.drift_measurements.add(type=kind, value=value, threshold=threshold)
    return result


def test_drift_is_said_per_feature_with_its_measure_and_threshold() -> None:
    found = anomaly_text.describe_drift(
        {
            "train_train": drift_anomalies("tips", Measurement.JENSEN_SHANNON_DIVERGENCE, 1.0, 0.3),
            "eval_eval": drift_anomalies("tips", Measurement.JENSEN_SHANNON_DIVERGENCE, 0.97, 0.3),
        }
    )
    found += anomaly_text.describe_drift(
        {
            "train_train": drift_anomalies(
                "payment_type",
                Measurement.L_INFTY,
                0.30004,
                0.3,
                "The Linfty distance between current and previous is 0.30004 (up to six significant digits), above "
                "the threshold 0.3. The feature value with maximum difference is: Cash",
            )
        }
    )
    assert [item.line() for item in found] == [
        "tips [train, eval vs the baseline's data]: the distribution moved by Jensen-Shannon divergence "
        "1.00 in train, 0.97 in eval (allowed 0.3)",
        "payment_type [train vs the baseline's data]: the distribution moved by L-infinity distance 0.30004, "
        "most in the share of Cash (allowed 0.3)",
    ]
    assert anomaly_text.drift_summary(found, SCHEMA_SOURCE) == (
        "the data differs from the data the current model was trained on: 2 features moved beyond the drift "
        "thresholds of schema/schema.pbtxt (payment_type, tips)"
    )


def test_a_feature_that_could_not_be_compared_is_said_too() -> None:
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["company"].reason.add(
        type=Type.STATS_NOT_AVAILABLE, description="Validation could not be done, which could be due to missing data."
    )
    (item,) = anomaly_text.describe_drift({"eval_eval": anomalies})
    assert item.line() == (
        "company [eval vs the baseline's data]: could not be compared "
        "(validation could not be done, which could be due to missing data)"
    )


# ---- TFX's DistributionValidator and the gate, on statistics as the pipeline computes them ----


def write_rows(folder: Path, amount: Callable[[int], str]) -> Path:
    """OWN_ROWS rows of the own schema's columns: amount(i), and one of three kinds in turn."""
    folder.mkdir()
    with (folder / "data.csv").open("w", newline="") as file:
        rows = [[amount(i), ("card", "cash", "app")[i % 3]] for i in range(OWN_ROWS)]
        csv.writer(file).writerows([["amount", "kind"], *rows])
    return folder


@pytest.fixture(scope="module")
def statistics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Statistics folders (Split-train and Split-eval) of rows with amounts spread from 10 to 100, and
    of the same rows with every amount set to 5.0: a column broken at the source that the schema accepts."""
    work = tmp_path_factory.mktemp("drift-statistics")
    data = {
        "good": write_rows(work / "good-data", lambda i: f"{10 + (i * 37) % 90}.5"),
        "broken": write_rows(work / "broken-data", lambda i: "5.0"),
    }
    folders = {}
    for name, folder in data.items():
        folders[name] = work / name
        computed, _ = example_statistics(str(folder))
        serialized = computed.SerializeToString()
        for split in ("train", "eval"):
            (folders[name] / f"Split-{split}").mkdir(parents=True)
            (folders[name] / f"Split-{split}" / "FeatureStats.pb").write_bytes(serialized)
    return folders


def statistics_artifact(folder: Path) -> standard_artifacts.ExampleStatistics:
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(folder)
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    return artifact


def check(tmp_path: Path, current: Path, baseline: Path | None) -> standard_artifacts.Schema:
    """Runs the DistributionValidator (baseline None: BaselineStatistics' "none found" marker), then the
    gate on its anomalies; returns the gate's output."""
    if baseline is None:
        found = standard_artifacts.ExampleStatistics()
        found.uri = str(tmp_path / "marker")
        found.set_int_custom_property(FOUND_KEY, 0)
        found.set_string_custom_property(REASON_KEY, "no model of this pipeline was registered yet")
    else:
        found = statistics_artifact(baseline)
        found.set_int_custom_property(FOUND_KEY, 1)
        found.set_string_custom_property(DATA_OF_KEY, DATA_OF)
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "drift")
    config = drift.drift_config(text_format.Parse(OWN_SCHEMA, schema_pb2.Schema()), SCHEMA_SOURCE)
    drift.Executor().Do(
        {drift.STATISTICS_KEY: [statistics_artifact(current)], drift.BASELINE_STATISTICS_KEY: [found]},
        {drift.ANOMALIES_KEY: [anomalies]},
        {drift.CONFIG_KEY: proto_utils.proto_to_json(config)},  # JSON, as a Vertex AI step gets it
    )
    return run_gate(tmp_path, anomalies)


def run_gate(tmp_path: Path, drift_anomalies: standard_artifacts.ExampleAnomalies) -> standard_artifacts.Schema:
    no_anomalies = standard_artifacts.ExampleAnomalies()
    no_anomalies.uri = str(tmp_path / "anomalies")
    no_anomalies.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        (tmp_path / "anomalies" / f"Split-{split}").mkdir(parents=True)
        (tmp_path / "anomalies" / f"Split-{split}" / validation_gate.ANOMALIES_FILE).write_bytes(b"")
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "schema.pbtxt").write_text(OWN_SCHEMA)
    validated = standard_artifacts.Schema()
    validated.uri = str(tmp_path / "validated")
    validation_gate.Executor().Do(
        {
            validation_gate.ANOMALIES_KEY: [no_anomalies],
            validation_gate.SCHEMA_KEY: [schema],
            validation_gate.DRIFT_KEY: [drift_anomalies],
        },
        {validation_gate.VALIDATED_SCHEMA_KEY: [validated]},
        {validation_gate.SCHEMA_SOURCE_KEY: SCHEMA_SOURCE},
    )
    return validated


def test_a_broken_column_stops_the_gate_with_one_line_per_feature(statistics: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(validation_gate.DataDriftError) as error:
        check(tmp_path, statistics["broken"], baseline=statistics["good"])
    assert isinstance(error.value, validation_gate.DataValidationError)  # the CLI's exit 2 and one-line answer
    assert str(error.value).splitlines() == [
        "the data differs from the data the current model was trained on: 1 feature moved beyond the drift "
        "thresholds of schema/schema.pbtxt (amount); the run stopped before Transform",
        "  amount [train, eval vs the baseline's data]: the distribution moved by Jensen-Shannon divergence 1.00 "
        "(allowed 0.3)",
        f"  compared with {DATA_OF}",
        "to accept a legitimate change in the data: raise the feature's drift_comparator threshold in "
        "schema/schema.pbtxt, have the edit reviewed, and run again; see docs/data-validation.md",
    ]
    assert not (tmp_path / "validated" / "schema.pbtxt").exists()


def test_the_same_distribution_passes_and_the_gate_says_what_it_compared(
    statistics: dict[str, Path], tmp_path: Path
) -> None:
    passed = check(tmp_path, statistics["good"], baseline=statistics["good"])
    assert (Path(passed.uri) / "schema.pbtxt").read_text() == OWN_SCHEMA
    assert passed.get_string_custom_property(validation_gate.DRIFT_CHECK_KEY) == (
        f"passed: compared with {DATA_OF}, no feature beyond its threshold in schema/schema.pbtxt"
    )


def test_without_a_baseline_the_comparison_is_skipped_and_said(statistics: dict[str, Path], tmp_path: Path) -> None:
    passed = check(tmp_path, statistics["broken"], baseline=None)
    assert passed.get_string_custom_property(validation_gate.DRIFT_CHECK_KEY) == (
        "skipped: no model of this pipeline was registered yet"
    )
    assert not list((tmp_path / "drift").glob("SplitPair-*"))  # TFX compared nothing
