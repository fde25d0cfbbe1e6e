"""What the pipeline built from the committed declarations should hold, derived from those
declarations (configs/, models/, schema/) rather than from the taxi example's values, so that these
tests hold in a fork too (README "Make it yours"). The taxi example's own values: tests/example/.
"""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline import pipeline as tfx_pipeline
from pipeline.config import BASE_CONFIG, PipelineConfig, VertexRunnerConfig, load_config, vertex_config_path
from pipeline.paths import in_repository

DRIFT_STEPS = frozenset({tfx_pipeline.BASELINE_STATISTICS, tfx_pipeline.DISTRIBUTION_VALIDATOR})


def vertex_config(env: str) -> PipelineConfig:
    """The committed configuration of the Vertex AI environment `env` (configs/vertex-<env>.yaml)."""
    config = load_config([BASE_CONFIG, vertex_config_path(env)])
    assert isinstance(config.runner, VertexRunnerConfig)
    return config


def curated_schema(config: PipelineConfig) -> schema_pb2.Schema | None:
    """The schema file `schema_path` names, when it is one in this repository (not inferred, not gs://)."""
    path = config.schema_path
    if path is None or "://" in path:
        return None
    return text_format.Parse(in_repository(path).read_text(encoding="utf-8"), schema_pb2.Schema())


def schema_sets_drift_thresholds(config: PipelineConfig) -> bool:
    """Whether a feature of the curated schema has a `drift_comparator`: the drift check exists iff so."""
    schema = curated_schema(config)
    return schema is not None and any(feature.HasField("drift_comparator") for feature in schema.feature)


def expected_upstream(config: PipelineConfig) -> dict[str, set[str]]:
    """Each step's direct upstream steps; BaselineStatistics and the DistributionValidator only when
    the curated schema sets drift thresholds."""
    drift = schema_sets_drift_thresholds(config)
    upstream = {
        tfx_pipeline.EXAMPLE_GEN: set(),
        tfx_pipeline.STATISTICS_GEN: {tfx_pipeline.EXAMPLE_GEN},
        tfx_pipeline.SCHEMA_GEN: set(),  # the curated schema file (schema_path)
        tfx_pipeline.EXAMPLE_VALIDATOR: {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.SCHEMA_GEN},
        # The data the baseline model was trained on, found without waiting for the Trainer.
        tfx_pipeline.BASELINE_STATISTICS: {tfx_pipeline.STATISTICS_GEN},
        tfx_pipeline.DISTRIBUTION_VALIDATOR: {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.BASELINE_STATISTICS},
        tfx_pipeline.VALIDATION_GATE: {tfx_pipeline.EXAMPLE_VALIDATOR, tfx_pipeline.SCHEMA_GEN}
        | ({tfx_pipeline.DISTRIBUTION_VALIDATOR} if drift else set()),
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
    return {step: inputs for step, inputs in upstream.items() if drift or step not in DRIFT_STEPS}


def expected_steps(config: PipelineConfig) -> set[str]:
    return set(expected_upstream(config))


def schema_with_drift_thresholds(schema: schema_pb2.Schema, present: bool) -> schema_pb2.Schema:
    """A copy of `schema` with no drift comparator, or with one on its first feature whose type
    takes one (L-infinity for text, Jensen-Shannon for numbers; components/drift.py)."""
    result = schema_pb2.Schema()
    result.CopyFrom(schema)
    for feature in result.feature:
        feature.ClearField("drift_comparator")
    if present:
        feature = next(f for f in result.feature if f.type in (schema_pb2.BYTES, schema_pb2.INT, schema_pb2.FLOAT))
        if feature.type == schema_pb2.BYTES:
            feature.drift_comparator.infinity_norm.threshold = 0.2
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = 0.3
    return result
