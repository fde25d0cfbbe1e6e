"""Runs the real pipeline end to end on ~1,500 taxi trips, twice (the second from the cache)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from models import serving
from pipeline import pipeline as tfx_pipeline
from pipeline.paths import REPO_ROOT
from runners import errors
from tests.models.conftest import serialized_example
from tests.runners.conftest import run_cli

pytestmark = pytest.mark.e2e
REPO = REPO_ROOT

TEST_CONFIG = """
runner:
  kind: local
  output_dir: unused-overridden-by-flag
training:
  train_steps: 150
  eval_steps: 10
evaluation:
  blessing: {minimum: 0.75}
  slice_features: []
"""

INSTANCES = [
    {"fare": 12.45, "trip_miles": 2.1, "trip_seconds": 600, "payment_type": "Credit Card", "company": "Flash Cab",
     "trip_start_hour": 19, "trip_start_day": 6, "trip_start_month": 5, "pickup_community_area": 8,
     "dropoff_community_area": 32, "pickup_latitude": 41.89, "pickup_longitude": -87.63,
     "dropoff_latitude": 41.88, "dropoff_longitude": -87.62},
    {"fare": 30.0, "trip_miles": 12.0, "trip_seconds": 1800, "payment_type": "Cash", "company": "",
     "trip_start_hour": 3, "trip_start_day": 1, "trip_start_month": 12, "pickup_community_area": 0,
     "dropoff_community_area": 0, "pickup_latitude": 0.0, "pickup_longitude": 0.0,
     "dropoff_latitude": 0.0, "dropoff_longitude": 0.0},
]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, small_taxi_dir: Path) -> dict:
    work = tmp_path_factory.mktemp("e2e")
    config = work / "test.yaml"
    config.write_text(TEST_CONFIG)
    output = work / "out"
    results = {"output": output, "config": config}
    # The second run goes through TFX (and its cache); the third takes the unchanged-inputs shortcut.
    for name, extra in (("first", []), ("second", ["--rerun-all"]), ("third", [])):
        summary = work / f"{name}.json"
        status, stdout, _ = run_cli(
            ["run-local", "--config", str(config), "--data", str(small_taxi_dir), "--output-dir", str(output),
             "--summary-json", str(summary), "--require-blessing", *extra]
        )  # fmt: skip
        results[name] = {"status": status, "summary": json.loads(summary.read_text()), "stdout": stdout}
    return results


def test_both_runs_succeed_with_a_blessed_model(runs: dict) -> None:
    for name in ("first", "second"):
        assert runs[name]["status"] == errors.EXIT_OK
        assert runs[name]["summary"]["blessed"] is True
    first = runs["first"]["summary"]
    assert first["metrics"]["auc"] >= 0.75
    assert sum(first["rows_per_split"].values()) == 1500
    assert 0.25 < first["rows_per_split"]["eval"] / 1500 < 0.4


def test_every_component_completed_in_ml_metadata(runs: dict) -> None:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(runs["output"] / "metadata" / "taxi-tips" / "metadata.sqlite")
    store = metadata_store.MetadataStore(connection)
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    for component_id in runs["first"]["summary"]["executions"]:
        context = store.get_context_by_type_and_name("node", f"taxi-tips.{component_id}")
        executions = store.get_executions_by_context(context.id)
        assert executions and all(e.last_known_state in done for e in executions), component_id
    assert set(runs["first"]["summary"]["executions"]) >= {
        tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.STATISTICS_GEN, tfx_pipeline.SCHEMA_GEN,
        tfx_pipeline.EXAMPLE_VALIDATOR, tfx_pipeline.TRANSFORM, tfx_pipeline.TRAINER,
        tfx_pipeline.EVALUATOR, tfx_pipeline.PUSHER,
    }  # fmt: skip


def test_second_run_is_served_from_the_cache(runs: dict) -> None:
    first, second = runs["first"]["summary"], runs["second"]["summary"]
    assert all(state == "COMPLETE" for state in first["executions"].values())
    cacheable = {k: v for k, v in second["executions"].items() if k != tfx_pipeline.BASELINE_RESOLVER}
    assert cacheable and all(state == "CACHED" for state in cacheable.values()), second["executions"]
    assert second["pushed_model"] == first["pushed_model"]


@pytest.fixture(scope="module")
def after_model_code_change(runs: dict, small_taxi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run through TFX's cache (`--rerun-all`) with a new module in models/, on the same outputs.

    It runs in a fresh process from a copy of the project that links every file to this checkout
    and adds models/layers.py, which nothing imports or names: every path in the pipeline stays the
    same, and only the fingerprints of the steps that run the model's package change (each hashes
    every file of models/, pipeline/fingerprint.py).
    """
    copy = tmp_path_factory.mktemp("edited-project")
    for entry in REPO.iterdir():
        if entry.name not in ("models", ".git", ".venv", ".local"):
            (copy / entry.name).symlink_to(entry)
    (copy / "models").mkdir()
    for source in (REPO / "models").iterdir():
        if source.name != "__pycache__":
            (copy / "models" / source.name).symlink_to(source)
    (copy / "models" / "layers.py").write_text('"""Layers the model will use."""\n\nDROPOUT = 0.1\n')
    summary = copy / "summary.json"
    process = subprocess.run(
        [sys.executable, "-m", "pipeline", "run-local", "--config", str(runs["config"]), "--data", str(small_taxi_dir),
         "--output-dir", str(runs["output"]), "--summary-json", str(summary), "--rerun-all"],
        cwd=copy, env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert process.returncode == errors.EXIT_OK, process.stderr[-3000:]
    return json.loads(summary.read_text())


def test_a_new_model_module_reruns_transform_the_trainer_and_what_follows(after_model_code_change: dict) -> None:
    executions = after_model_code_change["executions"]
    downstream = {
        tfx_pipeline.TRANSFORM, tfx_pipeline.TRAINER, tfx_pipeline.EVALUATOR, tfx_pipeline.REGISTRATION,
        tfx_pipeline.PUSHER,
    }  # fmt: skip
    upstream = {
        tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.STATISTICS_GEN, tfx_pipeline.SCHEMA_GEN,
        tfx_pipeline.EXAMPLE_VALIDATOR, tfx_pipeline.VALIDATION_GATE,
    }  # fmt: skip
    assert {component: executions[component] for component in upstream} == dict.fromkeys(upstream, "CACHED")
    assert {component: executions[component] for component in downstream} == dict.fromkeys(downstream, "COMPLETE")


def test_unchanged_inputs_reuse_the_last_run_without_running_tfx(runs: dict) -> None:
    third = runs["third"]
    assert third["status"] == errors.EXIT_OK
    assert "Nothing changed since the last completed run" in third["stdout"]
    assert "running ..." not in third["stdout"]
    reused = {key: value for key, value in third["summary"].items() if key != "timings"}
    assert reused == {key: value for key, value in runs["second"]["summary"].items() if key != "timings"}
    assert third["summary"]["timings"] == []


def test_pushed_model_serves_raw_instances_and_serialized_examples(runs: dict) -> None:
    pushed = Path(runs["first"]["summary"]["pushed_model"])
    assert pushed.is_relative_to(runs["output"]) and (pushed / "saved_model.pb").exists()
    model = tf.saved_model.load(str(pushed))

    raw = model.signatures[serving.DEFAULT_SIGNATURE]
    specs = raw.structured_input_signature[1]
    columns = {key: tf.constant([i[key] for i in INSTANCES], spec.dtype) for key, spec in specs.items()}
    from_instances = raw(**columns)["probabilities"].numpy()
    assert from_instances.shape == (2, 1)
    assert ((from_instances >= 0) & (from_instances <= 1)).all()
    # Card payers tip; cash tips are not recorded in this data.
    assert from_instances[0, 0] > from_instances[1, 0]

    examples = [serialized_example({k: [v.encode() if isinstance(v, str) else v] for k, v in i.items()})
                for i in INSTANCES]  # fmt: skip
    from_examples = model.signatures[serving.EXAMPLES_SIGNATURE](examples=tf.constant(examples))["probabilities"]
    assert from_examples.shape == (2, 1)
    assert ((from_examples.numpy() >= 0) & (from_examples.numpy() <= 1)).all()
