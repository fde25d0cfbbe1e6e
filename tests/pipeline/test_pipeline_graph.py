"""The local pipeline built from the committed config, its expectations derived from configs/,
models/ and schema/ (tests/pipeline/expected.py); the taxi example's own values: tests/example/."""

import json
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from tfx.components.evaluator import executor as evaluator_executor

from components import csv_examples, eval_metrics
from components.baseline import evaluator as baseline_evaluator
from components.baseline import sources
from components.serving_checks import MULTICLASS, Task
from models import label
from models.task import LABEL_XF
from pipeline import data
from pipeline import pipeline as tfx_pipeline
from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, PipelineConfig, load_config
from pipeline.data import example_data_dir
from tests.pipeline.expected import (
    DRIFT_STEPS,
    curated_schema,
    expected_upstream,
    schema_sets_drift_thresholds,
    schema_with_drift_thresholds,
)

# Blessing settings given explicitly, so that the tests of eval_config per task do not depend on configs/.
AUC_BLESSING = "evaluation: {metrics: [], blessing: {metric: auc, minimum: 0.9, maximum: 0.995, max_drop: 0.01}}\n"


@pytest.fixture
def built(tmp_path: Path):
    config = load_config(overrides={"runner.output_dir": str(tmp_path)})
    return config, tfx_pipeline.create_pipeline(config)


def local_config(tmp_path: Path, text: str, overrides: dict | None = None) -> PipelineConfig:
    env = tmp_path / "env.yaml"
    env.write_text(text)
    return load_config([BASE_CONFIG, LOCAL_CONFIG, env], {"runner.output_dir": str(tmp_path), **(overrides or {})})


def upstream_of(pipeline) -> dict[str, set[str]]:
    return {c.id: {u.id for u in c.upstream_nodes} for c in pipeline.components}


def test_components_ids_and_edges(built) -> None:
    config, pipeline = built
    assert upstream_of(pipeline) == expected_upstream(config)
    assert (set(upstream_of(pipeline)) >= DRIFT_STEPS) == schema_sets_drift_thresholds(config)


@pytest.mark.parametrize("thresholds", [True, False], ids=["with-drift-thresholds", "without"])
def test_the_drift_check_exists_iff_the_curated_schema_sets_thresholds(tmp_path: Path, thresholds: bool) -> None:
    committed = load_config(overrides={"runner.output_dir": str(tmp_path)})
    schema_file = tmp_path / "schema.pbtxt"
    schema_file.write_text(
        text_format.MessageToString(schema_with_drift_thresholds(curated_schema(committed), thresholds))
    )
    config = load_config(overrides={"runner.output_dir": str(tmp_path), "schema_path": str(schema_file)})
    assert schema_sets_drift_thresholds(config) is thresholds
    upstream = upstream_of(tfx_pipeline.create_pipeline(config))
    assert upstream == expected_upstream(config)
    assert (set(upstream) >= DRIFT_STEPS) is thresholds
    assert (tfx_pipeline.DISTRIBUTION_VALIDATOR in upstream[tfx_pipeline.VALIDATION_GATE]) is thresholds


def test_local_runtime_settings(built, tmp_path: Path) -> None:
    config, pipeline = built
    name = config.pipeline_name
    assert pipeline.pipeline_info.pipeline_name == name
    assert pipeline.pipeline_info.pipeline_root == str(tmp_path / "pipelines" / name)
    assert pipeline.enable_cache is config.runner.enable_cache
    assert pipeline.metadata_connection_config.sqlite.filename_uri == str(
        tmp_path / "metadata" / name / "metadata.sqlite"
    )
    assert f"--direct_running_mode={config.runner.beam.direct_running_mode}" in pipeline.beam_pipeline_args


def test_local_beam_steps_do_not_repackage_tfx(built) -> None:
    """TFX builds an sdist of itself for remote workers unless the Beam args name the dependencies."""
    from tfx.utils import dependency_utils

    _, pipeline = built
    assert dependency_utils.make_beam_dependency_flags(pipeline.beam_pipeline_args) == pipeline.beam_pipeline_args
    requirements = next(a for a in pipeline.beam_pipeline_args if a.startswith("--requirements_file="))
    assert Path(requirements.split("=", 1)[1]).is_file()


def example_gen_input(pipeline) -> Path:
    example_gen = next(c for c in pipeline.components if c.id == tfx_pipeline.EXAMPLE_GEN)
    return Path(example_gen.exec_properties["input_base"])


def test_example_gen_reads_the_configured_data(built) -> None:
    config, pipeline = built
    assert example_gen_input(pipeline) == Path(data.data_dir(config))
    if config.data.path is not None:
        assert example_gen_input(pipeline) == Path(config.data.path).expanduser().resolve()


def test_without_a_data_path_the_data_is_the_example_sample_inside_tfx(tmp_path: Path) -> None:
    config = load_config(overrides={"runner.output_dir": str(tmp_path), "data.path": None})
    input_base = example_gen_input(tfx_pipeline.create_pipeline(config))
    assert input_base == example_data_dir()
    assert "site-packages" in input_base.parts
    assert sum(1 for _ in (input_base / "data.csv").open()) > 15_000


def test_model_code_changes_change_only_the_steps_that_use_it(built) -> None:
    _, pipeline = built
    by_id = {c.id: c for c in pipeline.components}
    transform_config = by_id[tfx_pipeline.TRANSFORM].exec_properties["custom_config"]
    trainer_config = by_id[tfx_pipeline.TRAINER].exec_properties["custom_config"]
    assert '"source_fingerprint"' in transform_config and '"source_fingerprint"' in trainer_config
    assert transform_config != trainer_config


def gated_metrics(eval_config: tfma.EvalConfig) -> list[tuple[tfma.MetricsSpec, tfma.MetricConfig]]:
    specs = eval_config.metrics_specs
    return [(spec, metric) for spec in specs for metric in spec.metrics if metric.per_slice_thresholds]


def test_the_committed_config_blesses_on_its_metric_between_its_bounds_and_near_the_baseline(built) -> None:
    """Whatever the task of models/label.py and the evaluation section: one gated metric, the blessing
    metric, on the overall slice, with the configured bounds and change from the baseline."""
    config, _ = built
    blessing = config.evaluation.blessing
    eval_config = tfx_pipeline.eval_config(config)
    ((spec, gated),) = gated_metrics(eval_config)
    definition = eval_metrics.definition(blessing.metric, label.TASK)
    assert gated.class_name == definition.class_name
    # Multi-class AUC gates on its macro average over the classes.
    assert spec.aggregate.macro_average == (label.TASK.kind == MULTICLASS and definition.needs_both_classes)
    (overall,) = gated.per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    bounds = overall.threshold.value_threshold
    for bound, value in (("lower_bound", blessing.minimum), ("upper_bound", blessing.maximum)):
        assert bounds.HasField(bound) == (value is not None)
        if value is not None:
            assert getattr(bounds, bound).value == value
    change = overall.threshold.change_threshold
    if blessing.max_drop is None:
        assert not overall.threshold.HasField("change_threshold")
    else:
        higher = blessing.higher_is_better
        expected = tfma.MetricDirection.HIGHER_IS_BETTER if higher else tfma.MetricDirection.LOWER_IS_BETTER
        assert change.direction == expected
        assert change.absolute.value == pytest.approx(-blessing.max_drop if higher else blessing.max_drop)
    reported = {metric.class_name for spec in eval_config.metrics_specs for metric in spec.metrics}
    configured = {eval_metrics.definition(name, label.TASK).class_name for name in config.evaluation.metric_names}
    assert configured | {"ExampleCount"} <= reported
    assert list(eval_config.slicing_specs) == [tfma.SlicingSpec()] + [
        tfma.SlicingSpec(feature_keys=[key]) for key in config.evaluation.slice_features
    ]
    assert eval_config.model_specs[0].label_key == LABEL_XF


def test_binary_blessing_needs_auc_between_the_bounds_and_near_the_baseline(tmp_path: Path) -> None:
    config = local_config(tmp_path, AUC_BLESSING)
    eval_config = tfx_pipeline.eval_config(config, Task.binary(("no", "yes")))
    (spec,) = eval_config.metrics_specs
    metrics = {m.class_name: m for m in spec.metrics}
    (overall,) = metrics["AUC"].per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    bounds = overall.threshold.value_threshold
    assert (bounds.lower_bound.value, bounds.upper_bound.value) == (0.9, 0.995)
    change = overall.threshold.change_threshold
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert change.absolute.value == pytest.approx(-0.01)
    # MeanLabel tells slices holding one class (AUC undefined there) apart.
    assert set(metrics) == {"AUC", "ExampleCount", "MeanLabel"}
    assert eval_config.model_specs[0].label_key == LABEL_XF


def test_multi_class_metrics_per_class_and_their_macro_average_which_gates(tmp_path: Path) -> None:
    config = local_config(tmp_path, AUC_BLESSING)
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
    config = local_config(
        tmp_path, "evaluation: {metrics: [mae], blessing: {metric: rmse, minimum: null, maximum: 3.0, max_drop: 0.5}}\n"
    )
    (spec,) = tfx_pipeline.eval_config(config, Task.regression()).metrics_specs
    metrics = {m.class_name: m for m in spec.metrics}
    assert set(metrics) == {"RootMeanSquaredError", "MeanAbsoluteError", "ExampleCount"}
    (gate,) = metrics["RootMeanSquaredError"].per_slice_thresholds
    assert gate.threshold.value_threshold.upper_bound.value == 3.0
    assert not gate.threshold.value_threshold.HasField("lower_bound")
    assert gate.threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert gate.threshold.change_threshold.absolute.value == pytest.approx(0.5)


def test_example_gen_reads_the_configured_missing_values(built, tmp_path: Path) -> None:
    config, pipeline = built
    example_gen = next(c for c in pipeline.components if c.id == tfx_pipeline.EXAMPLE_GEN)
    assert csv_examples.missing_values(example_gen.exec_properties) == config.data.missing_tokens
    assert config.data.missing_tokens == tuple(dict.fromkeys(["", *config.data.missing_values]))
    other = local_config(tmp_path, "data: {missing_values: ['?', '-']}\n")
    example_gen = next(c for c in tfx_pipeline.create_pipeline(other).components if c.id == tfx_pipeline.EXAMPLE_GEN)
    assert csv_examples.missing_values(example_gen.exec_properties) == ("", "?", "-")


def test_registration_gets_the_task_and_the_serving_instances(built) -> None:
    config, pipeline = built
    registration = next(c for c in pipeline.components if c.id == tfx_pipeline.REGISTRATION)
    assert Task.from_json(registration.exec_properties["task"]) == label.TASK
    instances = json.loads(registration.exec_properties["serving_instances"])
    assert instances == json.loads(config.serving_instances_path.read_text())


def test_a_slice_feature_missing_from_the_schema_stops_the_build(tmp_path: Path) -> None:
    config = local_config(tmp_path, "evaluation: {slice_features: [no_such_column]}\n")
    columns = sorted(feature.name for feature in curated_schema(config).feature)
    with pytest.raises(ConfigError) as error:
        tfx_pipeline.create_pipeline(config)
    assert str(error.value) == (
        f"{tmp_path / 'env.yaml'}: evaluation.slice_features: 'no_such_column' is not a column of the schema "
        f"{config.schema_path} (its columns: {', '.join(columns)})"
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
    config, pipeline = built
    by_id = {c.id: c for c in pipeline.components}
    baseline = by_id[tfx_pipeline.BASELINE_RESOLVER]
    assert sources.from_json(baseline.exec_properties["source"]) == sources.LocalMetadataSource(
        sqlite_path=str(tmp_path / "metadata" / config.pipeline_name / "metadata.sqlite"),
        pipeline_name=config.pipeline_name,
        pusher_node=tfx_pipeline.PUSHER,
    )
    assert baseline.inputs["candidate"].producer_component_id == tfx_pipeline.TRAINER
    evaluator = by_id[tfx_pipeline.EVALUATOR]
    assert evaluator.inputs["baseline_model"].producer_component_id == tfx_pipeline.BASELINE_RESOLVER
    # TFX's Evaluator with an executor that only leaves out BaselineModel's "none found" marker.
    assert evaluator.executor_spec.executor_class is baseline_evaluator.Executor
    assert issubclass(baseline_evaluator.Executor, evaluator_executor.Executor)
