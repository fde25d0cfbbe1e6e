"""The drift check in real local runs: this run's data against the data the pushed model was trained on.

The session's good run (tests/runners/conftest.py) is a first run: nothing was pushed before it, so
its drift check is skipped, and says so (a curated schema without drift thresholds has no drift
check at all). The runs here work on copies of its output folder with the curated schema, or, when
that sets no drift threshold on the label's source column (models/label.py COLUMNS), a copy of it
with one. That column broken at the source, its rarest value in every row but every 20th (the
schema and the checks before a run accept it: the label still has two classes), stops at the
ValidationGate before Transform; other rows of the same data go through.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from components.validation_gate import DRIFT_CHECK_KEY
from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig
from runners import errors
from runners.report.collect import collect
from tests.conftest import SMALL_SAMPLE_ROWS, write_data_sample
from tests.pipeline.expected import DRIFT_STEPS, schema_sets_drift_thresholds
from tests.runners import columns
from tests.runners.conftest import LocalRun, run_cli, tree_hash

PUSHED_BY = r"the data of the model pushed by Pusher execution \d+ \(run [0-9T:.-]+\)"
# The rows whose label's source column keeps its value: the label keeps two classes.
KEPT_EVERY = 20
# The thresholds a copy of the curated schema gets on the label's source column, as the taxi
# schema's: numbers by the Jensen-Shannon divergence of quantile histograms, text by L-infinity.
# Integers get a lower one: a column of a few values moves little by that measure however broken
# (a 0/1 column half ones moves by 0.31 when every value becomes 1).
ADDED_COMPARATOR = {
    schema_pb2.BYTES: "drift_comparator { infinity_norm { threshold: 0.2 } }",
    schema_pb2.INT: "drift_comparator { jensen_shannon_divergence { threshold: 0.1 source { type: QUANTILES } } }",
    schema_pb2.FLOAT: "drift_comparator { jensen_shannon_divergence { threshold: 0.3 source { type: QUANTILES } } }",
}
MEASURES = {"infinity_norm": "L-infinity distance", "jensen_shannon_divergence": "Jensen-Shannon divergence"}


@dataclass(frozen=True)
class DriftCheck:
    """The config the runs here use, and the drift threshold on the label's source column it sets."""

    config: Path
    schema_source: str
    column: str
    measure: str
    threshold: float


@pytest.fixture(scope="module")
def drift_config(good_run: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> DriftCheck:
    column = columns.label_source()
    schema = columns.curated_schema()
    feature = next(feature for feature in schema.feature if feature.name == column)
    config, source = good_run.config, columns.schema_source()
    if not feature.HasField("drift_comparator"):
        text_format.Merge(ADDED_COMPARATOR[feature.type], feature)
        folder = tmp_path_factory.mktemp("drift-schema")
        schema_file = folder / "schema.pbtxt"
        schema_file.write_text(text_format.MessageToString(schema))
        config = folder / "drift.yaml"
        config.write_text(good_run.config.read_text() + f"schema_path: {schema_file}\n")
        source = str(schema_file)
    kind = next(name for name in MEASURES if feature.drift_comparator.HasField(name))
    threshold = getattr(feature.drift_comparator, kind).threshold
    return DriftCheck(config, source, column, MEASURES[kind], threshold)


def copy_of(good_run: LocalRun, folder: Path) -> tuple[Path, Path, str]:
    """A copy of the good run's output folder: (output, its pushed models folder, that folder's hash)."""
    output = folder / "out"
    shutil.copytree(good_run.output, output)
    serving = output / "serving_model" / good_run.pipeline_name
    assert any(serving.iterdir()), "the good run pushed a model"
    return output, serving, tree_hash(serving)


def drift_check(config: PipelineConfig) -> str:
    """What the ValidationGate of the latest run recorded about the drift check ('' when none ran)."""
    store = tfx_pipeline.metadata_store(config)
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{tfx_pipeline.VALIDATION_GATE}")
    latest = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
    events = store.get_events_by_execution_ids([latest.id])
    outputs = [event.artifact_id for event in events if event.type == metadata_store_pb2.Event.OUTPUT]
    (validated_schema,) = store.get_artifacts_by_id(outputs)
    return validated_schema.custom_properties[DRIFT_CHECK_KEY].string_value


def with_broken_label_source(data: Path, folder: Path) -> Path:
    """The rows of `data` with the label's source column at its rarest value, but in every KEPT_EVERY-th row."""
    table = columns.read_table(data)
    column = columns.label_source()
    rarest = columns.rarest_value(table, column)
    broken = columns.with_column(table, column, lambda index, value: value if index % KEPT_EVERY == 0 else rarest)
    return columns.write_table(folder, *broken)


def test_the_first_run_skips_the_drift_check_and_says_so(good_run: LocalRun) -> None:
    config = good_run.pipeline_config()
    executions = collect(config).executions
    if schema_sets_drift_thresholds(config):
        assert drift_check(config) == "skipped: no model of this pipeline was registered yet"
        assert {step: executions[step] for step in DRIFT_STEPS} == dict.fromkeys(DRIFT_STEPS, "COMPLETE")
    else:  # no threshold, no drift check: the gate records none
        assert drift_check(config) == ""
        assert not DRIFT_STEPS & set(executions)
    assert executions[tfx_pipeline.VALIDATION_GATE] == "COMPLETE"
    assert executions[tfx_pipeline.TRAINER] == "COMPLETE"


def test_a_broken_label_is_refused_before_training(
    good_run: LocalRun, drift_config: DriftCheck, tmp_path: Path
) -> None:
    output, serving, serving_hash = copy_of(good_run, tmp_path)
    data = with_broken_label_source(good_run.data, tmp_path / "label-source-broken")

    status, stdout, stderr = run_cli(good_run.args(config=str(drift_config.config), data=str(data), output=str(output)))

    assert status == errors.EXIT_BAD_INPUT, stderr
    lines = stderr.strip().splitlines()
    column, source = drift_config.column, drift_config.schema_source
    assert lines[0] == (
        "error: the data differs from the data the current model was trained on: 1 feature moved beyond the "
        f"drift thresholds of {source} ({column}); the run stopped before Transform"
    )
    moved = re.fullmatch(
        rf"  {re.escape(column)} \[train, eval vs the baseline's data\]: the distribution moved by "
        rf"{drift_config.measure} (.+) \(allowed {drift_config.threshold:g}\)",
        lines[1],
    )
    assert moved, lines[1]
    by = [float(value) for value in re.findall(r"\b\d+\.\d\d\b", moved.group(1).split(", most in the share of")[0])]
    assert by and all(value > drift_config.threshold for value in by), lines[1]
    assert re.fullmatch(rf"  compared with {PUSHED_BY}", lines[2]), lines[2]
    assert lines[3:] == [
        f"to accept a legitimate change in the data: raise the feature's drift_comparator threshold in {source}, "
        "have the edit reviewed, and run again; see docs/data-validation.md"
    ]
    # Nothing after the gate ran in this run; the pushed model is untouched.
    executions = collect(good_run.pipeline_config(output)).executions
    assert executions[tfx_pipeline.VALIDATION_GATE] == "FAILED"
    assert not {tfx_pipeline.TRANSFORM, tfx_pipeline.TRAINER, tfx_pipeline.EVALUATOR, tfx_pipeline.PUSHER} & set(
        executions
    )
    assert tree_hash(serving) == serving_hash
    assert "Pipeline finished" not in stdout


@pytest.fixture(scope="module")
def other_rows_run(
    good_run: LocalRun, drift_config: DriftCheck, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A run on other rows of the same data (none of the good run's), on a copy of its output folder."""
    work = tmp_path_factory.mktemp("other-rows")
    output, _, _ = copy_of(good_run, work)
    data = write_data_sample(work / "other-rows", SMALL_SAMPLE_ROWS, offset=1)
    summary = work / "summary.json"
    args = good_run.args(config=str(drift_config.config), data=str(data), output=str(output))
    status, _, stderr = run_cli([*args, "--summary-json", str(summary)])
    assert status == errors.EXIT_OK, stderr
    config = good_run.pipeline_config(output)
    return {"config": config, "summary": json.loads(summary.read_text())}


def test_other_rows_of_the_same_kind_pass(other_rows_run: dict[str, Any], drift_config: DriftCheck) -> None:
    source = re.escape(drift_config.schema_source)
    assert re.fullmatch(
        rf"passed: compared with {PUSHED_BY}, no feature beyond its threshold in {source}",
        drift_check(other_rows_run["config"]),
    )


def test_the_drift_check_costs_little(other_rows_run: dict[str, Any]) -> None:
    # Measured at about 0.1 s each on the taxi sample; the bound leaves room for a busy machine.
    seconds = {timing["component_id"]: timing["seconds"] for timing in other_rows_run["summary"]["timings"]}
    assert seconds[tfx_pipeline.BASELINE_STATISTICS] + seconds[tfx_pipeline.DISTRIBUTION_VALIDATOR] < 3.0, seconds
