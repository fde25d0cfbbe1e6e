"""The drift check in real local runs: this run's data against the data the pushed model was trained on.

The session's good run (tests/runners/conftest.py) is a first run: nothing was pushed before it, so
its drift check is skipped, and says so. On copies of its output folder, the same trips with every
`tips` value set to 5.0 (a label broken at the source: the schema and the checks before a run accept
it, and a model trained on it learns a fare threshold and scores an AUC near 1) stop at the
ValidationGate before Transform; other trips of the same sample go through.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

from components.validation_gate import DRIFT_CHECK_KEY
from pipeline import pipeline as tfx_pipeline
from pipeline.config import BASE_CONFIG, PipelineConfig, load_config
from runners import errors
from runners.report.collect import collect
from tests.conftest import write_taxi_sample
from tests.runners.conftest import LocalRun, run_cli, tree_hash

PUSHED_BY = r"the data of the model pushed by Pusher execution \d+ \(run [0-9T:.-]+\)"


def copy_of(good_run: LocalRun, folder: Path) -> tuple[Path, Path, str]:
    """A copy of the good run's output folder: (output, its pushed models folder, that folder's hash)."""
    output = folder / "out"
    shutil.copytree(good_run.output, output)
    serving = output / "serving_model" / "taxi-tips"
    assert any(serving.iterdir()), "the good run pushed a model"
    return output, serving, tree_hash(serving)


def config_of(good_run: LocalRun, output: Path) -> PipelineConfig:
    return load_config([BASE_CONFIG, good_run.config], {"runner.output_dir": str(output)})


def drift_check(config: PipelineConfig) -> str:
    """What the ValidationGate of the latest run recorded about the drift check."""
    store = tfx_pipeline.metadata_store(config)
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{tfx_pipeline.VALIDATION_GATE}")
    latest = max(store.get_executions_by_context(context.id), key=lambda execution: execution.id)
    events = store.get_events_by_execution_ids([latest.id])
    outputs = [event.artifact_id for event in events if event.type == metadata_store_pb2.Event.OUTPUT]
    (validated_schema,) = store.get_artifacts_by_id(outputs)
    return validated_schema.custom_properties[DRIFT_CHECK_KEY].string_value


def with_tips(data: Path, folder: Path, tips: str) -> Path:
    """The trips of `data` with every tips value replaced."""
    with (data / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    at = header.index("tips")
    folder.mkdir(parents=True)
    with (folder / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header] + [[*row[:at], tips, *row[at + 1 :]] for row in rows])
    return folder


def test_the_first_run_skips_the_drift_check_and_says_so(good_run: LocalRun) -> None:
    config = config_of(good_run, good_run.output)
    assert drift_check(config) == "skipped: no model of this pipeline was registered yet"
    executions = collect(config).executions
    assert executions[tfx_pipeline.VALIDATION_GATE] == "COMPLETE"
    assert executions[tfx_pipeline.TRAINER] == "COMPLETE"


def test_a_broken_label_is_refused_before_training(good_run: LocalRun, tmp_path: Path) -> None:
    output, serving, serving_hash = copy_of(good_run, tmp_path)
    data = with_tips(good_run.data, tmp_path / "tips-all-5", "5.0")

    status, stdout, stderr = run_cli(good_run.args(data=str(data), output=str(output)))

    assert status == errors.EXIT_BAD_INPUT, stderr
    lines = stderr.strip().splitlines()
    assert lines[:2] == [
        "error: the data differs from the data the current model was trained on: 1 feature moved beyond the "
        "drift thresholds of schema/schema.pbtxt (tips); the run stopped before Transform",
        "  tips [train, eval vs the baseline's data]: the distribution moved by Jensen-Shannon divergence 1.00 "
        "(allowed 0.3)",
    ]
    assert re.fullmatch(rf"  compared with {PUSHED_BY}", lines[2]), lines[2]
    assert lines[3:] == [
        "to accept a legitimate change in the data: raise the feature's drift_comparator threshold in "
        "schema/schema.pbtxt, have the edit reviewed, and run again; see docs/data-validation.md"
    ]
    # Nothing after the gate ran in this run; the pushed model is untouched.
    executions = collect(config_of(good_run, output)).executions
    assert executions[tfx_pipeline.VALIDATION_GATE] == "FAILED"
    assert not {tfx_pipeline.TRANSFORM, tfx_pipeline.TRAINER, tfx_pipeline.EVALUATOR, tfx_pipeline.PUSHER} & set(
        executions
    )
    assert tree_hash(serving) == serving_hash
    assert "Pipeline finished" not in stdout


def test_other_trips_of_the_same_kind_pass(good_run: LocalRun, tmp_path: Path) -> None:
    output, _, _ = copy_of(good_run, tmp_path)
    data = write_taxi_sample(tmp_path / "other-trips", every=9, limit=1500)  # mostly other rows than the good run's

    status, _, stderr = run_cli(good_run.args(data=str(data), output=str(output)))

    assert status == errors.EXIT_OK, stderr
    assert re.fullmatch(
        rf"passed: compared with {PUSHED_BY}, no feature beyond its threshold in schema/schema.pbtxt",
        drift_check(config_of(good_run, output)),
    )


def test_the_drift_check_costs_little(good_run: LocalRun) -> None:
    # Measured at about 0.1 s each on the sample; the bound leaves room for a busy machine.
    seconds = {timing["component_id"]: timing["seconds"] for timing in good_run.summary["timings"]}
    assert seconds[tfx_pipeline.BASELINE_STATISTICS] + seconds[tfx_pipeline.DISTRIBUTION_VALIDATOR] < 3.0, seconds
