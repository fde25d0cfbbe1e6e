"""The newest model the Pusher pushed, and the statistics of the data it was trained on, read from a
local run's ML Metadata (SQLite).

The Pusher runs after ModelRegistration and pushes only blessed models (`pushed` = 1 on its
output), so a pushed model was blessed and passed the serving smoke test. Only executions that
ran count (COMPLETE): one served from the cache pushed nothing new. The store is one pipeline's,
and the Pusher's node context (`<pipeline>.<Pusher id>`) narrows it to this pipeline's Pusher.

The data behind a pushed model is what the statistics step of the same pipeline run recorded (the
run's `pipeline_run` context holds every execution of the run, those served from the cache too,
which TFX records with the outputs they reused): the same run on Vertex AI (model_registry.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts, standard_component_specs

from components.baseline.sources import LocalMetadataSource, RegisteredModel, TrainingStatistics

NODE_CONTEXT = "node"  # TFX's context type of one pipeline node
RUN_CONTEXT = "pipeline_run"  # TFX's context type of one run of a pipeline
PUSHED_KEY = "pushed"  # TFX's Pusher: 1 when it pushed the model
_Execution = metadata_store_pb2.Execution
_FINISHED = (_Execution.COMPLETE, _Execution.CACHED)


def latest_pushed_model(source: LocalMetadataSource, candidate_uri: str) -> RegisteredModel | None:
    """The Model artifact of the newest completed push, the candidate left out; None if there is none."""
    store = _read_only_store(source.sqlite_path)
    for execution, model in _pushed_models(store, source):
        if model.uri != candidate_uri:
            return RegisteredModel(model.uri, f"pushed by {source.pusher_node} execution {execution.id}")
    return None


def latest_pushed_model_statistics(source: LocalMetadataSource, statistics_node: str) -> TrainingStatistics | None:
    """The statistics of the data of the newest pushed model: the output of `statistics_node` in the
    run that pushed it. A run whose statistics are gone is passed over. None if nothing was pushed."""
    store = _read_only_store(source.sqlite_path)
    statistics_context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{source.pipeline_name}.{statistics_node}")
    if statistics_context is None:
        return None
    of_statistics_node = {execution.id for execution in store.get_executions_by_context(statistics_context.id)}
    statistics_type = store.get_artifact_type(standard_artifacts.ExampleStatistics.TYPE_NAME)
    run_type = store.get_context_type(RUN_CONTEXT)
    for push, _ in _pushed_models(store, source):
        runs = [context for context in store.get_contexts_by_execution(push.id) if context.type_id == run_type.id]
        for run in runs:
            in_run = [
                execution
                for execution in store.get_executions_by_context(run.id)
                if execution.id in of_statistics_node and execution.last_known_state in _FINISHED
            ]
            for execution in sorted(in_run, key=lambda e: e.id, reverse=True):
                events = store.get_events_by_execution_ids([execution.id])
                outputs = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
                for artifact in store.get_artifacts_by_id(outputs):
                    if artifact.type_id == statistics_type.id and artifact.state == metadata_store_pb2.Artifact.LIVE:
                        return TrainingStatistics(
                            artifact.uri,
                            f"the data of the model pushed by {source.pusher_node} execution {push.id} "
                            f"(run {run.name})",
                        )
    return None


def _pushed_models(
    store: mlmd.MetadataStore, source: LocalMetadataSource
) -> Iterator[tuple[metadata_store_pb2.Execution, metadata_store_pb2.Artifact]]:
    """(Pusher execution, the live Model it pushed), newest push first."""
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{source.pipeline_name}.{source.pusher_node}")
    if context is None:
        return
    completed = [
        execution
        for execution in store.get_executions_by_context(context.id)
        if execution.last_known_state == _Execution.COMPLETE
    ]
    for execution in sorted(completed, key=lambda e: e.id, reverse=True):  # ids grow with time
        events = store.get_events_by_execution_ids([execution.id])
        pushed = _artifacts(store, events, metadata_store_pb2.Event.OUTPUT, standard_component_specs.PUSHED_MODEL_KEY)
        if not any(artifact.custom_properties[PUSHED_KEY].int_value == 1 for artifact in pushed):
            continue
        for model in _artifacts(store, events, metadata_store_pb2.Event.INPUT, standard_component_specs.MODEL_KEY):
            if model.state == metadata_store_pb2.Artifact.LIVE:
                yield execution, model


def _read_only_store(path: str) -> mlmd.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(connection)


def _artifacts(
    store: mlmd.MetadataStore, events: list[metadata_store_pb2.Event], kind: int, key: str
) -> list[metadata_store_pb2.Artifact]:
    ids = [e.artifact_id for e in events if e.type == kind and e.path.steps and e.path.steps[0].key == key]
    return list(store.get_artifacts_by_id(ids)) if ids else []
