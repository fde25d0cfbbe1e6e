"""The TFX component `BaselineStatistics`: the statistics of the data the baseline model was trained
on, for the drift check before training (components/drift.py).

A step of its own rather than a second output of BaselineModel: BaselineModel takes the Trainer's
model as input, to leave the candidate out of its choice, so it runs after training; the drift
check has to stop a run before Transform and the Trainer. This step takes this run's statistics as
input instead: it runs as soon as StatisticsGen is done, with no candidate yet to leave out, and
caching keys it on them (locally and on Vertex AI): new data looks the baseline up anew, while
unchanged data keeps the answer it got the first time, so that an unchanged re-run stays cached
through the gate, Transform and the Trainer.

The baseline is the same model BaselineModel picks (sources.py: the newest that this pipeline
registered); its data is what the statistics step (`statistics_step`, StatisticsGen's id) recorded
in the run that registered it: locally from ML Metadata (local_metadata.py), on Vertex AI from that
run's task details (model_registry.py).

Found: the output artifact takes the baseline's statistics folder and split names, with
`baseline_found` = 1 and `data_of` (whose data, in words). None (the first run): an empty output
marked `baseline_found` = 0, with the `reason`, on both runners; TFX's DistributionValidator needs a
`baseline_statistics` input, and components/drift.py leaves the marker out, so that TFX skips the
comparison.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.baseline import sources
from components.baseline.executor import FOUND_KEY, REASON_KEY, SOURCE_KEY
from components.baseline.sources import (
    BaselineSource,
    LocalMetadataSource,
    NoSource,
    RegistrySource,
    TrainingStatistics,
)

STATISTICS_KEY = "statistics"
STATISTICS_STEP_KEY = "statistics_step"
BASELINE_STATISTICS_KEY = "baseline_statistics"
DATA_OF_KEY = "data_of"
SPLIT_PREFIX = "Split-"  # TFX's folder of one split of an artifact


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        source = sources.from_json(exec_properties[SOURCE_KEY])
        output = artifact_utils.get_single_instance(output_dict[BASELINE_STATISTICS_KEY])
        found = find_training_statistics(source, exec_properties[STATISTICS_STEP_KEY])
        if found is None or not fileio.isdir(found.uri):
            reason = no_baseline_reason(source, found)
            logging.warning("No baseline statistics (%s): the drift check is skipped", reason)
            output.set_int_custom_property(FOUND_KEY, 0)
            output.set_string_custom_property(REASON_KEY, reason)
            return
        logging.info("Baseline statistics: %s (%s)", found.uri, found.data_of)
        if fileio.isdir(output.uri) and not fileio.listdir(output.uri):
            fileio.rmtree(output.uri)  # the folder made for the output, now unused
        output.uri = found.uri
        output.split_names = artifact_utils.encode_split_names(split_names(found.uri))
        output.set_int_custom_property(FOUND_KEY, 1)
        output.set_string_custom_property(DATA_OF_KEY, found.data_of)


def find_training_statistics(source: BaselineSource, statistics_step: str) -> TrainingStatistics | None:
    if isinstance(source, LocalMetadataSource):
        from components.baseline.local_metadata import latest_pushed_model_statistics

        return latest_pushed_model_statistics(source, statistics_step)
    if isinstance(source, RegistrySource):
        from components.baseline.model_registry import latest_registered_statistics

        return latest_registered_statistics(source, statistics_step)
    return None


def no_baseline_reason(source: BaselineSource, found: TrainingStatistics | None) -> str:
    if found is not None:  # a pipeline root's old runs may be cleaned up
        return f"the statistics of {found.data_of} are gone ({found.uri})"
    if isinstance(source, NoSource):
        return source.reason
    return "no model of this pipeline was registered yet"


def split_names(uri: str) -> list[str]:
    """The splits of a statistics folder, from its Split-<name> folders (as StatisticsGen writes them)."""
    entries = (entry.rstrip("/") for entry in fileio.listdir(uri))
    return sorted(entry[len(SPLIT_PREFIX) :] for entry in entries if entry.startswith(SPLIT_PREFIX))


class BaselineStatisticsSpec(ComponentSpec):
    PARAMETERS = {
        SOURCE_KEY: ExecutionParameter(type=str),
        STATISTICS_STEP_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics)}
    OUTPUTS = {BASELINE_STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics)}


class BaselineStatistics(base_component.BaseComponent):
    SPEC_CLASS = BaselineStatisticsSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, source: BaselineSource, statistics_step: str) -> None:
        spec = BaselineStatisticsSpec(
            statistics=statistics,
            source=sources.to_json(source),
            statistics_step=statistics_step,
            baseline_statistics=types.Channel(type=standard_artifacts.ExampleStatistics),
        )
        super().__init__(spec=spec)
