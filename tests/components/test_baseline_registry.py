"""BaselineModel on Vertex AI: the newest registry version that a run of this pipeline uploaded; and
BaselineStatistics: what that run's StatisticsGen step recorded.

Runs of two pipelines execute on the Vertex AI stand-in (small programs standing in for Trainer,
Evaluator and ModelRegistration), registry versions carry the labels ModelRegistration writes, and
the executor reads both through the real SDK.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform
from tfx.types import standard_artifacts

from components.baseline import executor, statistics
from components.baseline.sources import RegistrySource, to_json
from tools.standins.containers import ContainerRuntime, LocalImage
from tools.standins.fixtures import aiplatform_configured
from tools.standins.pipeline_runs import LocalPipelineExecutor
from tools.standins.vertex_models import ModelsSurface
from tools.standins.vertex_server import FakeVertexServer

PROJECT = "my-tfx-dev"
PROJECT_NUMBER = "123456789012"
REGION = "us-central1"
IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline@sha256:" + "ab" * 32
SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
# The old compiled resolver's query: the newest blessing of the whole project and region.
ARTIFACT_TYPES = ("Model", "ModelBlessing", "PushedModel")
PROJECT_WIDE_BLESSING = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'

# Each task writes its outputs; a blessing names the model it blessed (as TFX's Evaluator does),
# statistics have a folder per split (as StatisticsGen writes them).
PROGRAM = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
inputs = {key: listed["artifacts"][0] for key, listed in executor_input["inputs"].get("artifacts", {}).items()}
written = {"artifacts": {}}
for key, listed in executor_input["outputs"]["artifacts"].items():
    artifact = listed["artifacts"][0]
    os.makedirs(artifact["uri"], exist_ok=True)
    if key == "statistics":
        for split in ("train", "eval"):
            os.makedirs(os.path.join(artifact["uri"], "Split-" + split), exist_ok=True)
    metadata = {"blessed": 1, "current_model_id": inputs["model"]["name"]} if key == "blessing" else {}
    artifact["metadata"] = metadata
    written["artifacts"][key] = {"artifacts": [artifact]}
json.dump(written, open(executor_input["outputs"]["outputFile"], "w"))
"""


def run_spec(pipeline_name: str, program: Path) -> dict[str, Any]:
    """StatisticsGen, Trainer -> Evaluator -> ModelRegistration, named as the compiled pipeline names them."""
    container = {"image": IMAGE, "command": [sys.executable, str(program), "{{$}}"]}
    model, blessing = (
        {"artifactType": {"schemaTitle": "tfx.Model"}},
        {"artifactType": {"schemaTitle": "tfx.ModelBlessing"}},
    )
    statistics_type = {"artifactType": {"schemaTitle": "tfx.ExampleStatistics"}}
    components = {
        "StatisticsGen": {"outputDefinitions": {"artifacts": {"statistics": statistics_type}}},
        "Trainer": {"outputDefinitions": {"artifacts": {"model": model}}},
        "Evaluator": {
            "inputDefinitions": {"artifacts": {"model": model}},
            "outputDefinitions": {"artifacts": {"blessing": blessing}},
        },
        "ModelRegistration": {
            "inputDefinitions": {"artifacts": {"model": model, "model_blessing": blessing}},
            "outputDefinitions": {
                "artifacts": {"registered_model": {"artifactType": {"schemaTitle": "tfx.PushedModel"}}}
            },
        },
    }
    inputs = {
        "Evaluator": {"model": ("Trainer", "model")},
        "ModelRegistration": {"model": ("Trainer", "model"), "model_blessing": ("Evaluator", "blessing")},
    }
    tasks = {}
    for name, definition in components.items():
        definition["executorLabel"] = f"{name}_executor"
        artifacts = {
            key: {"taskOutputArtifact": {"producerTask": producer, "outputArtifactKey": output}}
            for key, (producer, output) in inputs.get(name, {}).items()
        }
        tasks[name] = {"componentRef": {"name": name}, "taskInfo": {"name": name}, "inputs": {"artifacts": artifacts}}
    return {
        "pipelineSpec": {
            "pipelineInfo": {"name": pipeline_name},
            "schemaVersion": "2.1.0",
            "components": components,
            "deploymentSpec": {"executors": {f"{name}_executor": {"container": container} for name in components}},
            "root": {"dag": {"tasks": tasks}},
        },
        "runtimeConfig": {},
    }


@dataclass
class Cloud:
    runs: LocalPipelineExecutor
    folder: Path
    program: Path

    def run(self, pipeline_name: str, job_id: str) -> str:
        """Runs the pipeline; returns the URI of its Trainer's model (statistics_of: its statistics)."""
        spec = self.folder / f"{job_id}.json"
        spec.write_text(json.dumps(run_spec(pipeline_name, self.program)))
        job = aiplatform.PipelineJob(
            display_name=job_id, template_path=str(spec), job_id=job_id, pipeline_root=str(self.folder / "root")
        )
        job.submit()
        self.runs.wait(timeout=60)
        tasks = {task.task_name: task for task in aiplatform.PipelineJob.get(job_id).task_details}
        assert tasks["ModelRegistration"].state.name == "SUCCEEDED"
        return tasks["Trainer"].outputs["model"].artifacts[0].uri

    def statistics_of(self, job_id: str) -> str:
        tasks = {task.task_name: task for task in aiplatform.PipelineJob.get(job_id).task_details}
        return tasks["StatisticsGen"].outputs["statistics"].artifacts[0].uri


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    runtime = ContainerRuntime(tmp_path / "logs")
    runtime.add_image(IMAGE, LocalImage(workdir=tmp_path))

    def read(uri: str) -> bytes | None:
        path = Path(uri)
        return path.read_bytes() if path.is_file() else None

    runs = LocalPipelineExecutor(runtime, read, PROJECT, PROJECT_NUMBER)
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    server = FakeVertexServer(
        project_id=PROJECT, project_number=PROJECT_NUMBER, surfaces=[ModelsSurface()], pipelines_executor=runs
    )
    with server, aiplatform_configured(api_endpoint=server.base_url, project=PROJECT, location=REGION):
        yield Cloud(runs, tmp_path, program)


def register(model_id: str, labels: dict[str, str]) -> None:
    """A new version of `model_id` as ModelRegistration uploads it (its files copied elsewhere)."""
    try:
        parent = {"parent_model": aiplatform.Model(model_id).resource_name, "is_default_version": False}
    except exceptions.NotFound:  # the first upload creates the model
        parent = {"model_id": model_id}
    aiplatform.Model.upload(
        display_name=model_id,
        artifact_uri=f"gs://my-tfx-dev-models/{model_id}/{labels.get('pipeline_job', 'by-hand')}",
        serving_container_image_uri=SERVING_IMAGE,
        labels=labels,
        **parent,
    )


def source(model_id: str = "my-pipeline") -> RegistrySource:
    return RegistrySource(
        project=PROJECT,
        region=REGION,
        model_id=model_id,
        pipeline_name="my-pipeline",
        registration_task="ModelRegistration",
    )


def choose(tmp_path: Path, candidate_uri: str, baseline_source: RegistrySource) -> standard_artifacts.Model:
    """Runs BaselineModel's executor as the pipeline image would; returns its output artifact."""
    candidate = standard_artifacts.Model()
    candidate.uri = candidate_uri
    output = standard_artifacts.Model()
    output.uri = str(tmp_path / "BaselineModel" / "baseline_model")
    outputs = {executor.BASELINE_KEY: [output]}
    executor.Executor().Do(
        {executor.CANDIDATE_KEY: [candidate]}, outputs, {executor.SOURCE_KEY: to_json(baseline_source)}
    )
    assert outputs[executor.BASELINE_KEY] == [output]  # a Vertex AI step always records its output
    return output


def test_the_baseline_is_the_newest_model_this_pipeline_registered(cloud: Cloud, tmp_path: Path) -> None:
    first = cloud.run("my-pipeline", "my-pipeline-run-1")
    second = cloud.run("my-pipeline", "my-pipeline-run-2")
    other = cloud.run("other-pipeline", "other-pipeline-run-1")  # blessed and registered last
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-1"})
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-2"})
    register("my-pipeline", {"blessed": "true", "pipeline_job": "other-pipeline-run-1"})  # same registry model
    register("other-pipeline", {"blessed": "true", "pipeline_job": "other-pipeline-run-1"})
    register("my-pipeline", {"pipeline_job": "my-pipeline-run-1"})  # not labelled blessed: not ModelRegistration's
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-deleted-run"})  # run no longer readable

    baseline = choose(tmp_path, "gs://my-tfx-dev-pipelines/my-pipeline/123456789012/new/Trainer_9/model", source())

    assert baseline.uri == second != other
    assert baseline.get_int_custom_property(executor.FOUND_KEY) == 1
    registered_as = baseline.get_string_custom_property(executor.REGISTERED_AS_KEY)
    assert registered_as.endswith("models/my-pipeline@2 (run my-pipeline-run-2)")
    # TFX's compiled resolver asked for the newest blessed model of the whole project: the other pipeline's.
    store = cloud.runs.metadata(f"projects/{PROJECT_NUMBER}/locations/{REGION}")
    newest_blessing = store.query(PROJECT_WIDE_BLESSING)[0]
    assert store.artifact(newest_blessing["metadata"]["current_model_id"])["uri"] == other
    assert first != second


def test_the_candidates_own_version_is_passed_over(cloud: Cloud, tmp_path: Path) -> None:
    first = cloud.run("my-pipeline", "my-pipeline-run-1")
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-1"})

    # A re-run whose Trainer came from the cache: the candidate's own version is all there is.
    assert executor.is_no_baseline_marker(choose(tmp_path / "rerun", first, source()))

    second = cloud.run("my-pipeline", "my-pipeline-run-2")
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-2"})
    assert choose(tmp_path / "after", second, source()).uri == first


def test_nothing_registered_yet_gives_an_empty_marked_output(cloud: Cloud, tmp_path: Path) -> None:
    candidate = cloud.run("my-pipeline", "my-pipeline-run-1")

    baseline = choose(tmp_path, candidate, source())

    assert baseline.uri == str(tmp_path / "BaselineModel" / "baseline_model")  # not pointed anywhere
    assert baseline.get_int_custom_property(executor.FOUND_KEY) == 0
    assert executor.is_no_baseline_marker(baseline)
    assert "registered" in baseline.get_string_custom_property(executor.REASON_KEY)


def baseline_statistics(tmp_path: Path, baseline_source: RegistrySource) -> standard_artifacts.ExampleStatistics:
    """Runs BaselineStatistics' executor as the pipeline image would; returns its output artifact."""
    current = standard_artifacts.ExampleStatistics()
    current.uri = "gs://my-tfx-dev-pipelines/my-pipeline/123456789012/new/StatisticsGen_3/statistics"
    output = standard_artifacts.ExampleStatistics()
    output.uri = str(tmp_path / "BaselineStatistics" / "baseline_statistics")
    statistics.Executor().Do(
        {statistics.STATISTICS_KEY: [current]},
        {statistics.BASELINE_STATISTICS_KEY: [output]},
        {executor.SOURCE_KEY: to_json(baseline_source), statistics.STATISTICS_STEP_KEY: "StatisticsGen"},
    )
    return output


def test_the_baseline_statistics_are_those_of_the_run_of_the_newest_registered_model(
    cloud: Cloud, tmp_path: Path
) -> None:
    assert executor.is_no_baseline_marker(baseline_statistics(tmp_path / "before", source()))  # nothing registered
    cloud.run("my-pipeline", "my-pipeline-run-1")
    cloud.run("my-pipeline", "my-pipeline-run-2")
    cloud.run("other-pipeline", "other-pipeline-run-1")
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-1"})
    register("my-pipeline", {"blessed": "true", "pipeline_job": "my-pipeline-run-2"})
    register("my-pipeline", {"blessed": "true", "pipeline_job": "other-pipeline-run-1"})  # another pipeline's run
    register("my-pipeline", {"pipeline_job": "my-pipeline-run-1"})  # not labelled blessed

    found = baseline_statistics(tmp_path / "after", source())

    assert found.uri == cloud.statistics_of("my-pipeline-run-2") != cloud.statistics_of("my-pipeline-run-1")
    assert found.split_names == '["eval", "train"]'
    assert found.get_int_custom_property(executor.FOUND_KEY) == 1
    data_of = found.get_string_custom_property(statistics.DATA_OF_KEY)
    assert data_of.startswith("the data of ") and data_of.endswith("models/my-pipeline@2 (run my-pipeline-run-2)")
