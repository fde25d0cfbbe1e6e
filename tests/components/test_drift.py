"""The drift check: the curated schema's thresholds, TFX's DistributionValidator (with the executor of
components/drift.py) on statistics computed as the pipeline computes them, and the gate's words."""

from __future__ import annotations

import csv
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
from pipeline.paths import REPO_ROOT
from runners.local.schema_proposal import example_statistics

CURATED = REPO_ROOT / "schema" / "schema.pbtxt"
SCHEMA_SOURCE = "schema/schema.pbtxt"
DATA_OF = "the data of the model pushed by Pusher execution 11 (run 2026-11-30T10:00:00)"
Type = anomalies_pb2.AnomalyInfo.Type
Measurement = anomalies_pb2.DriftSkewInfo.Measurement.Type


def test_the_curated_schema_sets_drift_thresholds_for_the_label_sources_and_key_features() -> None:
    config = drift.drift_config_from_file(CURATED, SCHEMA_SOURCE)
    thresholds = {
        comparator.path.step[0]: comparator.distribution_comparator
        for comparator in config.default_slice_config.feature
    }
    assert {"tips", "fare", "trip_miles", "trip_seconds", "payment_type", "company"} <= set(thresholds)
    for label_source in ("tips", "fare"):
        divergence = thresholds[label_source].jensen_shannon_divergence
        assert 0 < divergence.threshold < 1
        assert divergence.source.type == schema_pb2.HistogramSelection.QUANTILES  # not swung by one outlier
    assert 0 < thresholds["payment_type"].infinity_norm.threshold < 1


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

    drift_steps = {tfx_pipeline.BASELINE_STATISTICS, tfx_pipeline.DISTRIBUTION_VALIDATOR}
    assert drift_steps <= step_ids()
    assert not drift_steps & step_ids(schema_path=None)  # inferred: no thresholds
    without = tmp_path / "no-drift.pbtxt"
    without.write_text("\n".join(line for line in CURATED.read_text().splitlines() if "drift_comparator" not in line))
    assert not drift_steps & step_ids(schema_path=str(without))


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


@pytest.fixture(scope="module")
def statistics(small_taxi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Statistics folders (Split-train and Split-eval) of the taxi trips, and of the same trips with
    every tips value set to 5.0: a label broken at the source that the schema accepts."""
    work = tmp_path_factory.mktemp("drift-statistics")
    with (small_taxi_dir / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    tips = header.index("tips")
    broken = work / "broken-data"
    broken.mkdir()
    with (broken / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header] + [[*row[:tips], "5.0", *row[tips + 1 :]] for row in rows])
    folders = {}
    for name, data in (("taxi", small_taxi_dir), ("broken", broken)):
        folders[name] = work / name
        computed, _ = example_statistics(str(data))
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
    config = drift.drift_config_from_file(CURATED, SCHEMA_SOURCE)
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
    (tmp_path / "schema" / "schema.pbtxt").write_text(CURATED.read_text())
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


def test_a_broken_label_stops_the_gate_with_one_line_per_feature(statistics: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(validation_gate.DataDriftError) as error:
        check(tmp_path, statistics["broken"], baseline=statistics["taxi"])
    assert isinstance(error.value, validation_gate.DataValidationError)  # the CLI's exit 2 and one-line answer
    assert str(error.value).splitlines() == [
        "the data differs from the data the current model was trained on: 1 feature moved beyond the drift "
        "thresholds of schema/schema.pbtxt (tips); the run stopped before Transform",
        "  tips [train, eval vs the baseline's data]: the distribution moved by Jensen-Shannon divergence 1.00 "
        "(allowed 0.3)",
        f"  compared with {DATA_OF}",
        "to accept a legitimate change in the data: raise the feature's drift_comparator threshold in "
        "schema/schema.pbtxt, have the edit reviewed, and run again; see docs/data-validation.md",
    ]
    assert not (tmp_path / "validated" / "schema.pbtxt").exists()


def test_the_same_distribution_passes_and_the_gate_says_what_it_compared(
    statistics: dict[str, Path], tmp_path: Path
) -> None:
    passed = check(tmp_path, statistics["taxi"], baseline=statistics["taxi"])
    assert (Path(passed.uri) / "schema.pbtxt").read_text() == CURATED.read_text()
    assert passed.get_string_custom_property(validation_gate.DRIFT_CHECK_KEY) == (
        f"passed: compared with {DATA_OF}, no feature beyond its threshold in schema/schema.pbtxt"
    )


def test_without_a_baseline_the_comparison_is_skipped_and_said(statistics: dict[str, Path], tmp_path: Path) -> None:
    passed = check(tmp_path, statistics["broken"], baseline=None)
    assert passed.get_string_custom_property(validation_gate.DRIFT_CHECK_KEY) == (
        "skipped: no model of this pipeline was registered yet"
    )
    assert not list((tmp_path / "drift").glob("SplitPair-*"))  # TFX compared nothing
