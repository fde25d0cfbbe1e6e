"""BaselineModel in local runs, on TFX's local orchestrator and ML Metadata: the newest model this
pipeline's Pusher pushed, never the candidate, never one the serving smoke test refused; and
BaselineStatistics: the statistics of the run that pushed it, the data the drift check compares with.

A small pipeline wired like the real one: imported model, blessing, examples and statistics
(standing in for Trainer, Evaluator, CsvExampleGen and StatisticsGen) -> BaselineStatistics and
BaselineModel -> a recorder standing in for the DistributionValidator and the Evaluator ->
ModelRegistration (the real serving smoke test) -> Pusher (TFX's).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from tfx import types
from tfx.components import Pusher
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.components.common.importer import Importer
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.metadata import sqlite_metadata_connection_config
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.baseline.component import BaselineModel
from components.baseline.executor import FOUND_KEY, REASON_KEY
from components.baseline.sources import LocalMetadataSource
from components.baseline.statistics import DATA_OF_KEY, BaselineStatistics
from components.registration.component import ModelRegistration
from components.smoke_test import SmokeTestError
from models import label
from tests.components.conftest import Transformed, dense_feature
from tests.components.test_smoke_test import answer_for, tiny_model

PIPELINE = "tiny-pipeline"


class RecorderExecutor(base_executor.BaseExecutor):
    """Writes the URIs of the `baseline_model` it was given (none, or one) to `record`, and what
    `baseline_statistics` was: its URI when found, else the reason."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict, exec_properties: dict) -> None:
        uris = [artifact.uri for artifact in input_dict.get("baseline_model", [])]
        (statistics,) = input_dict["baseline_statistics"]
        if statistics.get_int_custom_property(FOUND_KEY) == 1:
            found = {"uri": statistics.uri, "data_of": statistics.get_string_custom_property(DATA_OF_KEY)}
            found["splits"] = statistics.split_names
        else:
            found = {"reason": statistics.get_string_custom_property(REASON_KEY)}
        Path(exec_properties["record"]).write_text(json.dumps({"models": uris, "statistics": found}))


class RecorderSpec(ComponentSpec):
    PARAMETERS = {"record": ExecutionParameter(type=str)}
    INPUTS = {
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "baseline_statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
    }
    OUTPUTS: dict[str, Any] = {}


class Recorder(base_component.BaseComponent):
    """Stands for the Evaluator (an optional `baseline_model` input, as TFX's Evaluator has) and the
    DistributionValidator (a `baseline_statistics` input, as TFX's has)."""

    SPEC_CLASS = RecorderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(RecorderExecutor)

    def __init__(self, baseline_model: types.BaseChannel, baseline_statistics: types.BaseChannel, record: str) -> None:
        super().__init__(
            spec=RecorderSpec(baseline_model=baseline_model, baseline_statistics=baseline_statistics, record=record)
        )


class TinyPipeline:
    def __init__(self, folder: Path, examples_uri: Path) -> None:
        self.folder = folder
        self.examples_uri = examples_uri
        self.metadata = folder / "metadata.sqlite"
        self.record = folder / "baseline.json"
        self.blessing = folder / "blessing"
        self.blessing.mkdir(parents=True)

    def run(self, model_uri: str) -> list[str]:
        """One run with `model_uri` as the candidate, and statistics of its own (statistics_of); returns
        the baseline the Evaluator would get."""
        model = Importer(source_uri=model_uri, artifact_type=standard_artifacts.Model).with_id("Trainer")
        statistics = Importer(
            source_uri=self.statistics_of(model_uri),
            artifact_type=standard_artifacts.ExampleStatistics,
            properties={"split_names": '["train", "eval"]'},
        ).with_id("StatisticsGen")
        blessing = Importer(
            source_uri=str(self.blessing),
            artifact_type=standard_artifacts.ModelBlessing,
            custom_properties={"blessed": 1},
        ).with_id("Evaluator")
        examples = Importer(
            source_uri=str(self.examples_uri),
            artifact_type=standard_artifacts.Examples,
            properties={"split_names": '["train", "eval"]'},
        ).with_id("CsvExampleGen")
        source = LocalMetadataSource(sqlite_path=str(self.metadata), pipeline_name=PIPELINE, pusher_node="Pusher")
        baseline = BaselineModel(candidate=model.outputs["result"], source=source).with_id("BaselineModel")
        baseline_statistics = BaselineStatistics(
            statistics=statistics.outputs["result"], source=source, statistics_step="StatisticsGen"
        ).with_id("BaselineStatistics")
        recorder = Recorder(
            baseline.outputs["baseline_model"], baseline_statistics.outputs["baseline_statistics"], str(self.record)
        ).with_id("Recorder")
        registration = ModelRegistration(
            model=model.outputs["result"],
            model_blessing=blessing.outputs["result"],
            examples=examples.outputs["result"],
            task=label.TASK,
        ).with_id("ModelRegistration")
        registration.add_upstream_node(recorder)
        pusher = Pusher(
            model=model.outputs["result"],
            model_blessing=blessing.outputs["result"],
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(self.folder / "serving"))
            ),
        ).with_id("Pusher")
        pusher.add_upstream_node(registration)
        self.record.unlink(missing_ok=True)
        LocalDagRunner().run(
            tfx_pipeline.Pipeline(
                pipeline_name=PIPELINE,
                pipeline_root=str(self.folder / "root"),
                components=[
                    *(model, blessing, examples, statistics, baseline, baseline_statistics),
                    *(recorder, registration, pusher),
                ],
                metadata_connection_config=sqlite_metadata_connection_config(str(self.metadata)),
                # Off, so that each run decides afresh (a cached BaselineModel keeps its earlier answer).
                enable_cache=False,
            )
        )
        return self.recorded()

    def recorded(self) -> list[str]:
        return json.loads(self.record.read_text())["models"]

    def recorded_statistics(self) -> dict[str, str]:
        return json.loads(self.record.read_text())["statistics"]

    def statistics_of(self, model_uri: str) -> str:
        """A statistics folder (Split-train, Split-eval) for the run of each candidate."""
        folder = self.folder / "statistics" / Path(model_uri).name
        for split in ("train", "eval"):
            (folder / f"Split-{split}").mkdir(parents=True, exist_ok=True)
        return str(folder)


def model_copy(model_uri: Path, folder: Path) -> str:
    """Another Model artifact folder holding the same SavedModel (another trained model)."""
    shutil.copytree(model_uri, folder)
    return str(folder)


def refused_model(folder: Path, transformed: Transformed) -> str:
    """A Model artifact folder whose SavedModel the smoke test refuses: on a feature of the configured
    rows, serving_default answers half of what serving_examples answers for the same rows."""
    feature, dtype = dense_feature(transformed.output)
    answer = answer_for(label.TASK)
    saved = tiny_model(
        folder, answer, lambda values: answer(values) * 0.5, output=label.TASK.output_key, feature=feature, dtype=dtype
    )
    shutil.move(saved, folder / "Format-Serving")
    return str(folder)


def test_local_runs_take_the_newest_pushed_model_of_the_pipeline(
    model_uri: Path, examples_uri: Path, transformed: Transformed, tmp_path: Path
) -> None:
    tiny = TinyPipeline(tmp_path / "pipeline", examples_uri)
    first, second, third = (model_copy(model_uri, tmp_path / name) for name in ("first", "second", "third"))

    assert tiny.run(first) == []  # the first run: nothing pushed yet, the Evaluator gets no baseline
    assert tiny.recorded_statistics() == {"reason": "no model of this pipeline was registered yet"}
    assert tiny.run(second) == [first]
    assert tiny.recorded_statistics()["uri"] == tiny.statistics_of(first)  # the data `first` was trained on
    assert tiny.recorded_statistics()["splits"] == '["eval", "train"]'

    # Blessed, but refused by the serving smoke test: the run stops before the Pusher.
    with pytest.raises(SmokeTestError):
        tiny.run(refused_model(tmp_path / "refused", transformed))
    assert tiny.recorded() == [second]
    assert tiny.recorded_statistics()["uri"] == tiny.statistics_of(second)

    assert tiny.run(third) == [second]  # not the refused model
    assert tiny.recorded_statistics()["uri"] == tiny.statistics_of(second)  # nor its data
    # The candidate is never its own baseline: re-run with the last pushed model as the candidate.
    assert tiny.run(third) == [second]
    # The drift check runs before training, with no candidate yet: it compares with the data of the
    # newest pushed model, here the candidate's own.
    statistics = tiny.recorded_statistics()
    assert statistics["uri"] == tiny.statistics_of(third)
    assert statistics["data_of"].startswith("the data of the model pushed by Pusher execution ")
    assert tf.io.gfile.listdir(str(tmp_path / "pipeline" / "serving"))  # the Pusher did push
