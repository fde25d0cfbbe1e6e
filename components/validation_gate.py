"""ValidationGate: stops the pipeline when ExampleValidator found anomalies in the data.

TFX's ExampleValidator records anomalies but never fails, so a pipeline trains on data that
breaks its schema. The gate reads the ExampleAnomalies artifact of every split. With any
anomaly it fails its execution with DataValidationError, whose message starts with a one-line
summary followed by one line per anomaly (feature, what the schema expects, what was found).
Without anomalies it passes the schema on as `validated_schema`: Transform and Trainer read
that output, so nothing downstream runs on data that breaks the schema, on every runner.

A plain component (ExecutorClassSpec), so the KFP v2 compiler and the local runner both run it
from this module inside the pipeline image.
"""

from __future__ import annotations

import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components import anomaly_text

ANOMALIES_KEY = "anomalies"
SCHEMA_KEY = "schema"
VALIDATED_SCHEMA_KEY = "validated_schema"
SCHEMA_SOURCE_KEY = "schema_source"
# The file ExampleValidator writes per split (tfx.components.example_validator.executor).
ANOMALIES_FILE = "SchemaDiff.pb"
SCHEMA_FILE = "schema.pbtxt"
ACCEPT_HINT = "to accept a legitimate change in the data: `make schema`, then see docs/data-validation.md"


class DataValidationError(RuntimeError):
    """The data breaks the schema. The first line of the message is a summary; one line per anomaly follows."""

    def __init__(self, anomalies: list[anomaly_text.Anomaly], schema_source: str) -> None:
        self.anomalies = anomalies
        self.schema_source = schema_source
        lines = [
            anomaly_text.summary(anomalies, schema_source) + "; the run stopped before Transform",
            *(f"  {anomaly.line()}" for anomaly in anomalies),
            ACCEPT_HINT,
        ]
        super().__init__("\n".join(lines))


class ValidationGateSpec(types.ComponentSpec):
    PARAMETERS = {SCHEMA_SOURCE_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


def read_split_anomalies(anomalies: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    """The Anomalies proto of every split of an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        with fileio.open(path, "rb") as file:
            result[split] = anomalies_pb2.Anomalies.FromString(file.read())
    return result


def has_anomalies(anomalies: anomalies_pb2.Anomalies) -> bool:
    return bool(anomalies.anomaly_info) or anomalies.HasField("dataset_anomaly_info") or anomalies.data_missing


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict[SCHEMA_KEY])
        schema_path = io_utils.get_only_uri_in_dir(schema_uri)
        schema = io_utils.SchemaReader().read(schema_path)
        per_split = read_split_anomalies(artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY]))
        broken = {split: found for split, found in per_split.items() if has_anomalies(found)}
        if broken:
            described = {split: anomaly_text.describe(found, schema) for split, found in broken.items()}
            source = exec_properties.get(SCHEMA_SOURCE_KEY) or "(inferred by SchemaGen)"
            raise DataValidationError(anomaly_text.merge_splits(described), source)
        output_uri = artifact_utils.get_single_uri(output_dict[VALIDATED_SCHEMA_KEY])
        io_utils.copy_file(schema_path, os.path.join(output_uri, SCHEMA_FILE))


class ValidationGate(base_component.BaseComponent):
    """Fails when the anomalies hold anything; otherwise outputs the schema as `validated_schema`."""

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self, anomalies: types.BaseChannel, schema: types.BaseChannel, schema_source: str | None = None
    ) -> None:
        spec = ValidationGateSpec(
            anomalies=anomalies,
            schema=schema,
            schema_source=schema_source,
            validated_schema=types.Channel(type=standard_artifacts.Schema),
        )
        super().__init__(spec=spec)
