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
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2

from components.baseline.component import BaselineModel
from components.baseline.evaluator import Evaluator
from components.baseline.sources import BaselineSource, LocalMetadataSource, NoSource, RegistrySource
from components.csv_examples import CsvExampleGen
from components.curated_schema import CuratedSchemaGen, schema_fingerprint
from components.registration.component import ModelRegistration
from components.registration.settings import RegistrySettings
from components.validation_gate import VALIDATED_SCHEMA_KEY, ValidationGate
from models import features, serving
from models.preprocessing import FORCE_TF_COMPAT_V1
from pipeline import data, fingerprint
from pipeline.config import LocalRunnerConfig, PipelineConfig, VertexRunnerConfig
from pipeline.dataflow import dataflow_args
from pipeline.paths import LOCK_FILE, in_repository
from pipeline.training import vertex_trainer_config

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.model.run_fn"
TRANSFORM_MODULES = ("models.features", "models.preprocessing")
TRAINER_MODULES = ("models.features", "models.model", "models.serving")
EVAL_EXTRACTORS_MODULE = "components.eval_extractors"

# Component ids are stable: ML Metadata, caching and the run summary refer to them.
EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
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
    eval_buckets = round(config.data.eval_fraction * 100)
    # TFX's CsvExampleGen with a block-wise executor: the same examples in the same splits, in a
    # fraction of the time (components/csv_examples.py).
    example_gen = CsvExampleGen(
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
    # Stops the run when the data has anomalies; Transform and Trainer read the schema it passes on.
    validation_gate = ValidationGate(
        anomalies=example_validator.outputs["anomalies"],
        schema=schema_gen.outputs["schema"],
        schema_source=config.schema_path,
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
        custom_config={"source_fingerprint": fingerprint.source_fingerprint(*TRANSFORM_MODULES)},
    ).with_id(TRANSFORM)

    training = config.training
    custom_config: dict[str, Any] = {
        "hyperparameters": {
            "batch_size": training.batch_size,
            "learning_rate": training.learning_rate,
            "hidden_units": list(training.hidden_units),
        },
        "source_fingerprint": fingerprint.source_fingerprint(*TRAINER_MODULES),
    }
    trainer_class = Trainer
    if isinstance(config.runner, VertexRunnerConfig):
        # Imported here: the Vertex AI extensions load the Vertex AI SDK (about 1 s and 80 MB).
        from tfx.v1.extensions.google_cloud_ai_platform import Trainer as VertexTrainer

        trainer_class = VertexTrainer
        custom_config.update(vertex_trainer_config(config.runner, config.pipeline_name))
    trainer = trainer_class(
        run_fn=RUN_FN,
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
        # TFMA's extractors, with each batch trimmed to what slicing and the metrics read.
        module_path=EVAL_EXTRACTORS_MODULE,
    ).with_id(EVALUATOR)

    # Blessed models only: a serving smoke test, then (on Vertex AI) a new Model Registry version.
    registration = ModelRegistration(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        evaluation=evaluator.outputs["evaluation"],
        registry=registry_settings(config),
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

    return [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        validation_gate,
        transform,
        trainer,
        baseline,
        evaluator,
        registration,
        pusher,
    ]


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


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """AUC over the eval split, overall and per slice; the overall AUC gates the blessing.

    Accuracy is left out: a constant guess scores 0.77 on this label, and on 50,000 eval rows its
    confusion matrix took about a sixth of the Evaluator's time.
    """
    evaluation = config.evaluation
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": evaluation.min_auc}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -evaluation.max_auc_drop - 1e-10},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Saved with tf.saved_model.save: without this, TFMA first tries (and fails) to load it
                # as a Keras model, with a warning.
                model_type=tfma.constants.TF_GENERIC,
                signature_name=serving.EXAMPLES_SIGNATURE,
                label_key=features.LABEL_XF,
                preprocessing_function_names=[serving.TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in evaluation.slice_features],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    # Gate on the overall AUC only: a small slice (one hour of the day) can
                    # legitimately score lower without making the model worse overall.
                    tfma.MetricConfig(
                        class_name="AUC",
                        # TFMA's default of 10,000 thresholds costs time on every slice; 1,000 moves
                        # the sample's AUC by about 1e-6.
                        config='"num_thresholds": 1000',
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=auc_threshold)
                        ],
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )
