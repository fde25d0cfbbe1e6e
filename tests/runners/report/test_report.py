"""The run report: one self-contained HTML page carrying the run's real numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.anomaly_text import Anomaly
from runners import errors
from runners.report.collect import RunData, SliceMetrics, Threshold
from runners.report.render import SECTIONS, render
from tests.runners.conftest import LocalRun, run_cli

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def report(good_run: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    status, stdout, stderr = run_cli(
        ["report", "--config", str(good_run.config), "--output-dir", str(good_run.output), "--output", str(path)]
    )
    assert status == errors.EXIT_OK, stderr
    assert stdout.strip() == f"Report: {path}"
    return path.read_text()


def evaluation_uri(output: Path) -> str:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(output / "metadata" / "taxi-tips" / "metadata.sqlite")
    store = metadata_store.MetadataStore(connection)
    context = store.get_context_by_type_and_name("node", "taxi-tips.Evaluator")
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
    assert path.is_file() and path.is_relative_to(good_run.output / "reports" / "taxi-tips")
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_every_section_is_there_and_nothing_is_fetched(report: str) -> None:
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in report
    assert "<script" not in report and "<link" not in report and " src=" not in report
    assert set(re.findall(r"https?://[^\s\"'<>]+", report)) <= {SVG_NAMESPACE}
    assert report.count("<svg ") > 30  # a chart per feature and split, and the slices


def test_metrics_overall_and_per_slice_are_tfma_s(report: str, good_run: LocalRun) -> None:
    loaded = list(tfma.load_metrics(evaluation_uri(good_run.output)))
    slices = 0
    for metrics in loaded:
        keys = metrics.slice_key.single_slice_keys
        name = f"{keys[0].column} = {keys[0].int64_value}" if keys else "Overall"
        slices += bool(keys)
        values = {e.key.name: e.value.double_value.value for e in metrics.metric_keys_and_values}
        if values["mean_label"] in (0.0, 1.0):  # one class in the slice: TFMA reports the AUC as 0.0
            assert cell(report, name, "auc") == "undefined"
        else:
            assert cell(report, name, "auc") == f"{values['auc']:.4f}"
        assert cell(report, name, "example_count") == f"{values['example_count']:,.0f}"
    assert slices >= 20  # trip_start_hour
    assert cell(report, "Overall", "auc") == f"{good_run.summary['metrics']['auc']:.4f}"
    assert "at least 0.6; at most 0.995 (on Overall)" in report


def test_statistics_anomalies_schema_and_verdict_are_this_run_s(report: str, good_run: LocalRun) -> None:
    summary = good_run.summary
    for split, rows in summary["rows_per_split"].items():
        assert f"{split}: {rows:,} rows" in report
    for feature in ("fare", "payment_type", "trip_start_hour", "tips"):
        assert f'id="feature-{feature}"' in report
    assert 'id="no-anomalies"' in report
    tips_row = re.search(r"<td><b>tips</b></td>(.*?)</tr>", report).group(1)
    assert "FLOAT" in tips_row and "not in SERVING" in tips_row
    assert "distribution_constraints" in report  # the imported schema.pbtxt, as text
    assert ('<span class="ok">BLESSED</span>' in report) == summary["blessed"]
    assert '<p id="baseline-model">none: no earlier blessed model' in report
    assert summary["pushed_model"] in report


def test_signatures_are_the_model_s(report: str) -> None:
    signatures = re.search(r'<section id="signatures">(.*?)</section>', report).group(1)
    for name in ("serving_default", "serving_examples", "transform_features"):
        assert f"<b>{name}</b>" in signatures
    assert "examples: string [None]" in signatures and "probabilities: float32 [None, 1]" in signatures
    assert "payment_type: string [None]" in signatures


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
        pipeline_name="taxi-tips",
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
