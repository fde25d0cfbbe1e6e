import json
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import executor as evaluator_executor

from components import csv_examples
from components.baseline import evaluator as baseline_evaluator
from components.baseline import sources
from components.serving_checks import Task
from models import label
from models.task import LABEL_XF
from pipeline import pipeline as tfx_pipeline
from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, load_config
from pipeline.data import taxi_sample_dir

EXPECTED_UPSTREAM = {
    tfx_pipeline.EXAMPLE_GEN: set(),
    tfx_pipeline.STATISTICS_GEN: {tfx_pipeline.EXAMPLE_GEN},
    tfx_pipeline.SCHEMA_GEN: set(),  # the curated schema file (schema_path)
    tfx_pipeline.EXAMPLE_VALIDATOR: {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.SCHEMA_GEN},
    # The data the baseline model was trained on, found without waiting for the Trainer.
    tfx_pipeline.BASELINE_STATISTICS: {tfx_pipeline.STATISTICS_GEN},
    tfx_pipeline.DISTRIBUTION_VALIDATOR: {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.BASELINE_STATISTICS},
    tfx_pipeline.VALIDATION_GATE: {
        tfx_pipeline.EXAMPLE_VALIDATOR,
        tfx_pipeline.DISTRIBUTION_VALIDATOR,
        tfx_pipeline.SCHEMA_GEN,
    },
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


def test_blessing_needs_auc_between_the_configured_bounds_and_near_the_baseline(built) -> None:
    config, _ = built
    eval_config = tfx_pipeline.eval_config(config)
    (spec,) = eval_config.metrics_specs
    metrics = {m.class_name: m for m in spec.metrics}
    (overall,) = metrics["AUC"].per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    blessing = config.evaluation.blessing
    bounds = overall.threshold.value_threshold
    assert (bounds.lower_bound.value, bounds.upper_bound.value) == (blessing.minimum, blessing.maximum) == (0.9, 0.995)
    change = overall.threshold.change_threshold
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert change.absolute.value == pytest.approx(-blessing.max_drop)
    # MeanLabel tells slices holding one class (AUC undefined there) apart.
    assert set(metrics) == {"AUC", "ExampleCount", "MeanLabel"}
    assert eval_config.model_specs[0].label_key == LABEL_XF


def test_multi_class_metrics_per_class_and_their_macro_average_which_gates(built) -> None:
    config, _ = built
    eval_config = tfx_pipeline.eval_config(config, Task.multiclass(classes=("a", "b", "c")))
    overall, per_class, macro = eval_config.metrics_specs
    assert [m.class_name for m in overall.metrics] == ["ExampleCount"]
    assert [m.class_name for m in per_class.metrics] == ["AUC", "MeanLabel"]
    assert list(per_class.binarize.class_ids.values) == [0, 1, 2]
    assert not per_class.metrics[0].per_slice_thresholds  # per class: reported only
    assert macro.aggregate.macro_average and dict(macro.aggregate.class_weights) == {0: 1.0, 1: 1.0, 2: 1.0}
    (gate,) = macro.metrics[0].per_slice_thresholds
    assert gate.threshold.value_threshold.lower_bound.value == 0.9


def test_regression_blesses_on_an_error_lower_is_better(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text(
        "evaluation: {metrics: [mae], blessing: {metric: rmse, minimum: null, maximum: 3.0, max_drop: 0.5}}\n"
    )
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env], {"runner.output_dir": str(tmp_path)})
    (spec,) = tfx_pipeline.eval_config(config, Task.regression()).metrics_specs
    metrics = {m.class_name: m for m in spec.metrics}
    assert set(metrics) == {"RootMeanSquaredError", "MeanAbsoluteError", "ExampleCount"}
    (gate,) = metrics["RootMeanSquaredError"].per_slice_thresholds
    assert gate.threshold.value_threshold.upper_bound.value == 3.0
    assert not gate.threshold.value_threshold.HasField("lower_bound")
    assert gate.threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert gate.threshold.change_threshold.absolute.value == pytest.approx(0.5)


def test_example_gen_reads_the_configured_missing_values(built) -> None:
    _, pipeline = built
    example_gen = next(c for c in pipeline.components if c.id == tfx_pipeline.EXAMPLE_GEN)
    assert csv_examples.missing_values(example_gen.exec_properties) == ("", "NA", "N/A", "null")


def test_registration_gets_the_task_and_the_serving_instances(built) -> None:
    config, pipeline = built
    registration = next(c for c in pipeline.components if c.id == tfx_pipeline.REGISTRATION)
    assert Task.from_json(registration.exec_properties["task"]) == label.TASK
    instances = json.loads(registration.exec_properties["serving_instances"])
    assert instances == json.loads(config.serving_instances_path.read_text())


def test_a_slice_feature_missing_from_the_schema_stops_the_build(tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("evaluation: {slice_features: [trip_start_hr]}\n")
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, env], {"runner.output_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as error:
        tfx_pipeline.create_pipeline(config)
    assert str(error.value).startswith(
        f"{env}: evaluation.slice_features: 'trip_start_hr' is not a column of the schema schema/schema.pbtxt (its "
        "columns: company, dropoff_census_tract,"
    )


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
