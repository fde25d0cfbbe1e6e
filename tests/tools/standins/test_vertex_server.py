"""Drive the fake Vertex AI server through the real google-cloud-aiplatform SDK.

Nothing in the SDK is patched; the only client configuration changed is the
``PipelineJob.wait()`` poll interval (``fast_vertex_polling`` fixture).
No ``from __future__ import annotations`` here: kfp reads the component's
annotations at runtime in ``test_kfp_compiled_pipeline_round_trips``.
"""

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions
from google.cloud import aiplatform
from google.cloud.aiplatform import initializer
from google.cloud.aiplatform_v1.types import PipelineState, PipelineTaskDetail
from google.cloud.aiplatform_v1.types import Schedule as GcaSchedule

from tools.standins.fixtures import (
    DEFAULT_PROJECT_NUMBER,
    VertexStandins,
    vertex_standins,
    write_pipeline_spec,
)
from tools.standins.vertex_server import FakeVertexServer

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE_ACCOUNT = "pipelines@test-project.iam.gserviceaccount.com"
NETWORK = f"projects/{DEFAULT_PROJECT_NUMBER}/global/networks/ml-vpc"
JOB_PATH = r"/pipelineJobs/[^/:]+$"


@pytest.fixture
def spec_path(tmp_path: Path) -> str:
    return write_pipeline_spec(tmp_path / "pipeline.json")


def make_job(spec_path: str, display_name: str = "tiny-run", **kwargs: Any) -> aiplatform.PipelineJob:
    return aiplatform.PipelineJob(display_name=display_name, template_path=spec_path, **kwargs)


# -- create: what the SDK sends -----------------------------------------------


def test_submit_sends_job_configuration(vertex_env: VertexStandins, spec_path: str) -> None:
    job = make_job(
        spec_path,
        job_id="tiny-run-1",
        parameter_values={"epochs": 3, "learning_rate": 0.5},
        labels={"team": "ml", "env": "test"},
        enable_caching=False,
    )
    job.submit(service_account=SERVICE_ACCOUNT, network=NETWORK)

    sent = vertex_env.server.job("tiny-run-1")
    assert sent.create_query["pipelineJobId"] == "tiny-run-1"
    assert sent.display_name == "tiny-run"
    assert sent.service_account == SERVICE_ACCOUNT
    assert sent.network == NETWORK
    assert sent.labels == {"team": "ml", "env": "test"}
    assert sent.gcs_output_directory == vertex_env.staging_bucket
    assert sent.parameter_values == {"epochs": 3, "learning_rate": 0.5}
    assert sent.enable_caching is False
    assert sent.pipeline_spec["pipelineInfo"]["name"] == "tiny-pipeline"

    (create,) = vertex_env.server.find_requests("POST", r"/pipelineJobs$")
    assert create.path == "/v1/projects/test-project/locations/us-central1/pipelineJobs"
    assert job.resource_name == f"projects/{DEFAULT_PROJECT_NUMBER}/locations/us-central1/pipelineJobs/" "tiny-run-1"
    assert job.gca_resource.state == PipelineState.PIPELINE_STATE_PENDING


@pytest.mark.parametrize(
    ("enable_caching", "expected"),
    [
        (True, {"train": True, "evaluate": True}),
        (False, {"train": False, "evaluate": False}),
        (None, {"train": True, "evaluate": False}),  # compile-time settings untouched
    ],
)
def test_enable_caching_is_written_into_every_task(
    vertex_env: VertexStandins,
    tmp_path: Path,
    enable_caching: bool | None,
    expected: dict[str, bool],
) -> None:
    path = write_pipeline_spec(tmp_path / "p.json", caching={"train": True, "evaluate": False})
    job = make_job(path, enable_caching=enable_caching)
    job.submit()

    assert vertex_env.server.job(job.job_id).task_caching == expected


def test_pipeline_root_overrides_staging_bucket(vertex_env: VertexStandins, spec_path: str) -> None:
    # Pre-created: a missing bucket makes submit() call Resource Manager (60 s offline).
    vertex_env.create_bucket("other-root-bucket")

    job = make_job(spec_path, pipeline_root="gs://other-root-bucket/runs")
    job.submit()

    assert vertex_env.server.job(job.job_id).gcs_output_directory == "gs://other-root-bucket/runs"
    assert sorted(b.name for b in vertex_env.storage_client().list_buckets()) == [
        "other-root-bucket",
        "test-staging-bucket",
    ]


# -- state progression --------------------------------------------------------


def test_each_get_advances_the_scripted_state(vertex_env: VertexStandins, spec_path: str) -> None:
    vertex_env.server.script_job(["PENDING", "RUNNING", "SUCCEEDED"])
    job = make_job(spec_path)
    job.submit()

    observed = [job.gca_resource.state] + [job.state for _ in range(3)]

    assert observed == [
        PipelineState.PIPELINE_STATE_PENDING,
        PipelineState.PIPELINE_STATE_RUNNING,
        PipelineState.PIPELINE_STATE_SUCCEEDED,
        PipelineState.PIPELINE_STATE_SUCCEEDED,
    ]
    assert vertex_env.server.job(job.job_id).get_count == 3


def test_wait_polls_until_succeeded(vertex_env: VertexStandins, spec_path: str, fast_vertex_polling: float) -> None:
    vertex_env.server.script_job(["PENDING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"])
    job = make_job(spec_path)
    job.submit()

    job.wait()

    assert vertex_env.server.job(job.job_id).get_count == 4
    resource = job.gca_resource
    assert resource.state == PipelineState.PIPELINE_STATE_SUCCEEDED
    assert resource.create_time <= resource.start_time <= resource.end_time <= resource.update_time
    tasks = resource.job_detail.task_details
    assert [t.task_name for t in tasks] == ["tiny-pipeline", "train", "evaluate"]
    assert {t.state for t in tasks} == {PipelineTaskDetail.State.SUCCEEDED}
    assert resource.job_detail.pipeline_run_context.name.endswith(f"/contexts/{job.job_id}")


def test_wait_raises_with_the_job_error(vertex_env: VertexStandins, spec_path: str, fast_vertex_polling: float) -> None:
    vertex_env.server.script_job(
        ["RUNNING", "FAILED"],
        error={"code": 9, "message": "Evaluator did not bless the model"},
    )
    job = make_job(spec_path)
    job.submit()

    with pytest.raises(RuntimeError, match="did not bless"):
        job.wait()

    assert job.has_failed
    assert job.gca_resource.error.code == 9
    assert job.gca_resource.end_time is not None
    failed = [
        t.task_name for t in job.gca_resource.job_detail.task_details if t.state == PipelineTaskDetail.State.FAILED
    ]
    assert failed == ["tiny-pipeline", "evaluate"]


def test_forced_failure_gets_a_vertex_style_error(vertex_env: VertexStandins, spec_path: str) -> None:
    vertex_env.server.script_job(["RUNNING"])  # runs until told otherwise
    job = make_job(spec_path)
    job.submit()
    assert [job.state, job.state] == [PipelineState.PIPELINE_STATE_RUNNING] * 2

    vertex_env.server.set_job_state(job.job_id, "FAILED")

    assert job.state == PipelineState.PIPELINE_STATE_FAILED
    assert job.gca_resource.error.code == 9
    assert "The failed tasks are: [evaluate]" in job.gca_resource.error.message


def test_scripted_task_details_reach_the_sdk(
    vertex_env: VertexStandins, spec_path: str, fast_vertex_polling: float
) -> None:
    evaluator = {
        "taskName": "Evaluator",
        "state": "SUCCEEDED",
        "outputs": {
            "evaluation": {
                "artifacts": [
                    {
                        "uri": "gs://test-staging-bucket/Evaluator/evaluation",
                        "schemaTitle": "tfx.ModelEvaluation",
                        "metadata": {"accuracy": 0.93, "blessed": True},
                    }
                ]
            }
        },
    }
    vertex_env.server.script_job(
        ["RUNNING", "SUCCEEDED"],
        task_details=[{"taskName": "Trainer", "state": "SUCCEEDED"}, evaluator],
    )
    job = make_job(spec_path)
    job.submit()
    job.wait()

    details = {task.task_name: task for task in job.task_details}
    assert list(details) == ["Trainer", "Evaluator"]
    assert details["Evaluator"].task_id == 2
    artifact = details["Evaluator"].outputs["evaluation"].artifacts[0]
    assert artifact.uri == "gs://test-staging-bucket/Evaluator/evaluation"
    assert artifact.metadata["accuracy"] == pytest.approx(0.93)
    assert artifact.metadata["blessed"] is True


# -- transient errors ---------------------------------------------------------


def test_getter_retries_503_and_429(vertex_env: VertexStandins, spec_path: str) -> None:
    server = vertex_env.server
    job = make_job(spec_path)
    job.submit()
    unavailable = server.fail_next("GET", JOB_PATH, 503)
    throttled = server.fail_next("GET", JOB_PATH, 429)

    fetched = aiplatform.PipelineJob.get(job.resource_name)

    assert fetched.resource_name == job.resource_name
    assert (unavailable.hits, throttled.hits) == (1, 1)
    assert [r.status for r in server.find_requests("GET", JOB_PATH)] == [503, 429, 200]
    assert server.job(job.job_id).get_count == 1  # rejected GETs do not advance the job


def test_create_is_not_retried_but_can_be_resubmitted(vertex_env: VertexStandins, spec_path: str) -> None:
    server = vertex_env.server
    fault = server.fail_next("POST", r"/pipelineJobs$", 503)
    job = make_job(spec_path, job_id="retry-me")

    with pytest.raises(exceptions.ServiceUnavailable):
        job.submit()
    assert fault.remaining == 0
    assert server.jobs() == []

    job.submit()
    assert [r.status for r in server.find_requests("POST", r"/pipelineJobs$")] == [
        503,
        200,
    ]
    assert server.job("retry-me").state == "PIPELINE_STATE_PENDING"


# -- cancel and list ----------------------------------------------------------


def test_cancel_moves_job_through_cancelling_to_cancelled(
    vertex_env: VertexStandins, spec_path: str, fast_vertex_polling: float
) -> None:
    vertex_env.server.script_job(["PENDING", "RUNNING"])
    job = make_job(spec_path)
    job.submit()
    assert job.state == PipelineState.PIPELINE_STATE_RUNNING

    job.cancel()

    assert job.state == PipelineState.PIPELINE_STATE_CANCELLING
    # SDK 1.70 treats only FAILED as an error state: a cancelled job waits fine.
    job.wait()
    assert job.gca_resource.state == PipelineState.PIPELINE_STATE_CANCELLED
    assert job.gca_resource.error.code == 1
    assert job.gca_resource.end_time is not None
    (cancel,) = vertex_env.server.find_requests("POST", r":cancel$")
    assert cancel.path.endswith(f"/pipelineJobs/{job.job_id}:cancel")

    with pytest.raises(exceptions.BadRequest, match="already in state"):
        job.cancel()


def test_list_follows_pages_and_applies_filters(vertex_env: VertexStandins, spec_path: str) -> None:
    server = vertex_env.server
    server.pipelines.default_page_size = 2
    for name in ("alpha", "beta", "gamma"):
        # Explicit IDs: generated ones are "<pipeline>-<timestamp in seconds>"
        # and collide (409 ALREADY_EXISTS) when created within one second.
        make_job(spec_path, display_name=name, job_id=f"run-{name}", labels={"run": name}).submit()

    jobs = aiplatform.PipelineJob.list()

    assert {j.gca_resource.state for j in jobs} == {PipelineState.PIPELINE_STATE_PENDING}
    assert {view.get_count for view in server.jobs()} == {0}  # listing is not a GET of the job
    assert sorted(j.display_name for j in jobs) == ["alpha", "beta", "gamma"]
    assert [r.query.get("pageToken") for r in server.find_requests("GET", r"/pipelineJobs$")] == [None, "2"]
    assert [j.display_name for j in aiplatform.PipelineJob.list(filter='display_name="beta"')] == ["beta"]
    assert [j.labels["run"] for j in aiplatform.PipelineJob.list(filter="labels.run=gamma")] == ["gamma"]

    server.fail_next("GET", r"/pipelineJobs$", 429)
    with pytest.raises(exceptions.TooManyRequests):
        aiplatform.PipelineJob.list()


# -- schedules ----------------------------------------------------------------


def test_schedule_lifecycle(vertex_env: VertexStandins, spec_path: str) -> None:
    server = vertex_env.server
    job = make_job(spec_path, labels={"team": "ml"}, parameter_values={"epochs": 5})
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name="nightly-training")
    schedule.create(
        cron="TZ=Etc/UTC 0 3 * * *",
        max_concurrent_run_count=2,
        service_account=SERVICE_ACCOUNT,
        network=NETWORK,
    )

    stored = server.schedule(schedule.resource_name)
    assert stored.state == "ACTIVE"
    assert stored.cron == "TZ=Etc/UTC 0 3 * * *"
    assert stored.max_concurrent_run_count == 2
    assert stored.request["createPipelineJobRequest"]["parent"] == "projects/test-project/locations/us-central1"
    template = stored.pipeline_job
    assert (template["serviceAccount"], template["network"]) == (
        SERVICE_ACCOUNT,
        NETWORK,
    )
    assert template["labels"] == {"team": "ml"}
    assert template["runtimeConfig"]["parameterValues"] == {"epochs": 5}

    fetched = aiplatform.PipelineJobSchedule.get(schedule.resource_name)
    assert fetched.cron == "TZ=Etc/UTC 0 3 * * *"
    schedule.update(cron="0 4 * * *", max_concurrent_run_count=3)
    assert server.schedule(schedule.resource_name).updates[-1][0] == (
        "cron",
        "maxConcurrentRunCount",
    )
    assert (fetched.cron, fetched.max_concurrent_run_count) == ("0 4 * * *", 3)

    schedule.pause()
    assert schedule.state == GcaSchedule.State.PAUSED
    with pytest.raises(RuntimeError, match="PAUSED"):
        server.trigger_schedule(schedule.resource_name)
    schedule.resume()
    assert schedule.state == GcaSchedule.State.ACTIVE

    run = server.trigger_schedule(schedule.resource_name)
    assert run.resource["scheduleName"] == schedule.resource_name
    assert run.service_account == SERVICE_ACCOUNT
    assert [j.resource_name for j in schedule.list_jobs()] == [run.name]
    assert server.schedule(schedule.resource_name).resource["startedRunCount"] == "1"
    assert [s.resource_name for s in aiplatform.PipelineJobSchedule.list()] == [schedule.resource_name]

    schedule.delete()
    with pytest.raises(exceptions.NotFound):
        aiplatform.PipelineJobSchedule.get(schedule.resource_name)


def test_schedule_delete_polls_its_operation(vertex_env: VertexStandins, spec_path: str) -> None:
    server = vertex_env.server
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=make_job(spec_path), display_name="weekly")
    schedule.create(cron="0 0 * * 0")
    server.operations.polls_until_done = 1
    server.fail_next("GET", r"/operations/\d+$", 503)

    schedule.delete()

    polls = server.find_requests("GET", r"/operations/\d+$")
    assert [p.status for p in polls] == [503, 200]
    assert polls[-1].path.startswith(f"/ui/projects/{DEFAULT_PROJECT_NUMBER}/locations/us-central1/operations/")
    (operation,) = server.operations.all()
    assert operation.done
    assert server.pipelines.schedules() == []


# -- real kfp output ----------------------------------------------------------


def test_kfp_compiled_pipeline_round_trips(
    vertex_env: VertexStandins, tmp_path: Path, fast_vertex_polling: float
) -> None:
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.10")
    def add(a: int, b: int) -> int:
        return a + b

    @dsl.pipeline(name="kfp-tiny")
    def pipeline(x: int = 1) -> None:
        add(a=add(a=x, b=2).output, b=3)

    path = tmp_path / "kfp.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    job = aiplatform.PipelineJob(display_name="kfp", template_path=str(path), parameter_values={"x": 7})
    job.submit()
    job.wait()

    sent = vertex_env.server.job(job.job_id)
    assert sent.pipeline_spec["pipelineInfo"]["name"] == "kfp-tiny"
    assert sent.task_caching == {
        "add": True,
        "add-2": True,
    }  # kfp's compile-time default
    assert sent.parameter_values == {"x": 7}
    assert job.gca_resource.state == PipelineState.PIPELINE_STATE_SUCCEEDED


# -- the server without the SDK -----------------------------------------------


def test_http_contract_and_extension_point() -> None:
    with FakeVertexServer(project_id="p-id", project_number="42") as server:
        by_id = f"{server.base_url}/v1/projects/p-id/locations/europe-west4"
        by_number = f"{server.base_url}/v1/projects/42/locations/europe-west4"
        body = {"displayName": "raw", "pipelineSpec": {"pipelineInfo": {"name": "raw"}}}

        created = requests.post(f"{by_id}/pipelineJobs?pipelineJobId=raw-job", json=body, timeout=5)
        assert created.json()["name"] == "projects/42/locations/europe-west4/pipelineJobs/raw-job"
        assert requests.get(f"{by_number}/pipelineJobs/raw-job", timeout=5).json()["state"] == "PIPELINE_STATE_RUNNING"
        assert requests.get(f"{by_id}/pipelineJobs/raw-job", timeout=5).json()["state"] == "PIPELINE_STATE_SUCCEEDED"

        duplicate = requests.post(f"{by_id}/pipelineJobs?pipelineJobId=raw-job", json=body, timeout=5)
        assert (duplicate.status_code, duplicate.json()["error"]["status"]) == (
            409,
            "ALREADY_EXISTS",
        )
        assert requests.get(f"{by_id}/pipelineJobs/nope", timeout=5).json()["error"]["status"] == "NOT_FOUND"
        unknown = requests.get(f"{by_id}/models", timeout=5)
        assert (unknown.status_code, unknown.json()["error"]["status"]) == (
            501,
            "UNIMPLEMENTED",
        )

        server.fail_next(
            "*",
            r"/models$",
            503,
            times=2,
            body={"error": {"code": 503, "message": "custom"}},
        )
        server.add_route(
            "GET",
            "projects/{project}/locations/{location}/models",
            lambda request: {"models": [], "seen": request.params},
        )
        responses = [requests.get(f"{by_id}/models", timeout=5) for _ in range(3)]
        assert [r.status_code for r in responses] == [503, 503, 200]
        assert responses[0].json()["error"]["message"] == "custom"
        assert responses[-1].json()["seen"] == {
            "project": "p-id",
            "location": "europe-west4",
        }
        assert server.requests[-1].route == "projects/{project}/locations/{location}/models"

        log = server.requests
        assert [entry.fault for entry in log[-3:]] == [True, True, False]
        assert (log[0].query, log[0].body) == ({"pipelineJobId": "raw-job"}, body)
        assert server.handler_errors == []

        server.reset()
        assert (server.requests, server.jobs()) == ([], [])


def test_concurrent_creates_are_all_recorded() -> None:
    with FakeVertexServer() as server:
        parent = "projects/test-project/locations/us-central1"
        url = f"{server.base_url}/v1/{parent}/pipelineJobs"
        body = {"pipelineSpec": {"pipelineInfo": {"name": "p"}}}

        def create(index: int) -> None:
            requests.post(f"{url}?pipelineJobId=job-{index}", json=body, timeout=10).raise_for_status()

        threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(view.job_id for view in server.jobs()) == sorted(f"job-{i}" for i in range(16))
        assert len(server.requests) == 16


def test_vertex_standins_restores_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://previous:1")
    endpoint_before = initializer.global_config.api_endpoint

    with vertex_standins() as env:
        assert os.environ["STORAGE_EMULATOR_HOST"] == env.storage_url
        assert initializer.global_config.api_endpoint == env.vertex_url
        assert env.storage_client().lookup_bucket(env.bucket) is not None
        url = env.vertex_url

    assert os.environ["STORAGE_EMULATOR_HOST"] == "http://previous:1"
    assert initializer.global_config.api_endpoint == endpoint_before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/projects", timeout=2)
