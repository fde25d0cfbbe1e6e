"""Reads the summary of the latest local run back from ML Metadata and the artifacts."""

from __future__ import annotations

from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.eval_metrics import blessing_failures, overall_metrics
from models.label import TASK
from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig
from runners.local.progress import ComponentTiming
from runners.local.run_summary import RunSummary

_EXECUTION_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "COMPLETE",
    metadata_store_pb2.Execution.CACHED: "CACHED",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.RUNNING: "RUNNING",
    metadata_store_pb2.Execution.NEW: "NEW",
    metadata_store_pb2.Execution.CANCELED: "CANCELED",
}

_COMPONENT_IDS = (
    tfx_pipeline.EXAMPLE_GEN,
    tfx_pipeline.STATISTICS_GEN,
    tfx_pipeline.SCHEMA_GEN,
    tfx_pipeline.EXAMPLE_VALIDATOR,
    tfx_pipeline.VALIDATION_GATE,
    tfx_pipeline.TRANSFORM,
    tfx_pipeline.TRAINER,
    tfx_pipeline.BASELINE_RESOLVER,
    tfx_pipeline.EVALUATOR,
    tfx_pipeline.REGISTRATION,
    tfx_pipeline.PUSHER,
)


def read_run_summary(config: PipelineConfig, timings: list[ComponentTiming] | None = None) -> RunSummary:
    """Summarizes the latest execution of each component of the configured pipeline."""
    store = tfx_pipeline.metadata_store(config)
    summary = RunSummary(timings=list(timings or []))
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for component_id in _COMPONENT_IDS:
        execution = _latest_execution(store, config.pipeline_name, component_id)
        if execution is None:
            continue
        summary.executions[component_id] = _EXECUTION_STATES.get(execution.last_known_state, "UNKNOWN")
        outputs[component_id] = _output_artifacts(store, execution.id)

    for artifact in outputs.get(tfx_pipeline.STATISTICS_GEN, []):
        summary.rows_per_split = _rows_per_split(artifact.uri)
    evaluation_uri = None
    for artifact in outputs.get(tfx_pipeline.EVALUATOR, []):
        if artifact.type == "ModelBlessing" or "blessed" in artifact.custom_properties:
            summary.blessed = artifact.custom_properties["blessed"].int_value == 1
        else:
            evaluation_uri = artifact.uri
            summary.metrics = overall_metrics(artifact.uri, TASK)
    if summary.blessed is False and evaluation_uri is not None:
        summary.blessing_failures = blessing_failures(evaluation_uri, TASK)
    for artifact in outputs.get(tfx_pipeline.PUSHER, []):
        if artifact.custom_properties["pushed"].int_value == 1:
            summary.pushed_model = artifact.custom_properties["pushed_destination"].string_value
    return summary


def _latest_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, component_id: str
) -> metadata_store_pb2.Execution | None:
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{component_id}")
    if context is None:
        return None
    executions = store.get_executions_by_context(context.id)
    return max(executions, key=lambda execution: execution.id, default=None)


def _output_artifacts(store: metadata_store.MetadataStore, execution_id: int) -> list[metadata_store_pb2.Artifact]:
    output_kinds = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type in output_kinds]
    artifacts = store.get_artifacts_by_id(ids)
    types = {t.id: t.name for t in store.get_artifact_types_by_id([a.type_id for a in artifacts])}
    for artifact in artifacts:
        artifact.type = types[artifact.type_id]
    return artifacts


def _rows_per_split(statistics_uri: str) -> dict[str, int]:
    from tensorflow_data_validation import load_stats_binary

    rows = {}
    for split_dir in sorted(Path(statistics_uri).glob("Split-*")):
        stats = load_stats_binary(str(split_dir / "FeatureStats.pb"))
        rows[split_dir.name.removeprefix("Split-")] = stats.datasets[0].num_examples
    return rows
