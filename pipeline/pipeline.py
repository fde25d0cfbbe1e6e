"""The one pipeline definition that every runner uses."""

from __future__ import annotations

from pathlib import Path

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.baseline_resolver import LatestBlessedOtherModelStrategy
from models import features
from pipeline import data, fingerprint
from pipeline.config import PipelineConfig

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.model.run_fn"
TRANSFORM_MODULES = ("models.features", "models.preprocessing")
TRAINER_MODULES = ("models.features", "models.model", "models.serving")

# Component ids are stable: ML Metadata, caching and the run summary refer to them.
EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
TRANSFORM = "Transform"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"


def create_pipeline(config: PipelineConfig) -> tfx.dsl.Pipeline:
    output_dir = Path(config.runner.output_dir).resolve()
    components = create_components(config, serving_dir=str(serving_dir(config)))
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=str(output_dir / "pipelines" / config.pipeline_name),
        components=components,
        enable_cache=config.runner.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(metadata_path(config))
        ),
        beam_pipeline_args=beam_args(config),
    )


def serving_dir(config: PipelineConfig) -> Path:
    return Path(config.runner.output_dir).resolve() / "serving_model" / config.pipeline_name


def metadata_path(config: PipelineConfig) -> Path:
    return Path(config.runner.output_dir).resolve() / "metadata" / config.pipeline_name / "metadata.sqlite"


def beam_args(config: PipelineConfig) -> list[str]:
    beam = config.runner.beam
    return [
        "--runner=DirectRunner",
        f"--direct_running_mode={beam.direct_running_mode}",
        f"--direct_num_workers={beam.direct_num_workers}",
    ]


def create_components(config: PipelineConfig, serving_dir: str) -> list:
    eval_buckets = round(config.data.eval_fraction * 100)
    example_gen = tfx.components.CsvExampleGen(
        input_base=data.data_dir(config),
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name="all", pattern="*.csv")]),
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name="train", hash_buckets=100 - eval_buckets),
                    tfx.proto.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
                ]
            )
        ),
    ).with_id(EXAMPLE_GEN)

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(STATISTICS_GEN)
    if config.schema_path:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_path).with_id(SCHEMA_GEN)
    else:
        schema_gen = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
        ).with_id(SCHEMA_GEN)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR)

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        # Pre- and post-transform statistics are not used downstream; computing them doubles the step.
        disable_statistics=True,
        custom_config={"source_fingerprint": fingerprint.source_fingerprint(*TRANSFORM_MODULES)},
    ).with_id(TRANSFORM)

    training = config.training
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=training.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=training.eval_steps),
        custom_config={
            "hyperparameters": {
                "batch_size": training.batch_size,
                "learning_rate": training.learning_rate,
                "hidden_units": list(training.hidden_units),
            },
            "source_fingerprint": fingerprint.source_fingerprint(*TRAINER_MODULES),
        },
    ).with_id(TRAINER)

    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        candidate=trainer.outputs["model"],
    ).with_id(BASELINE_RESOLVER)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(config),
    ).with_id(EVALUATOR)

    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    ).with_id(PUSHER)

    return [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        transform,
        trainer,
        baseline_resolver,
        evaluator,
        pusher,
    ]


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """AUC gates the blessing; accuracy is reported only (a constant guess scores 0.77 here)."""
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
                signature_name="serving_default",
                label_key=features.LABEL_XF,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in evaluation.slice_features],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="AUC", threshold=auc_threshold),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )
