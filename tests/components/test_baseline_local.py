"""BaselineModel in local runs, on TFX's local orchestrator and ML Metadata: the newest model this
pipeline's Pusher pushed, never the candidate, never one the serving smoke test refused.

A small pipeline wired like the real one: imported model, blessing and examples (standing in for
Trainer, Evaluator and CsvExampleGen) -> BaselineModel -> a recorder standing in for the Evaluator
-> ModelRegistration (the real serving smoke test) -> Pusher (TFX's).
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
from components.baseline.sources import LocalMetadataSource
from components.registration.component import ModelRegistration
from components.smoke_test import SmokeTestError
from tests.components.test_smoke_test import probability, tiny_model

PIPELINE = "tiny-taxi"


class RecorderExecutor(base_executor.BaseExecutor):
    """Writes the URIs of the `baseline_model` it was given (none, or one) to `record`."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict, exec_properties: dict) -> None:
        uris = [artifact.uri for artifact in input_dict.get("baseline_model", [])]
        Path(exec_properties["record"]).write_text(json.dumps(uris))


class RecorderSpec(ComponentSpec):
    PARAMETERS = {"record": ExecutionParameter(type=str)}
    INPUTS = {"baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True)}
    OUTPUTS: dict[str, Any] = {}


class Recorder(base_component.BaseComponent):
    """Stands for the Evaluator: an optional `baseline_model` input, as TFX's Evaluator has."""

    SPEC_CLASS = RecorderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(RecorderExecutor)

    def __init__(self, baseline_model: types.BaseChannel, record: str) -> None:
        super().__init__(spec=RecorderSpec(baseline_model=baseline_model, record=record))


class TinyPipeline:
    def __init__(self, folder: Path, examples_uri: Path) -> None:
        self.folder = folder
        self.examples_uri = examples_uri
        self.metadata = folder / "metadata.sqlite"
        self.record = folder / "baseline.json"
        self.blessing = folder / "blessing"
        self.blessing.mkdir(parents=True)

    def run(self, model_uri: str) -> list[str]:
        """One run with `model_uri` as the candidate; returns the baseline the Evaluator would get."""
        model = Importer(source_uri=model_uri, artifact_type=standard_artifacts.Model).with_id("Trainer")
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
        recorder = Recorder(baseline.outputs["baseline_model"], str(self.record)).with_id("Recorder")
        registration = ModelRegistration(
            model=model.outputs["result"],
            model_blessing=blessing.outputs["result"],
            examples=examples.outputs["result"],
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
                components=[model, blessing, examples, baseline, recorder, registration, pusher],
                metadata_connection_config=sqlite_metadata_connection_config(str(self.metadata)),
                # Off, so that each run decides afresh (a cached BaselineModel keeps its earlier answer).
                enable_cache=False,
            )
        )
        return self.recorded()

    def recorded(self) -> list[str]:
        return json.loads(self.record.read_text())


def model_copy(model_uri: Path, folder: Path) -> str:
    """Another Model artifact folder holding the same SavedModel (another trained model)."""
    shutil.copytree(model_uri, folder)
    return str(folder)


def refused_model(folder: Path) -> str:
    """A Model artifact folder whose SavedModel the smoke test refuses (its signatures disagree)."""
    saved = tiny_model(folder, probability, lambda fares: probability(fares) * 0.5)
    shutil.move(saved, folder / "Format-Serving")
    return str(folder)


def test_local_runs_take_the_newest_pushed_model_of_the_pipeline(
    model_uri: Path, examples_uri: Path, tmp_path: Path
) -> None:
    tiny = TinyPipeline(tmp_path / "pipeline", examples_uri)
    first, second, third = (model_copy(model_uri, tmp_path / name) for name in ("first", "second", "third"))

    assert tiny.run(first) == []  # the first run: nothing pushed yet, the Evaluator gets no baseline
    assert tiny.run(second) == [first]

    # Blessed, but refused by the serving smoke test: the run stops before the Pusher.
    with pytest.raises(SmokeTestError):
        tiny.run(refused_model(tmp_path / "refused"))
    assert tiny.recorded() == [second]

    assert tiny.run(third) == [second]  # not the refused model
    # The candidate is never its own baseline: re-run with the last pushed model as the candidate.
    assert tiny.run(third) == [second]
    assert tf.io.gfile.listdir(str(tmp_path / "pipeline" / "serving"))  # the Pusher did push
