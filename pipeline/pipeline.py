"""The one pipeline definition that every runner uses.

Runner-specific pieces are chosen from `config.runner`: pipeline root, ML Metadata connection
(none on Vertex AI, which keeps its own), Beam arguments (DirectRunner for the whole pipeline
locally; Dataflow per Beam component on Vertex AI), the Trainer flavour (in-process locally; a
Vertex AI Training job on Vertex AI), where BaselineModel finds the registered models (the run's
ML Metadata locally; the `registry` model on Vertex AI), and whether ModelRegistration uploads
blessed models to Vertex AI Model Registry (`registry` section) or only smoke-tests them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx.components import (
    ExampleValidator,
    Pusher,
    SchemaGen,
    StatisticsGen,
    Trainer,
    Transform,
)
from tfx.orchestration.metadata import sqlite_metadata_connection_config
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import distribution_validator_pb2, example_gen_pb2, pusher_pb2, trainer_pb2

from components import csv_examples, eval_metrics
from components.baseline.component import BaselineModel
from components.baseline.evaluator import Evaluator
from components.baseline.sources import BaselineSource, LocalMetadataSource, NoSource, RegistrySource
from components.baseline.statistics import BASELINE_STATISTICS_KEY, BaselineStatistics
from components.curated_schema import CuratedSchemaGen, schema_fingerprint
from components.drift import DistributionValidator, drift_config_from_file
from components.fast import csv_examples as fast_csv_examples
from components.fast import eval_extractors
from components.fast import trainer as fast_trainer
from components.registration.component import ModelRegistration
from components.registration.settings import RegistrySettings
from components.serving_checks import BINARY, MULTICLASS, Task
from components.validation_gate import VALIDATED_SCHEMA_KEY, ValidationGate
from models import features, label, serving
from models.preprocessing import FORCE_TF_COMPAT_V1
from models.task import LABEL_XF
from pipeline import data, fingerprint
from pipeline.config import (
    ConfigError,
    FastPathsConfig,
    LocalRunnerConfig,
    PipelineConfig,
    VertexRunnerConfig,
    check_against_model,
    schema_column_types,
)
from pipeline.dataflow import dataflow_args
from pipeline.paths import LOCK_FILE, in_repository
from pipeline.training import vertex_trainer_config

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.model.run_fn"
# The model's package, named by module path in Transform and the Trainer: hashed whole into their
# source fingerprints, with every repository module it imports (pipeline/fingerprint.py).
MODEL_PACKAGES = ("models",)
EVAL_EXTRACTORS_MODULE = eval_extractors.__name__

# Component ids are stable: ML Metadata, caching and the run summary refer to them.
EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
BASELINE_STATISTICS = "BaselineStatistics"
DISTRIBUTION_VALIDATOR = "DistributionValidator"
VALIDATION_GATE = "ValidationGate"
TRANSFORM = "Transform"
TRAINER = "Trainer"
BASELINE_RESOLVER = "BaselineModel"
EVALUATOR = "Evaluator"
REGISTRATION = "ModelRegistration"
PUSHER = "Pusher"


def create_pipeline(config: PipelineConfig) -> Pipeline:
    runner = config.runner
    if isinstance(runner, VertexRunnerConfig):
        pipeline_root, pushed_to = runner.pipeline_root, vertex_serving_dir(config)
        # No metadata connection: Vertex AI Pipelines records ML Metadata itself. No
        # pipeline-level Beam args: they would reach every component (see create_components).
        runtime: dict[str, Any] = {}
    else:
        pipeline_root = str(local_pipeline_root(config))
        pushed_to = str(serving_dir(config))
        runtime = {
            "metadata_connection_config": sqlite_metadata_connection_config(str(metadata_path(config))),
            "beam_pipeline_args": beam_args(config),
        }
    return Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=create_components(config, serving_dir=pushed_to),
        enable_cache=runner.enable_cache,
        **runtime,
    )


def serving_dir(config: PipelineConfig) -> Path:
    return Path(_local_runner(config).output_dir).resolve() / "serving_model" / config.pipeline_name


def vertex_serving_dir(config: PipelineConfig) -> str:
    """Where the Pusher copies blessed models on Vertex AI: under the pipeline root."""
    return f"{_vertex_runner(config).root}/serving_model/{config.pipeline_name}"


def local_pipeline_root(config: PipelineConfig) -> Path:
    """Where a local run's artifacts go: <root>/<component id>/<output key>/<execution id>."""
    return Path(_local_runner(config).output_dir).resolve() / "pipelines" / config.pipeline_name


def metadata_path(config: PipelineConfig) -> Path:
    return Path(_local_runner(config).output_dir).resolve() / "metadata" / config.pipeline_name / "metadata.sqlite"


def metadata_store(config: PipelineConfig, *, writable: bool = False) -> mlmd.MetadataStore:
    """The local run's ML Metadata store (SQLite), read-only unless asked."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata_path(config))
    sqlite = metadata_store_pb2.SqliteMetadataSourceConfig
    connection.sqlite.connection_mode = sqlite.READWRITE if writable else sqlite.READONLY
    return mlmd.MetadataStore(connection)


def beam_args(config: PipelineConfig) -> list[str]:
    beam = _local_runner(config).beam
    return [
        "--runner=DirectRunner",
        f"--direct_running_mode={beam.direct_running_mode}",
        f"--direct_num_workers={beam.direct_num_workers}",
        # The DirectRunner runs every stage in this environment, which the lock file describes.
        # Without a dependency flag, TFX repackages its own installation for remote workers before
        # every Beam step: a 45 MB copy and an sdist, about 2 s each, left behind in the temp dir.
        f"--requirements_file={LOCK_FILE}",
    ]


def _local_runner(config: PipelineConfig) -> LocalRunnerConfig:
    if not isinstance(config.runner, LocalRunnerConfig):
        raise ValueError(f"runner.kind is '{config.runner.kind}'; this needs a local runner")
    return config.runner


def _vertex_runner(config: PipelineConfig) -> VertexRunnerConfig:
    if not isinstance(config.runner, VertexRunnerConfig):
        raise ValueError(f"runner.kind is '{config.runner.kind}'; this needs a vertex runner")
    return config.runner


def component_beam_args(config: PipelineConfig) -> list[str]:
    """Beam args set on each Beam component: Dataflow on Vertex AI; none locally (pipeline-level)."""
    if isinstance(config.runner, VertexRunnerConfig):
        return dataflow_args(config.runner)
    return []


def create_components(config: PipelineConfig, serving_dir: str) -> list:
    serving_instances = check_model_fit(config)
    fast = config.fast_paths
    eval_buckets = round(config.data.eval_fraction * 100)
    # TFX's CsvExampleGen, with a driver that fingerprints the data by content; with the fast path,
    # a block-wise executor: the same examples in the same splits, in a fraction of the time
    # (components/fast/csv_examples.py; on Dataflow it runs TFX's own conversion).
    example_gen_class = fast_csv_examples.CsvExampleGen if fast.csv_examples else csv_examples.CsvExampleGen
    example_gen = example_gen_class(
        input_base=data.data_dir(config),
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*.csv")]),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_buckets),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
                ]
            )
        ),
        # Cells holding data.missing_values ("NA", ...) are read as empty cells, by either executor.
        missing_values=config.data.missing_tokens,
    ).with_id(EXAMPLE_GEN)

    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(STATISTICS_GEN)
    if config.schema_path:
        schema_gen = curated_schema_gen(config, config.schema_path).with_id(SCHEMA_GEN)
    else:
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True).with_id(
            SCHEMA_GEN
        )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR)
    # This run's statistics against those of the data the baseline model was trained on (components/drift.py).
    drift_check = create_drift_check(config, statistics_gen.outputs["statistics"])
    # Stops the run when the data has anomalies or drifted; Transform and Trainer read the schema it passes on.
    validation_gate = ValidationGate(
        anomalies=example_validator.outputs["anomalies"],
        schema=schema_gen.outputs["schema"],
        schema_source=config.schema_path,
        drift=drift_check[-1].outputs["anomalies"] if drift_check else None,
    ).with_id(VALIDATION_GATE)
    validated_schema = validation_gate.outputs[VALIDATED_SCHEMA_KEY]

    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=validated_schema,
        preprocessing_fn=PREPROCESSING_FN,
        force_tf_compat_v1=FORCE_TF_COMPAT_V1,
        # The Trainer applies the Transform graph as it reads (models/model.py): writing transformed
        # copies of every split would cost more than applying it. Pre- and post-transform statistics
        # and the analyzer cache are not used downstream.
        materialize=False,
        disable_statistics=True,
        disable_analyzer_cache=True,
        custom_config={fingerprint.SOURCE_FINGERPRINT_KEY: transform_fingerprint()},
    ).with_id(TRANSFORM)

    training = config.training
    custom_config: dict[str, Any] = {
        "hyperparameters": {
            "batch_size": training.batch_size,
            "learning_rate": training.learning_rate,
            "hidden_units": list(training.hidden_units),
        },
        **trainer_entry_config(fast),
        fingerprint.SOURCE_FINGERPRINT_KEY: trainer_fingerprint(fast),
    }
    trainer_class = Trainer
    if isinstance(config.runner, VertexRunnerConfig):
        # Imported here: the Vertex AI extensions load the Vertex AI SDK (about 1 s and 80 MB).
        from tfx.v1.extensions.google_cloud_ai_platform import Trainer as VertexTrainer

        trainer_class = VertexTrainer
        custom_config.update(vertex_trainer_config(config.runner, config.pipeline_name))
    trainer = trainer_class(
        run_fn=trainer_run_fn(fast),
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=validated_schema,
        train_args=trainer_pb2.TrainArgs(num_steps=training.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=training.eval_steps),
        custom_config=custom_config,
    ).with_id(TRAINER)

    # This pipeline's newest model that passed registration, never the candidate (components/baseline).
    baseline = BaselineModel(candidate=trainer.outputs["model"], source=baseline_source(config)).with_id(
        BASELINE_RESOLVER
    )

    # TFX's Evaluator; on a first run on Vertex AI it leaves out BaselineModel's "none found" marker.
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline_model"],
        eval_config=eval_config(config),
        # With the fast path, TFMA's extractors with each batch trimmed to what slicing and the
        # metrics read (components/fast/eval_extractors.py); else TFMA's defaults.
        module_path=EVAL_EXTRACTORS_MODULE if fast.eval_extractors else None,
    ).with_id(EVALUATOR)

    # Blessed models only: a serving smoke test, then (on Vertex AI) a new Model Registry version.
    # The declared serving instances go through the exported model too: the endpoint's smoke test
    # sends them after a deploy (endpoint.smoke_test.instances_file).
    registration = ModelRegistration(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        evaluation=evaluator.outputs["evaluation"],
        task=label.TASK,
        registry=registry_settings(config),
        serving_instances=serving_instances,
    ).with_id(REGISTRATION)

    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    ).with_id(PUSHER)
    pusher.add_upstream_node(registration)  # a model that fails the smoke test is not pushed

    beam_args_per_component = component_beam_args(config)
    if beam_args_per_component:
        for component in (example_gen, statistics_gen, transform, evaluator):
            component.with_beam_pipeline_args(beam_args_per_component)

    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        *drift_check,
        validation_gate,
        transform,
        trainer,
        baseline,
        evaluator,
        registration,
        pusher,
    ]
    evaluator_code = [EVAL_EXTRACTORS_MODULE] if fast.eval_extractors else []
    add_source_fingerprints(components, extra_modules={EVALUATOR: evaluator_code})
    return components


def transform_fingerprint() -> str:
    """The model's package (preprocessing_fn is named by module path) and what it imports."""
    return fingerprint.code_fingerprint(packages=MODEL_PACKAGES, modules=[PREPROCESSING_FN.rpartition(".")[0]])


def trainer_run_fn(fast: FastPathsConfig) -> str:
    """The model's run_fn, or the fast paths' wrapper around it when a Trainer fast path is on."""
    return fast_trainer.RUN_FN if fast.autograph or fast.transform_export else RUN_FN


def trainer_entry_config(fast: FastPathsConfig) -> dict[str, Any]:
    """What the wrapper run_fn reads from custom_config (components/fast/trainer.py); nothing without it."""
    if trainer_run_fn(fast) == RUN_FN:
        return {}
    return fast_trainer.custom_config(RUN_FN, autograph_rule=fast.autograph, loader_export=fast.transform_export)


def trainer_fingerprint(fast: FastPathsConfig) -> str:
    """The model's package (run_fn is named by module path), the wrapper when used, and what they import."""
    modules = {RUN_FN.rpartition(".")[0], trainer_run_fn(fast).rpartition(".")[0]}
    return fingerprint.code_fingerprint(packages=MODEL_PACKAGES, modules=sorted(modules))


def add_source_fingerprints(components: list, extra_modules: dict[str, list[str]]) -> None:
    """Every step whose class, executor or driver is in this repository carries the hash of its code
    (Transform and the Trainer carry theirs in custom_config): a code change re-runs exactly those."""
    for component in components:
        if fingerprint.component_modules(component) and fingerprint.source_fingerprint_of(component) is None:
            fingerprint.add_source_fingerprint(component, modules=extra_modules.get(component.id, []))


def create_drift_check(config: PipelineConfig, statistics: Any) -> list:
    """BaselineStatistics and TFX's DistributionValidator, when the curated schema sets drift thresholds.

    BaselineStatistics finds the statistics of the data the baseline model (BaselineModel's rule:
    this pipeline's newest registered model) was trained on, without waiting for the Trainer; the
    DistributionValidator compares this run's with them, train with train and eval with eval. None
    for an inferred schema, or a gs:// one, whose thresholds are not known when the pipeline is defined.
    """
    thresholds = drift_thresholds(config)
    if thresholds is None:
        return []
    baseline_statistics = BaselineStatistics(
        statistics=statistics, source=baseline_source(config), statistics_step=STATISTICS_GEN
    ).with_id(BASELINE_STATISTICS)
    validator = DistributionValidator(
        statistics=statistics,
        baseline_statistics=baseline_statistics.outputs[BASELINE_STATISTICS_KEY],
        config=thresholds,
    ).with_id(DISTRIBUTION_VALIDATOR)
    return [baseline_statistics, validator]


def drift_thresholds(config: PipelineConfig) -> distribution_validator_pb2.DistributionValidatorConfig | None:
    """The `drift_comparator`s of the curated schema (read from the repository, as CuratedSchemaGen's
    fingerprint is); None without a local schema file or without thresholds in it."""
    path = config.schema_path
    if not path or "://" in path:
        return None
    thresholds = drift_config_from_file(in_repository(path), schema_source=path)
    return thresholds if thresholds.default_slice_config.feature else None


def curated_schema_gen(config: PipelineConfig, path: str) -> CuratedSchemaGen:
    """Imports the curated schema, keyed on its content so that an edit is imported again.

    Locally it is read from the repository. On Vertex AI a relative `schema_path` is compiled as
    given and read from the pipeline image, which holds `schema/` (the Dockerfile copies it): the
    schema always matches the code it was reviewed with. A gs:// schema is read as given, and its
    content is not known when compiling.
    """
    if "://" in path:
        return CuratedSchemaGen(schema_file=path)
    local_file = str(in_repository(path))
    in_spec = path if isinstance(config.runner, VertexRunnerConfig) else local_file
    return CuratedSchemaGen(schema_file=in_spec, fingerprint=schema_fingerprint(local_file))


def registry_settings(config: PipelineConfig) -> RegistrySettings | None:
    """Where ModelRegistration uploads: the `registry` section on Vertex AI; None = smoke test only."""
    if not isinstance(config.runner, VertexRunnerConfig) or config.registry is None:
        return None
    runner = config.runner
    return config.registry.settings(
        project=runner.project, region=runner.region, pipeline_root=runner.pipeline_root, pipeline_image=runner.image
    )


def baseline_source(config: PipelineConfig) -> BaselineSource:
    """Where BaselineModel finds the models this pipeline registered (components/baseline).

    Locally: what the Pusher pushed (it runs only after ModelRegistration passed), in this
    pipeline's ML Metadata. On Vertex AI: the versions of the `registry` model that runs of this
    pipeline uploaded; without a `registry` section nothing is registered, so there is no baseline.
    """
    runner = config.runner
    if not isinstance(runner, VertexRunnerConfig):
        return LocalMetadataSource(
            sqlite_path=str(metadata_path(config)), pipeline_name=config.pipeline_name, pusher_node=PUSHER
        )
    if config.registry is None:
        return NoSource(reason="no `registry` section: nothing is registered on Vertex AI")
    return RegistrySource(
        project=runner.project,
        region=runner.region,
        model_id=config.registry.model_id,
        pipeline_name=config.pipeline_name,
        registration_task=REGISTRATION,
    )


def eval_config(config: PipelineConfig, task: Task = label.TASK) -> tfma.EvalConfig:
    """The configured metrics over the eval split, overall and per slice; the blessing metric's
    thresholds on its overall value only: a small slice (one hour of the day) can legitimately score
    lower without making the model worse overall.

    Multi-class: AUC one class against the rest per class (binarized by class id), and their macro
    average with equal class weights in a spec of its own, which carries the thresholds. The label's
    mean per slice (per class) tells slices that hold one class apart: AUC is undefined there, and
    TFMA reports it as 0.0 (components/eval_metrics.py). Accuracy only where `metrics` lists it: the
    example's does not (a constant guess scores 0.77 on its label, and on 50,000 eval rows its
    confusion matrix took about a sixth of the Evaluator's time).
    """
    evaluation = config.evaluation
    definitions = [eval_metrics.definition(name, task) for name in evaluation.metric_names]
    blessing = evaluation.blessing
    per_class = [d for d in definitions if task.kind == MULTICLASS and d.needs_both_classes]
    overall_only = [d for d in definitions if d not in per_class]
    threshold = [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=blessing_threshold(config))]

    def metric(definition: eval_metrics.MetricDefinition, gated: bool) -> tfma.MetricConfig:
        return tfma.MetricConfig(
            class_name=definition.class_name,
            config=definition.metric_config_json(),
            per_slice_thresholds=threshold if gated and definition.name == blessing.metric else [],
        )

    counts = [tfma.MetricConfig(class_name="ExampleCount")]
    if task.kind == BINARY and any(d.needs_both_classes for d in definitions):
        counts.append(tfma.MetricConfig(class_name="MeanLabel"))
    specs = [tfma.MetricsSpec(metrics=[metric(d, gated=True) for d in overall_only] + counts)]
    if per_class:
        class_ids = list(range(task.output_width))
        specs.append(
            tfma.MetricsSpec(
                metrics=[metric(d, gated=False) for d in per_class] + [tfma.MetricConfig(class_name="MeanLabel")],
                binarize=tfma.BinarizationOptions(class_ids={"values": class_ids}),
            )
        )
        specs.append(
            tfma.MetricsSpec(
                metrics=[metric(d, gated=True) for d in per_class],
                aggregate=tfma.AggregationOptions(macro_average=True, class_weights=dict.fromkeys(class_ids, 1.0)),
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Saved with tf.saved_model.save: without this, TFMA first tries (and fails) to load it
                # as a Keras model, with a warning.
                model_type=tfma.constants.TF_GENERIC,
                signature_name=serving.EXAMPLES_SIGNATURE,
                label_key=LABEL_XF,
                preprocessing_function_names=[serving.TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in evaluation.slice_features],
        metrics_specs=specs,
    )


def blessing_threshold(config: PipelineConfig) -> tfma.MetricThreshold:
    """evaluation.blessing as TFMA's threshold: the value between minimum and maximum, and the change
    from the baseline no worse than max_drop (when a baseline is compared)."""
    blessing = config.evaluation.blessing
    bounds = {}
    if blessing.minimum is not None:
        bounds["lower_bound"] = {"value": blessing.minimum}
    if blessing.maximum is not None:
        bounds["upper_bound"] = {"value": blessing.maximum}
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bounds))
    if blessing.max_drop is not None:
        # TFMA compares the difference with the bound strictly; 1e-10 lets exactly max_drop pass.
        allowed = blessing.max_drop + 1e-10
        higher = blessing.higher_is_better
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER if higher else tfma.MetricDirection.LOWER_IS_BETTER,
                absolute={"value": -allowed if higher else allowed},
            )
        )
    return threshold


def check_model_fit(config: PipelineConfig) -> list[dict[str, Any]]:
    """The config against the model's declarations and the schema's columns (pipeline/config.py
    check_against_model): one-line ConfigError when they do not fit; returns the serving instances."""
    columns, columns_from = schema_columns(config)
    return check_against_model(
        config, task=label.TASK, features=features.RAW_FEATURE_KEYS, columns=columns, columns_from=columns_from
    )


def schema_columns(config: PipelineConfig) -> tuple[dict[str, str] | None, str]:
    """The curated schema's columns and their types, and how to name it; (None, '') when there is none
    here: an inferred schema, or one in Cloud Storage."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = config.schema_path
    if path is None or "://" in path:
        return None, ""
    where = f"{config.source_of('schema_path')}: schema_path"
    try:
        schema = text_format.Parse(in_repository(path).read_text(encoding="utf-8"), schema_pb2.Schema())
    except OSError as error:
        raise ConfigError(f"{where}: cannot read {path} ({error.strerror or error})") from None
    except text_format.ParseError as error:
        raise ConfigError(f"{where}: {path} is not a valid schema in text format: {error}") from None
    return schema_column_types(schema), f"the schema {path}"
