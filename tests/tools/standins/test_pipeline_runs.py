"""The Vertex stand-in executes submitted pipeline jobs: ExecutorInput, DAG order, cache, resolvers,
failures, all read back through the real SDK. Containers here are small Python programs; the
pipeline itself runs in tests/tools/rehearsal."""

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
from tools.standins.pipeline_runs import LocalPipelineExecutor, task_order
from tools.standins.vertex_server import FakeVertexServer

IMAGE = "us-central1-docker.pkg.dev/test-project/pipelines/tiny@sha256:" + "ab" * 32
ACCOUNT = "runner@test-project.iam.gserviceaccount.com"

# A container: records the ExecutorInput it got, writes each output artifact and the executor
# output (with metadata), and exits with the code its `exit_code` parameter asks for.
PROGRAM = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
record = os.path.join(os.path.dirname(executor_input["outputs"]["outputFile"]), "executor_input.json")
os.makedirs(os.path.dirname(record), exist_ok=True)
json.dump(executor_input, open(record, "w"))
code = int(executor_input["inputs"].get("parameters", {}).get("exit_code", {}).get("intValue", 0))
if code:
    print("failing on purpose", file=sys.stderr)
    sys.exit(code)
inputs = [listed["artifacts"][0] for listed in executor_input["inputs"].get("artifacts", {}).values()]
model = inputs[0]["name"] if inputs else None  # a blessing names the model it blessed, as TFX's Evaluator does
written = {"artifacts": {}}
for key, listed in executor_input["outputs"]["artifacts"].items():
    artifact = listed["artifacts"][0]
    os.makedirs(artifact["uri"], exist_ok=True)
    open(os.path.join(artifact["uri"], "data"), "w").write(key)
    written["artifacts"][key] = {"artifacts": [{"name": artifact["name"], "uri": artifact["uri"],
                                                "metadata": {"blessed": 1, "current_model_id": model}}]}
json.dump(written, open(executor_input["outputs"]["outputFile"], "w"))
"""


def component(inputs: dict[str, str] = (), outputs: dict[str, str] = (), parameters=("exit_code",)) -> dict:
    return {
        "executorLabel": "",
        "inputDefinitions": {
            "artifacts": {key: {"artifactType": {"schemaTitle": title}} for key, title in dict(inputs).items()},
            "parameters": {key: {"type": "INT"} for key in parameters},
        },
        "outputDefinitions": {
            "artifacts": {key: {"artifactType": {"schemaTitle": title}} for key, title in dict(outputs).items()}
        },
    }


def spec(program: Path, fail: str | None = None, image: str = IMAGE) -> dict[str, Any]:
    """train -> bless; then a resolver for the latest blessing -> the model it names -> use."""
    container = {"image": image, "command": [sys.executable, str(program), "{{$}}"]}
    components = {
        "train": component(outputs={"model": "tfx.Model"}),
        "bless": component(inputs={"model": "tfx.Model"}, outputs={"blessing": "tfx.ModelBlessing"}),
        "latest-blessing": {**component(outputs={"blessing": "tfx.ModelBlessing"}, parameters=())},
        "blessed-model": component(
            inputs={"input": "tfx.ModelBlessing"}, outputs={"model": "tfx.Model"}, parameters=()
        ),
        "use": component(inputs={"baseline": "tfx.Model"}),
    }
    executors = {}
    for name, definition in components.items():
        definition["executorLabel"] = f"{name}_executor"
        executors[f"{name}_executor"] = {"container": container}
    executors["latest-blessing_executor"] = {
        "resolver": {
            "outputArtifactQueries": {
                "blessing": {
                    "filter": 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
                }
            }
        }
    }
    executors["blessed-model_executor"] = {
        "resolver": {
            "outputArtifactQueries": {
                "model": {
                    "filter": 'schema_title="tfx.Model" AND state=LIVE AND '
                    "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
                }
            }
        }
    }

    def task(name: str, artifacts: dict[str, tuple[str, str]] = (), cache: bool = True) -> dict:
        exit_code = 3 if name == fail else 0
        body: dict[str, Any] = {
            "componentRef": {"name": name},
            "taskInfo": {"name": name},
            "cachingOptions": {"enableCache": cache},
            "inputs": {
                "artifacts": {
                    key: {"taskOutputArtifact": {"producerTask": producer, "outputArtifactKey": output}}
                    for key, (producer, output) in dict(artifacts).items()
                }
            },
        }
        if components[name]["inputDefinitions"]["parameters"]:
            body["inputs"]["parameters"] = {
                "exit_code": {"runtimeValue": {"constantValue": {"intValue": str(exit_code)}}}
            }
        return body

    return {
        "pipelineSpec": {
            "pipelineInfo": {"name": "tiny"},
            "schemaVersion": "2.0.0",
            "components": components,
            "deploymentSpec": {"executors": executors},
            "root": {
                "dag": {
                    "tasks": {
                        "use": task("use", {"baseline": ("blessed-model", "model")}, cache=False),
                        "bless": task("bless", {"model": ("train", "model")}),
                        "blessed-model": task("blessed-model", {"input": ("latest-blessing", "blessing")}),
                        "latest-blessing": task("latest-blessing"),
                        "train": task("train"),
                    }
                }
            },
        },
        "runtimeConfig": {},
    }


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[LocalPipelineExecutor, Path]]:
    runtime = ContainerRuntime(tmp_path / "logs")
    runtime.add_image(IMAGE, LocalImage(workdir=tmp_path))

    def read(uri: str) -> bytes | None:
        path = Path(uri)
        return path.read_bytes() if path.is_file() else None

    executor = LocalPipelineExecutor(runtime, read, "test-project", "123456789012")
    with FakeVertexServer(pipelines_executor=executor) as server, aiplatform_configured(api_endpoint=server.base_url):
        yield executor, tmp_path


def run(executor: LocalPipelineExecutor, folder: Path, job_id: str, body: dict, **options: Any) -> Any:
    (folder / "root").mkdir(exist_ok=True)
    path = folder / f"{job_id}.json"
    path.write_text(json.dumps(body))
    job = aiplatform.PipelineJob(
        display_name=job_id, template_path=str(path), job_id=job_id, pipeline_root=str(folder / "root"), **options
    )
    job.submit(service_account=ACCOUNT)
    executor.wait(timeout=60)
    return aiplatform.PipelineJob.get(job.resource_name)


def tasks_of(job: Any) -> dict[str, Any]:
    return {task.task_name: task for task in job.task_details}


def test_tasks_wait_for_their_upstream_and_get_the_executor_input_vertex_builds(cloud, tmp_path: Path) -> None:
    executor, folder = cloud
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)

    job = run(executor, folder, "first", spec(program))

    assert job.state == aiplatform.gapic.PipelineState.PIPELINE_STATE_SUCCEEDED
    tasks = tasks_of(job)
    assert set(tasks) == {"tiny", "latest-blessing", "train", "bless", "blessed-model", "use"}
    for task, upstream in {"bless": "train", "blessed-model": "latest-blessing", "use": "blessed-model"}.items():
        assert tasks[task].start_time >= tasks[upstream].end_time, (task, upstream)
    assert {name: task.state.name for name, task in tasks.items() if name != "tiny"} == {
        "latest-blessing": "SUCCEEDED",
        "train": "SUCCEEDED",
        "bless": "SUCCEEDED",
        "blessed-model": "SUCCEEDED",
        "use": "SUCCEEDED",
    }
    (model,) = tasks["train"].outputs["model"].artifacts
    task_root = f"{folder}/root/123456789012/first/train_{tasks['train'].task_id}"
    assert model.uri == f"{task_root}/model"
    received = json.loads(Path(task_root, "executor_input.json").read_text())
    assert received["inputs"]["parameters"] == {"exit_code": {"intValue": "0"}}
    assert received["outputs"]["outputFile"] == f"{task_root}/executor_output.json"
    assert received["outputs"]["artifacts"]["model"]["artifacts"][0]["name"] == model.name
    bless_root = f"{folder}/root/123456789012/first/bless_{tasks['bless'].task_id}"
    bless_input = json.loads(Path(bless_root, "executor_input.json").read_text())
    passed = bless_input["inputs"]["artifacts"]["model"]["artifacts"][0]
    assert (passed["uri"], passed["metadata"]["blessed"]) == (model.uri, 1)
    # Nothing was blessed before this run: the resolvers found nothing.
    assert not tasks["latest-blessing"].outputs and not tasks["blessed-model"].outputs


def test_the_cache_and_the_resolvers_see_earlier_runs(cloud, tmp_path: Path) -> None:
    executor, folder = cloud
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    first = tasks_of(run(executor, folder, "first", spec(program)))

    second = tasks_of(run(executor, folder, "second", spec(program)))

    assert second["train"].state.name == "SKIPPED"  # same inputs: the earlier outputs are reused
    assert second["train"].outputs["model"].artifacts[0].name == first["train"].outputs["model"].artifacts[0].name
    (blessing,) = second["latest-blessing"].outputs["blessing"].artifacts
    assert blessing.name == first["bless"].outputs["blessing"].artifacts[0].name
    (baseline,) = second["blessed-model"].outputs["model"].artifacts
    assert baseline.name == blessing.metadata["current_model_id"]
    assert second["use"].state.name == "SUCCEEDED"  # caching off for this task

    third = tasks_of(run(executor, folder, "third", spec(program), enable_caching=False))
    assert third["train"].state.name == "SUCCEEDED"
    assert third["train"].outputs["model"].artifacts[0].name != first["train"].outputs["model"].artifacts[0].name


def test_a_failing_task_fails_the_job_and_nothing_after_it_runs(cloud, tmp_path: Path) -> None:
    executor, folder = cloud
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)

    job = run(executor, folder, "broken", spec(program, fail="train"))

    assert job.state == aiplatform.gapic.PipelineState.PIPELINE_STATE_FAILED
    assert "The failed tasks are: [train]" in job.gca_resource.error.message
    tasks = tasks_of(job)
    assert tasks["train"].state.name == "FAILED"
    assert "exited with a non-zero status of 3" in tasks["train"].error.message
    log = tasks["train"].error.message.rsplit("check the logs: ", 1)[1]
    assert "failing on purpose" in Path(log).read_text()
    assert "bless" not in tasks  # it waits for train
    assert not tasks["train"].outputs


def test_an_image_nobody_pushed_fails_like_a_pull(cloud, tmp_path: Path) -> None:
    executor, folder = cloud
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)

    job = run(executor, folder, "no-image", spec(program, image=IMAGE.replace("ab", "cd")))

    assert "failed to pull image" in tasks_of(job)["train"].error.message


def test_task_order_follows_data_and_explicit_dependencies() -> None:
    body = spec(Path("p.py"))["pipelineSpec"]
    assert task_order(body) == ["latest-blessing", "train", "bless", "blessed-model", "use"]
