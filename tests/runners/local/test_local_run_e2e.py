"""Runs the real pipeline end to end on ~1,500 rows of the configured data, twice (the second from the
cache), then once more after a change of the model's code. What the taxi example's model answers:
tests/example/test_local_run.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.eval_metrics import blessing_metric_id
from components.serving_checks import prediction_problems
from models import label, serving
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config, read_serving_instances
from pipeline.paths import REPO_ROOT
from runners import errors
from tests.runners import columns
from tests.runners.conftest import lenient_run_config, run_cli

pytestmark = pytest.mark.e2e
REPO = REPO_ROOT

BAR = 0.75  # of the blessing metric, when higher is better (the configured bar for an error)
TEST_CONFIG = lenient_run_config(train_steps=150, eval_steps=10, minimum=BAR, slice_features=[])
CONFIG = load_config()
# The serving instances of the config (configs/smoke_instances.json), typed as in the schema.
INSTANCES = read_serving_instances(CONFIG.serving_instances_path)


def serialized_example(instance: dict, types: dict[str, int]) -> bytes:
    """A tf.Example of a serving instance, each feature of its type in the schema."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    feature = {}
    for key, value in instance.items():
        if types[key] == schema_pb2.INT:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        elif types[key] == schema_pb2.FLOAT:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        else:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, small_data_dir: Path) -> dict:
    work = tmp_path_factory.mktemp("e2e")
    config = work / "test.yaml"
    config.write_text(TEST_CONFIG)
    output = work / "out"
    results = {"output": output, "config": config}
    # The second run goes through TFX (and its cache); the third takes the unchanged-inputs shortcut.
    for name, extra in (("first", []), ("second", ["--rerun-all"]), ("third", [])):
        summary = work / f"{name}.json"
        status, stdout, _ = run_cli(
            ["run-local", "--config", str(config), "--data", str(small_data_dir), "--output-dir", str(output),
             "--summary-json", str(summary), "--require-blessing", *extra]
        )  # fmt: skip
        results[name] = {"status": status, "summary": json.loads(summary.read_text()), "stdout": stdout}
    results["rows"] = len(columns.read_table(small_data_dir)[1])
    return results


def test_both_runs_succeed_with_a_blessed_model(runs: dict) -> None:
    for name in ("first", "second"):
        assert runs[name]["status"] == errors.EXIT_OK
        assert runs[name]["summary"]["blessed"] is True
    first, rows = runs["first"]["summary"], runs["rows"]
    blessing = CONFIG.evaluation.blessing
    if blessing.higher_is_better:
        assert first["metrics"][blessing_metric_id(blessing.metric, label.TASK).text(label.TASK)] >= BAR
    assert sum(first["rows_per_split"].values()) == rows
    eval_fraction = CONFIG.data.eval_fraction
    assert eval_fraction - 0.08 < first["rows_per_split"]["eval"] / rows < eval_fraction + 0.07


def test_every_component_completed_in_ml_metadata(runs: dict) -> None:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(runs["output"] / "metadata" / CONFIG.pipeline_name / "metadata.sqlite")
    store = metadata_store.MetadataStore(connection)
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    for component_id in runs["first"]["summary"]["executions"]:
        context = store.get_context_by_type_and_name("node", f"{CONFIG.pipeline_name}.{component_id}")
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
def after_model_code_change(runs: dict, small_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
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
        [sys.executable, "-m", "pipeline", "run-local", "--config", str(runs["config"]), "--data", str(small_data_dir),
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
    """Both signatures answer one answer of the task (models/label.py) per serving instance, the same."""
    pushed = Path(runs["first"]["summary"]["pushed_model"])
    assert pushed.is_relative_to(runs["output"]) and (pushed / "saved_model.pb").exists()
    model = tf.saved_model.load(str(pushed))
    task, count = label.TASK, len(INSTANCES)

    raw = model.signatures[serving.DEFAULT_SIGNATURE]
    specs = raw.structured_input_signature[1]
    assert set(specs) == set(INSTANCES[0])
    columns_in = {key: tf.constant([i[key] for i in INSTANCES], spec.dtype) for key, spec in specs.items()}
    from_instances = raw(**columns_in)[task.output_key].numpy()
    assert from_instances.shape == (count, task.output_width)
    assert prediction_problems(from_instances.tolist(), count, task) == []

    types = columns.feature_types()
    examples = [serialized_example(instance, types) for instance in INSTANCES]
    from_examples = model.signatures[serving.EXAMPLES_SIGNATURE](examples=tf.constant(examples))[task.output_key]
    assert from_examples.shape == (count, task.output_width)
    assert prediction_problems(from_examples.numpy().tolist(), count, task) == []
    assert from_examples.numpy() == pytest.approx(from_instances, abs=1e-5)
