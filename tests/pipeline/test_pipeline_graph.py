from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor

from components.baseline import evaluator as baseline_evaluator
from components.baseline import sources
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from pipeline.data import taxi_sample_dir

EXPECTED_UPSTREAM = {
    tfx_pipeline.EXAMPLE_GEN: set(),
    tfx_pipeline.STATISTICS_GEN: {tfx_pipeline.EXAMPLE_GEN},
    tfx_pipeline.SCHEMA_GEN: set(),  # the curated schema file (schema_path)
    tfx_pipeline.EXAMPLE_VALIDATOR: {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.SCHEMA_GEN},
    tfx_pipeline.VALIDATION_GATE: {tfx_pipeline.EXAMPLE_VALIDATOR, tfx_pipeline.SCHEMA_GEN},
    # Both read the schema the gate passes on: neither runs when the data has anomalies.
    tfx_pipeline.TRANSFORM: {tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.VALIDATION_GATE},
    # The Trainer reads the raw examples and applies the Transform graph itself.
    tfx_pipeline.TRAINER: {tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.TRANSFORM, tfx_pipeline.VALIDATION_GATE},
    # This pipeline's newest pushed model other than the Trainer's (components/baseline).
    tfx_pipeline.BASELINE_RESOLVER: {tfx_pipeline.TRAINER},
    tfx_pipeline.EVALUATOR: {tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.TRAINER, tfx_pipeline.BASELINE_RESOLVER},
    # Smoke test only locally (no registry); a model that fails it is not pushed.
    tfx_pipeline.REGISTRATION: {tfx_pipeline.EXAMPLE_GEN, tfx_pipeline.TRAINER, tfx_pipeline.EVALUATOR},
    tfx_pipeline.PUSHER: {tfx_pipeline.TRAINER, tfx_pipeline.EVALUATOR, tfx_pipeline.REGISTRATION},
}


@pytest.fixture
def built(tmp_path: Path):
    config = load_config(overrides={"runner.output_dir": str(tmp_path)})
    return config, tfx_pipeline.create_pipeline(config)


def test_components_ids_and_edges(built) -> None:
    _, pipeline = built
    upstream = {c.id: {u.id for u in c.upstream_nodes} for c in pipeline.components}
    assert upstream == EXPECTED_UPSTREAM


def test_local_runtime_settings(built, tmp_path: Path) -> None:
    config, pipeline = built
    assert pipeline.pipeline_info.pipeline_root == str(tmp_path / "pipelines" / "taxi-tips")
    assert pipeline.enable_cache is True
    assert pipeline.metadata_connection_config.sqlite.filename_uri == str(
        tmp_path / "metadata" / "taxi-tips" / "metadata.sqlite"
    )
    assert "--direct_running_mode=in_memory" in pipeline.beam_pipeline_args


def test_local_beam_steps_do_not_repackage_tfx(built) -> None:
    """TFX builds an sdist of itself for remote workers unless the Beam args name the dependencies."""
    from tfx.utils import dependency_utils

    _, pipeline = built
    assert dependency_utils.make_beam_dependency_flags(pipeline.beam_pipeline_args) == pipeline.beam_pipeline_args
    requirements = next(a for a in pipeline.beam_pipeline_args if a.startswith("--requirements_file="))
    assert Path(requirements.split("=", 1)[1]).is_file()


def test_default_data_is_the_taxi_sample_inside_tfx(built) -> None:
    _, pipeline = built
    example_gen = next(c for c in pipeline.components if c.id == tfx_pipeline.EXAMPLE_GEN)
    input_base = Path(example_gen.exec_properties["input_base"])
    assert input_base == taxi_sample_dir()
    assert "site-packages" in input_base.parts
    assert sum(1 for _ in (input_base / "data.csv").open()) > 15_000


def test_model_code_changes_change_only_the_steps_that_use_it(built) -> None:
    _, pipeline = built
    by_id = {c.id: c for c in pipeline.components}
    transform_config = by_id[tfx_pipeline.TRANSFORM].exec_properties["custom_config"]
    trainer_config = by_id[tfx_pipeline.TRAINER].exec_properties["custom_config"]
    assert '"source_fingerprint"' in transform_config and '"source_fingerprint"' in trainer_config
    assert transform_config != trainer_config


def test_blessing_needs_auc_above_the_configured_bound(built) -> None:
    config, _ = built
    eval_config = tfx_pipeline.eval_config(config)
    metrics = {m.class_name: m for m in eval_config.metrics_specs[0].metrics}
    (overall,) = metrics["AUC"].per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    assert overall.threshold.value_threshold.lower_bound.value == config.evaluation.min_auc
    assert set(metrics) == {"AUC", "ExampleCount"}
    assert eval_config.model_specs[0].label_key == "tips_xf"


def test_transform_writes_only_its_graph(built) -> None:
    _, pipeline = built
    by_id = {c.id: c for c in pipeline.components}
    transform = by_id[tfx_pipeline.TRANSFORM]
    assert set(transform.outputs) == {"transform_graph"}
    assert transform.exec_properties["disable_statistics"] == 1
    assert transform.exec_properties["force_tf_compat_v1"] == 1
    trainer_examples = by_id[tfx_pipeline.TRAINER].inputs["examples"]
    assert trainer_examples.producer_component_id == tfx_pipeline.EXAMPLE_GEN


def test_local_baseline_is_what_this_pipelines_pusher_pushed(built, tmp_path: Path) -> None:
    _, pipeline = built
    by_id = {c.id: c for c in pipeline.components}
    baseline = by_id[tfx_pipeline.BASELINE_RESOLVER]
    assert sources.from_json(baseline.exec_properties["source"]) == sources.LocalMetadataSource(
        sqlite_path=str(tmp_path / "metadata" / "taxi-tips" / "metadata.sqlite"),
        pipeline_name="taxi-tips",
        pusher_node=tfx_pipeline.PUSHER,
    )
    assert baseline.inputs["candidate"].producer_component_id == tfx_pipeline.TRAINER
    evaluator = by_id[tfx_pipeline.EVALUATOR]
    assert evaluator.inputs["baseline_model"].producer_component_id == tfx_pipeline.BASELINE_RESOLVER
    # TFX's Evaluator with an executor that only leaves out BaselineModel's "none found" marker.
    assert evaluator.executor_spec.executor_class is baseline_evaluator.Executor
    assert issubclass(baseline_evaluator.Executor, evaluator_executor.Executor)
