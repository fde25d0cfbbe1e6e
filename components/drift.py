"""The drift check: TFX's DistributionValidator, comparing this run's statistics with those of the
data the baseline model was trained on (BaselineStatistics, components/baseline/statistics.py).

The thresholds are the curated schema's: a `drift_comparator` on a feature (TFDV's own field for
them) becomes one FeatureComparator of the DistributionValidatorConfig when the pipeline is defined,
so the compiled spec carries the numbers and an edited threshold changes the step's cache key.
TFDV compares numbers by the Jensen-Shannon divergence of their histograms and categories by the
L-infinity distance of their value shares (the largest change in the share of one value); a
comparator that does not fit the feature's type would compare nothing without a word from TFDV, so
it is refused here.

The executor is TFX's, with these additions:
- it leaves out BaselineStatistics' "none found" marker (TFX then compares nothing and records each
  split as having no baseline) and records on its anomalies output what the baseline was
  (`baseline_found`, and `data_of` or `reason`), which the ValidationGate reports;
- it takes the config as JSON text too: TFX's KFP v2 container entrypoint hands a Vertex AI step
  its proto parameters as the text the spec holds, which TFX's executor cannot read;
- what TFDV's C++ code prints to stderr goes to the Python log, as every library's log does.
TFX writes each split pair's Anomalies to SplitPair-<split>_<split>/; the ValidationGate
(components/validation_gate.py) stops the run when one holds any.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from absl import logging
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2
from tfx import types
from tfx.components.distribution_validator import component as distribution_validator_component
from tfx.components.distribution_validator import executor as distribution_validator_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import distribution_validator_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.baseline.executor import FOUND_KEY, REASON_KEY, is_no_baseline_marker
from components.baseline.statistics import DATA_OF_KEY

STATISTICS_KEY = standard_component_specs.STATISTICS_KEY
BASELINE_STATISTICS_KEY = standard_component_specs.BASELINE_STATISTICS_KEY
ANOMALIES_KEY = standard_component_specs.ANOMALIES_KEY
CONFIG_KEY = standard_component_specs.DISTRIBUTION_VALIDATOR_CONFIG_KEY
ANOMALIES_FILE = distribution_validator_executor.DEFAULT_FILE_NAME
SPLIT_PAIR_PREFIX = "SplitPair-"  # TFX's folder of one compared pair of splits
# StatisticsGen runs without a schema here, so it counts values (what L-infinity compares) of text only.
_CATEGORICAL = "L-infinity (infinity_norm) compares the shares of values, which the statistics hold for BYTES features"
_NUMERIC = "Jensen-Shannon divergence compares histograms: for INT and FLOAT features"


class DriftThresholdError(ValueError):
    """A drift_comparator in the schema that TFDV would not apply."""


def drift_config(
    schema: schema_pb2.Schema, schema_source: str
) -> distribution_validator_pb2.DistributionValidatorConfig:
    """The schema's drift comparators as DistributionValidator's config (an empty one compares nothing)."""
    config = distribution_validator_pb2.DistributionValidatorConfig()
    for feature in schema.feature:
        if not feature.HasField("drift_comparator"):
            continue
        _check_fits(feature, schema_source)
        comparator = config.default_slice_config.feature.add()
        comparator.path.step.append(feature.name)
        comparator.distribution_comparator.CopyFrom(feature.drift_comparator)
    return config


def drift_config_from_file(
    path: str | Path, schema_source: str
) -> distribution_validator_pb2.DistributionValidatorConfig:
    schema = text_format.Parse(Path(path).read_text(), schema_pb2.Schema())
    return drift_config(schema, schema_source)


def _check_fits(feature: schema_pb2.Feature, schema_source: str) -> None:
    comparator = feature.drift_comparator
    categorical = feature.type == schema_pb2.BYTES
    numeric = feature.type in (schema_pb2.INT, schema_pb2.FLOAT)
    where = f"{schema_source}: feature {feature.name} ({schema_pb2.FeatureType.Name(feature.type)})"
    if comparator.HasField("infinity_norm") and not categorical:
        raise DriftThresholdError(f"{where}: drift_comparator infinity_norm does not apply: {_CATEGORICAL}")
    if comparator.HasField("jensen_shannon_divergence") and not numeric:
        raise DriftThresholdError(f"{where}: drift_comparator jensen_shannon_divergence does not apply: {_NUMERIC}")
    if comparator.HasField("normalized_abs_difference"):
        raise DriftThresholdError(
            f"{where}: use infinity_norm or jensen_shannon_divergence ({_CATEGORICAL}; {_NUMERIC})"
        )


class Executor(distribution_validator_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> Any:
        baselines = input_dict.get(BASELINE_STATISTICS_KEY, [])
        output = artifact_utils.get_single_instance(output_dict[ANOMALIES_KEY])
        found = [artifact for artifact in baselines if not is_no_baseline_marker(artifact)]
        if found:
            output.set_int_custom_property(FOUND_KEY, 1)
            output.set_string_custom_property(DATA_OF_KEY, found[0].get_string_custom_property(DATA_OF_KEY))
        else:
            reasons = [marker.get_string_custom_property(REASON_KEY) for marker in baselines]
            output.set_int_custom_property(FOUND_KEY, 0)
            output.set_string_custom_property(REASON_KEY, reasons[0] if reasons else "no baseline statistics")
        with native_stderr_to_log():
            return super().Do({**input_dict, BASELINE_STATISTICS_KEY: found}, output_dict, as_protos(exec_properties))


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """What TFDV's C++ code writes to stderr goes to the Python log instead.

    It warns there, outside any logger, when a comparator finds no statistics of its kind (a column
    that holds text where the baseline's held numbers: data the schema gate refuses anyway). Runs
    show the Python log with --verbose, Vertex AI in the step's log; a quiet run shows only progress.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip():
                    logging.warning("TFDV: %s", line)


def as_protos(exec_properties: dict[str, Any]) -> dict[str, Any]:
    """The config as the proto TFX's executor reads. The local runner hands it over as one; in a
    Vertex AI step (TFX's KFP v2 container entrypoint) it arrives as the JSON text the spec holds."""
    config = exec_properties.get(CONFIG_KEY)
    if isinstance(config, str):
        parsed = proto_utils.json_to_proto(config, distribution_validator_pb2.DistributionValidatorConfig())
        return {**exec_properties, CONFIG_KEY: parsed}
    return exec_properties


class DistributionValidator(distribution_validator_component.DistributionValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)


def read_split_pairs(anomalies: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    """The Anomalies proto of every compared pair of splits ({} when nothing was compared)."""
    result = {}
    for pair in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(anomalies.uri, f"{SPLIT_PAIR_PREFIX}{pair}", ANOMALIES_FILE)
        with fileio.open(path, "rb") as file:
            result[pair] = anomalies_pb2.Anomalies.FromString(file.read())
    return result
