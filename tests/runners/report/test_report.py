"""The run report: one self-contained HTML page carrying the run's real numbers.

The run is the session's good run (tests/runners/conftest.py); what the page must show is derived
from the configuration, the schema and models/ (features, label)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2

from components.anomaly_text import Anomaly
from components.eval_metrics import EXAMPLE_COUNT, MEAN_LABEL, MetricId, blessing_metric_id, metric_id
from models import label
from runners import errors
from runners.report.collect import RunData, SliceMetrics, Threshold
from runners.report.render import SECTIONS, render
from tests.runners import columns
from tests.runners.conftest import LocalRun, run_cli

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
DTYPES = {schema_pb2.INT: "int64", schema_pb2.FLOAT: "float32", schema_pb2.BYTES: "string"}
NEEDS_BOTH_CLASSES = ("auc", "auc_precision_recall")


@pytest.fixture(scope="module")
def report(good_run: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    status, stdout, stderr = run_cli(
        ["report", "--config", str(good_run.config), "--output-dir", str(good_run.output), "--output", str(path)]
    )
    assert status == errors.EXIT_OK, stderr
    assert stdout.strip() == f"Report: {path}"
    return path.read_text()


def evaluation_uri(output: Path, pipeline_name: str) -> str:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(output / "metadata" / pipeline_name / "metadata.sqlite")
    store = metadata_store.MetadataStore(connection)
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.Evaluator")
    (execution,) = store.get_executions_by_context(context.id)
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.path.steps[0].key == "evaluation"]
    return store.get_artifacts_by_id([events[0].artifact_id])[0].uri


def cell(html: str, slice_name: str, metric: str) -> str:
    attributes = rf'data-slice="{re.escape(slice_name)}" data-metric="{metric}" data-model="candidate"'
    found = re.search(attributes + r'(?: title="[^"]*")?>([^<]*)<', html)
    assert found, (slice_name, metric)
    return found.group(1)


def test_run_local_writes_the_report_and_prints_its_path(good_run: LocalRun) -> None:
    line = next(line for line in good_run.stdout.splitlines() if line.startswith("Report:"))
    path = Path(line.removeprefix("Report:").strip())
    assert path.is_file() and path.is_relative_to(good_run.output / "reports" / good_run.pipeline_name)
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_every_section_is_there_and_nothing_is_fetched(report: str, good_run: LocalRun) -> None:
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in report
    assert "<script" not in report and "<link" not in report and " src=" not in report
    assert set(re.findall(r"https?://[^\s\"'<>]+", report)) <= {SVG_NAMESPACE}
    # A chart per column and split, and one of the slices.
    charts = len(columns.read_table(good_run.data)[0]) * len(good_run.summary["rows_per_split"])
    charts += bool(good_run.pipeline_config().evaluation.slice_features)
    assert report.count("<svg ") >= charts


def slice_name(slice_key) -> str:  # a TFMA SliceKey proto
    keys = slice_key.single_slice_keys
    values = [getattr(key, key.WhichOneof("kind")) for key in keys]
    shown = [value.decode() if isinstance(value, bytes) else value for value in values]
    return ", ".join(f"{key.column} = {value}" for key, value in zip(keys, shown, strict=True)) or "Overall"


def undefined_on_the_slice(metric: MetricId, label_means: dict[int | None, float]) -> bool:
    """AUC needs both classes: on a slice of one class (the label's mean 0 or 1, per class for a
    multi-class task; for the macro average, a class absent) TFMA reports 0.0 and the report 'undefined'."""
    if metric.name not in NEEDS_BOTH_CLASSES:
        return False
    if metric.macro_average:
        return any(mean == 0.0 for class_id, mean in label_means.items() if class_id is not None)
    return label_means.get(metric.class_id) in (0.0, 1.0)


def test_metrics_overall_and_per_slice_are_tfma_s(report: str, good_run: LocalRun) -> None:
    """The blessing metric (each of its keys: per class, macro average) and the example count of
    every slice are TFMA's numbers."""
    config = good_run.pipeline_config()
    blessing, task = config.evaluation.blessing, label.TASK
    sliced_by: set[str] = set()
    for metrics in tfma.load_metrics(evaluation_uri(good_run.output, config.pipeline_name)):
        name = slice_name(metrics.slice_key)
        sliced_by |= {key.column for key in metrics.slice_key.single_slice_keys}
        values = {
            metric_id(entry.key): entry.value.double_value.value
            for entry in metrics.metric_keys_and_values
            if entry.value.HasField("double_value") and not entry.key.is_diff
        }
        label_means = {metric.class_id: value for metric, value in values.items() if metric.name == MEAN_LABEL}
        shown = [metric for metric in values if metric.name in (blessing.metric, EXAMPLE_COUNT)]
        assert {metric.name for metric in shown} == {blessing.metric, EXAMPLE_COUNT}, name
        for metric in shown:
            expected = "undefined" if undefined_on_the_slice(metric, label_means) else f"{values[metric]:.4f}"
            if metric.name == EXAMPLE_COUNT:
                expected = f"{values[metric]:,.0f}"
            assert cell(report, name, re.escape(metric.text(task))) == expected, (name, metric)
    assert sliced_by == set(config.evaluation.slice_features)
    blessed_key = blessing_metric_id(blessing.metric, task).text(task)
    assert cell(report, "Overall", re.escape(blessed_key)) == f"{good_run.summary['metrics'][blessed_key]:.4f}"
    bounds = [f"at least {blessing.minimum:g}" if blessing.minimum is not None else None]
    bounds.append(f"at most {blessing.maximum:g}" if blessing.maximum is not None else None)
    assert f"{'; '.join(bound for bound in bounds if bound)} (on Overall)" in report


def test_statistics_anomalies_schema_and_verdict_are_this_run_s(report: str, good_run: LocalRun) -> None:
    summary = good_run.summary
    for split, rows in summary["rows_per_split"].items():
        assert f"{split}: {rows:,} rows" in report
    for feature in columns.model_columns():
        assert f'id="feature-{feature}"' in report
    assert 'id="no-anomalies"' in report
    for column in columns.training_only_columns():  # the label's own columns
        row = re.search(rf"<td><b>{re.escape(column)}</b></td>(.*?)</tr>", report).group(1)
        type_name = schema_pb2.FeatureType.Name(columns.schema_feature(column).type)
        assert type_name in row and "not in SERVING" in row
    for column in columns.model_columns():  # the imported schema.pbtxt, as text
        assert html.escape(f'name: "{column}"') in report
    assert ('<span class="ok">BLESSED</span>' in report) == summary["blessed"]
    assert '<p id="baseline-model">none: no earlier blessed model' in report
    assert summary["pushed_model"] in report


def test_signatures_are_the_model_s(report: str) -> None:
    signatures = re.search(r'<section id="signatures">(.*?)</section>', report).group(1)
    for name in ("serving_default", "serving_examples", "transform_features"):
        assert f"<b>{name}</b>" in signatures
    task = label.TASK
    assert "examples: string [None]" in signatures
    assert f"{task.output_key}: float32 [None, {task.output_width}]" in signatures
    for feature, kind in columns.feature_types().items():  # serving_default's inputs
        assert f"{feature}: {DTYPES[kind]} [None]" in signatures


def test_past_runs_are_listed_and_chosen_by_id(good_run: LocalRun, tmp_path: Path) -> None:
    base = ["report", "--config", str(good_run.config), "--output-dir", str(good_run.output)]
    status, stdout, _ = run_cli([*base, "--list"])
    assert status == errors.EXIT_OK
    (run_id,) = stdout.split()
    status, stdout, _ = run_cli([*base, "--run", run_id])
    assert status == errors.EXIT_OK and run_id.replace(":", "-").replace(".", "-") in stdout
    status, _, stderr = run_cli([*base, "--run", "1999-01-01T00:00:00"])
    assert status == errors.EXIT_BAD_INPUT
    assert stderr.strip() == f"error: no run '1999-01-01T00:00:00' (latest runs: {run_id})"
    status, _, stderr = run_cli([*base[:3], "--output-dir", str(tmp_path)])
    assert status == errors.EXIT_BAD_INPUT and stderr.startswith("error: no run yet:")


def test_a_baseline_and_anomalies_are_shown_when_there_are_some() -> None:
    data = RunData(
        pipeline_name="my-pipeline",
        run_id="2030-01-01T00:00:00",
        executions={"ValidationGate": "COMPLETE", "Evaluator": "COMPLETE"},
        anomalies=[Anomaly("company", "values from the list", "values not in the list: X (~20%)", ("train",))],
        metrics=[SliceMetrics("Overall", {"auc": 0.91}, {"auc": 0.93})],
        thresholds=[Threshold("auc", "at least 0.9 (on Overall)", 0.9, "Overall")],
        blessed=False,
        baseline_model="/out/Trainer/model/7",
    )
    html = render(data)
    assert '<p id="baseline-model">/out/Trainer/model/7</p>' in html
    assert "<b>company</b> [train]: expected values from the list; found values not in the list: X (~20%)" in html
    assert 'data-slice="Overall" data-metric="auc" data-model="baseline">0.9300<' in html
    assert '<span class="bad">NOT BLESSED</span>' in html


def test_undefined_values_per_class_keys_and_why_not_blessed_are_shown() -> None:
    data = RunData(
        pipeline_name="iris",
        run_id="2030-01-01T00:00:00",
        executions={"Evaluator": "COMPLETE"},
        metrics=[
            SliceMetrics("Overall", {"auc (macro average)": 0.9999, "auc[setosa]": 1.0, "example_count": 150.0}),
            SliceMetrics(
                "petal = small",
                {"auc (macro average)": None, "auc[setosa]": None, "example_count": 50.0},
                undefined={"auc[setosa]": "the slice holds only examples of 'setosa'"},
            ),
        ],
        thresholds=[
            Threshold("auc (macro average)", "at least 0.9; at most 0.995 (on Overall)", 0.9, "Overall", 0.995)
        ],
        blessing_failures=["auc (macro average) 0.9999 is above the ceiling 0.995 (evaluation.blessing.maximum): ..."],
        blessed=False,
        task_description="3-class classification (setosa, versicolor, virginica)",
    )
    html = render(data)
    assert cell(html, "Overall", "auc \\(macro average\\)") == "0.9999"
    assert cell(html, "Overall", "auc\\[setosa\\]") == "1.0000"
    assert 'data-metric="auc[setosa]" data-model="candidate" title="the slice holds only examples of' in html
    assert ">undefined<" in html and "0.0000" not in html
    assert '<ul id="blessing-failures"><li>auc (macro average) 0.9999 is above the ceiling 0.995' in html
    assert "3-class classification (setosa, versicolor, virginica)" in html
    assert "auc (macro average) per slice" in html
