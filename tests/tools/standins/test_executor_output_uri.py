"""An executor that points its output artifact elsewhere in executor_output.json: the Vertex AI
stand-in records that URI, as KFP's launcher does (a non-empty `uri` replaces the generated one),
and the next task receives it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import aiplatform

from tools.standins.containers import ContainerRuntime, LocalImage
from tools.standins.fixtures import aiplatform_configured
from tools.standins.pipeline_runs import LocalPipelineExecutor
from tools.standins.vertex_server import FakeVertexServer

IMAGE = "us-central1-docker.pkg.dev/test-project/pipelines/tiny@sha256:" + "cd" * 32
ELSEWHERE = "gs://somewhere-else/model-folder"

# `choose` points its output at ELSEWHERE (its metadata says so too); `use` records what it got.
PROGRAM = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
task_root = os.path.dirname(executor_input["outputs"]["outputFile"])
os.makedirs(task_root, exist_ok=True)
json.dump(executor_input["inputs"], open(os.path.join(task_root, "inputs.json"), "w"))
written = {"artifacts": {}}
for key, listed in executor_input["outputs"]["artifacts"].items():
    artifact = listed["artifacts"][0]
    written["artifacts"][key] = {"artifacts": [{**artifact, "uri": sys.argv[2], "metadata": {"found": 1}}]}
json.dump(written, open(executor_input["outputs"]["outputFile"], "w"))
"""


def spec(program: Path) -> dict[str, Any]:
    model = {"artifactType": {"schemaTitle": "tfx.Model"}}
    command = [sys.executable, str(program), "{{$}}", ELSEWHERE]
    return {
        "pipelineSpec": {
            "pipelineInfo": {"name": "pointing"},
            "schemaVersion": "2.1.0",
            "components": {
                "choose": {"executorLabel": "choose_executor", "outputDefinitions": {"artifacts": {"model": model}}},
                "use": {"executorLabel": "use_executor", "inputDefinitions": {"artifacts": {"baseline": model}}},
            },
            "deploymentSpec": {
                "executors": {
                    "choose_executor": {"container": {"image": IMAGE, "command": command}},
                    "use_executor": {"container": {"image": IMAGE, "command": command}},
                }
            },
            "root": {
                "dag": {
                    "tasks": {
                        "choose": {"componentRef": {"name": "choose"}, "taskInfo": {"name": "choose"}},
                        "use": {
                            "componentRef": {"name": "use"},
                            "taskInfo": {"name": "use"},
                            "inputs": {
                                "artifacts": {
                                    "baseline": {
                                        "taskOutputArtifact": {"producerTask": "choose", "outputArtifactKey": "model"}
                                    }
                                }
                            },
                        },
                    }
                }
            },
        },
        "runtimeConfig": {},
    }


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[LocalPipelineExecutor]:
    runtime = ContainerRuntime(tmp_path / "logs")
    runtime.add_image(IMAGE, LocalImage(workdir=tmp_path))

    def read(uri: str) -> bytes | None:
        path = Path(uri)
        return path.read_bytes() if path.is_file() else None

    executor = LocalPipelineExecutor(runtime, read, "test-project", "123456789012")
    with FakeVertexServer(pipelines_executor=executor) as server, aiplatform_configured(api_endpoint=server.base_url):
        yield executor


def test_an_output_pointed_elsewhere_is_recorded_and_passed_on(runs: LocalPipelineExecutor, tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    template = tmp_path / "spec.json"
    template.write_text(json.dumps(spec(program)))
    job = aiplatform.PipelineJob(
        display_name="pointing", template_path=str(template), job_id="pointing-1", pipeline_root=str(tmp_path / "root")
    )
    job.submit()
    runs.wait(timeout=60)

    tasks = {task.task_name: task for task in aiplatform.PipelineJob.get(job.resource_name).task_details}
    (output,) = tasks["choose"].outputs["model"].artifacts
    assert (output.uri, output.metadata["found"]) == (ELSEWHERE, 1)
    (received,) = tasks["use"].inputs["baseline"].artifacts
    assert (received.name, received.uri) == (output.name, ELSEWHERE)
    use_root = tmp_path / "root" / "123456789012" / "pointing-1" / f"use_{tasks['use'].task_id}"
    given = json.loads((use_root / "inputs.json").read_text())["artifacts"]["baseline"]["artifacts"][0]
    assert given["uri"] == ELSEWHERE
    store = runs.metadata("projects/123456789012/locations/us-central1")
    assert store.artifact(output.name)["uri"] == ELSEWHERE
