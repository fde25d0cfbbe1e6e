"""ValidationGate: stops the pipeline when ExampleValidator found anomalies in the data, or when the
drift check found it moved too far from the data the baseline model was trained on.

TFX's ExampleValidator and DistributionValidator record anomalies but never fail, so a pipeline
trains on data that breaks its schema, or whose label was broken at the source. The gate reads the
ExampleAnomalies artifact of every split. With any anomaly it fails its execution with
DataValidationError, whose message starts with a one-line summary followed by one line per
anomaly (feature, what the schema expects, what was found). Then, with the optional `drift` input
(DistributionValidator's anomalies, components/drift.py), every compared pair of splits: a feature
beyond its drift threshold fails it with DataDriftError (a DataValidationError: one line per
feature, what it moved by and what the schema allows, and which baseline data it was compared
with). Data that breaks the schema is refused on that alone.

Otherwise it passes the schema on as `validated_schema`: Transform and Trainer read that output, so
nothing downstream runs on refused data, on every runner. The output's `drift_check` property says
what the drift check did (compared with which data, or why it was skipped: on the first run there
is no baseline).

A plain component (ExecutorClassSpec), so the KFP v2 compiler and the local runner both run it
from this module inside the pipeline image.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components import anomaly_text, drift
from components.baseline.executor import FOUND_KEY, REASON_KEY
from components.baseline.statistics import DATA_OF_KEY

ANOMALIES_KEY = "anomalies"
SCHEMA_KEY = "schema"
VALIDATED_SCHEMA_KEY = "validated_schema"
SCHEMA_SOURCE_KEY = "schema_source"
DRIFT_KEY = "drift"
DRIFT_CHECK_KEY = "drift_check"  # on the output: what the drift check did, in words
# The file ExampleValidator writes per split (tfx.components.example_validator.executor).
ANOMALIES_FILE = "SchemaDiff.pb"
SCHEMA_FILE = "schema.pbtxt"
ACCEPT_HINT = "to accept a legitimate change in the data: `make schema`, then see docs/data-validation.md"
ACCEPT_DRIFT_HINT = (
    "to accept a legitimate change in the data: raise the feature's drift_comparator threshold in {schema}, "
    "have the edit reviewed, and run again; see docs/data-validation.md"
)
STOPPED = "; the run stopped before Transform"


class DataValidationError(RuntimeError):
    """The data breaks the schema. The first line of the message is a summary; one line per anomaly follows."""

    def __init__(self, anomalies: list[anomaly_text.Anomaly], schema_source: str) -> None:
        self.anomalies = anomalies
        self.schema_source = schema_source
        super().__init__("\n".join(self._lines()))

    def _lines(self) -> list[str]:
        return [
            anomaly_text.summary(self.anomalies, self.schema_source) + STOPPED,
            *(f"  {anomaly.line()}" for anomaly in self.anomalies),
            ACCEPT_HINT,
        ]


class DataDriftError(DataValidationError):
    """The data moved beyond the schema's drift thresholds from the data of the baseline model: a summary
    line, one line per feature, the baseline data it was compared with, how to accept the change."""

    def __init__(self, drift: list[anomaly_text.Drift], schema_source: str, compared_with: str) -> None:
        self.drift = drift
        self.compared_with = compared_with
        super().__init__([], schema_source)

    def _lines(self) -> list[str]:
        return [
            anomaly_text.drift_summary(self.drift, self.schema_source) + STOPPED,
            *(f"  {item.line()}" for item in self.drift),
            f"  compared with {self.compared_with}",
            ACCEPT_DRIFT_HINT.format(schema=self.schema_source),
        ]


class ValidationGateSpec(types.ComponentSpec):
    PARAMETERS = {SCHEMA_SOURCE_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        DRIFT_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
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
        source = exec_properties.get(SCHEMA_SOURCE_KEY) or "(inferred by SchemaGen)"
        if broken:
            described = {split: anomaly_text.describe(found, schema) for split, found in broken.items()}
            raise DataValidationError(anomaly_text.merge_splits(described), source)
        output = artifact_utils.get_single_instance(output_dict[VALIDATED_SCHEMA_KEY])
        if input_dict.get(DRIFT_KEY):
            drift_check = check_drift(artifact_utils.get_single_instance(input_dict[DRIFT_KEY]), source)
            logging.info("Drift check: %s", drift_check)
            output.set_string_custom_property(DRIFT_CHECK_KEY, drift_check)
        io_utils.copy_file(schema_path, os.path.join(output.uri, SCHEMA_FILE))


def check_drift(drift_anomalies: types.Artifact, schema_source: str) -> str:
    """Raises DataDriftError when a feature moved beyond its threshold; otherwise says what was checked."""
    if drift_anomalies.get_int_custom_property(FOUND_KEY) != 1:
        return f"skipped: {drift_anomalies.get_string_custom_property(REASON_KEY) or 'no baseline statistics'}"
    compared_with = drift_anomalies.get_string_custom_property(DATA_OF_KEY)
    moved = anomaly_text.describe_drift(drift.read_split_pairs(drift_anomalies))
    if moved:
        raise DataDriftError(moved, schema_source, compared_with)
    return f"passed: compared with {compared_with}, no feature beyond its threshold in {schema_source}"


class ValidationGate(base_component.BaseComponent):
    """Fails when the anomalies (or the drift anomalies) hold anything; otherwise outputs the schema as
    `validated_schema`."""

    SPEC_CLASS = ValidationGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        anomalies: types.BaseChannel,
        schema: types.BaseChannel,
        schema_source: str | None = None,
        drift: types.BaseChannel | None = None,
    ) -> None:
        spec = ValidationGateSpec(
            anomalies=anomalies,
            schema=schema,
            schema_source=schema_source,
            drift=drift,
            validated_schema=types.Channel(type=standard_artifacts.Schema),
        )
        super().__init__(spec=spec)
