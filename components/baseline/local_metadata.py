"""The newest model the Pusher pushed, read from a local run's ML Metadata (SQLite).

The Pusher runs after ModelRegistration and pushes only blessed models (`pushed` = 1 on its
output), so a pushed model was blessed and passed the serving smoke test. Only executions that
ran count (COMPLETE): one served from the cache pushed nothing new. The store is one pipeline's,
and the Pusher's node context (`<pipeline>.<Pusher id>`) narrows it to this pipeline's Pusher.
"""

from __future__ import annotations

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_component_specs

from components.baseline.sources import LocalMetadataSource, RegisteredModel

NODE_CONTEXT = "node"  # TFX's context type of one pipeline node
PUSHED_KEY = "pushed"  # TFX's Pusher: 1 when it pushed the model


def latest_pushed_model(source: LocalMetadataSource, candidate_uri: str) -> RegisteredModel | None:
    """The Model artifact of the newest completed push, the candidate left out; None if there is none."""
    store = _read_only_store(source.sqlite_path)
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{source.pipeline_name}.{source.pusher_node}")
    if context is None:
        return None
    completed = [
        execution
        for execution in store.get_executions_by_context(context.id)
        if execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    ]
    for execution in sorted(completed, key=lambda e: e.id, reverse=True):  # ids grow with time
        events = store.get_events_by_execution_ids([execution.id])
        pushed = _artifacts(store, events, metadata_store_pb2.Event.OUTPUT, standard_component_specs.PUSHED_MODEL_KEY)
        if not any(artifact.custom_properties[PUSHED_KEY].int_value == 1 for artifact in pushed):
            continue
        for model in _artifacts(store, events, metadata_store_pb2.Event.INPUT, standard_component_specs.MODEL_KEY):
            if model.uri != candidate_uri and model.state == metadata_store_pb2.Artifact.LIVE:
                return RegisteredModel(model.uri, f"pushed by {source.pusher_node} execution {execution.id}")
    return None


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
