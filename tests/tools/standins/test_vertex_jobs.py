"""The Vertex AI Training stand-in through the real clients: gapic over gRPC, the SDK over REST, TFX."""

from __future__ import annotations

import copy
import json
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import aiplatform
from google.cloud.aiplatform import gapic
from google.cloud.aiplatform_v1.services.job_service.transports.grpc import JobServiceGrpcTransport
from google.rpc import error_details_pb2

from tools.standins.containers import ContainerRuntime, ContainerSpec, LocalImage, pipeline_image
from tools.standins.fixtures import aiplatform_configured
from tools.standins.vertex_jobs import CustomJobService, CustomJobsSurface, serve_grpc
from tools.standins.vertex_server import FakeVertexServer

PROJECT = "test-project"
PROJECT_NUMBER = "123456789012"
PARENT = f"projects/{PROJECT}/locations/us-central1"
TRAINER_SA = "trainer@test-project.iam.gserviceaccount.com"
JOB_NAME = re.compile(rf"projects/{PROJECT_NUMBER}/locations/us-central1/customJobs/[0-9]+")
FINAL_STATES = {
    gapic.JobState.JOB_STATE_SUCCEEDED,
    gapic.JobState.JOB_STATE_FAILED,
    gapic.JobState.JOB_STATE_CANCELLED,
}
# A TFX executor that does nothing, so TFX's own container command runs to the end quickly.
NO_OP_EXECUTOR = "tfx.dsl.compiler.testdata.optional_and_allow_empty_pipeline.Executor"


@dataclass(frozen=True)
class StagedImage:
    reference: str
    local: LocalImage


@pytest.fixture(scope="module")
def staged_image(tmp_path_factory: pytest.TempPathFactory) -> StagedImage:
    digest, local = pipeline_image(tmp_path_factory.mktemp("pipeline-image"))
    return StagedImage(f"us-central1-docker.pkg.dev/{PROJECT}/pipelines/my-pipeline@{digest}", local)


@pytest.fixture(scope="module")
def image(staged_image: StagedImage) -> str:
    return staged_image.reference


def training_runtime(staged_image: StagedImage, log_dir: Path) -> ContainerRuntime:
    """The runtime Vertex AI Training runs job containers with: it knows the pipeline image only."""
    runtime = ContainerRuntime(log_dir)
    runtime.add_image(staged_image.reference, staged_image.local)
    return runtime


@pytest.fixture(scope="module")
def jobs(staged_image: StagedImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CustomJobService]:
    service = CustomJobService(training_runtime(staged_image, tmp_path_factory.mktemp("job-logs")))
    yield service
    service.close()


@pytest.fixture(scope="module")
def grpc_target(jobs: CustomJobService) -> Iterator[str]:
    with serve_grpc(jobs) as server:
        yield server.target


@pytest.fixture
def client(grpc_target: str) -> gapic.JobServiceClient:
    return gapic.JobServiceClient(transport=JobServiceGrpcTransport(channel=grpc.insecure_channel(grpc_target)))


@pytest.fixture(scope="module")
def rest_server(jobs: CustomJobService) -> Iterator[FakeVertexServer]:
    with FakeVertexServer(surfaces=[CustomJobsSurface(jobs)]) as server:
        yield server


@pytest.fixture
def sdk_over_rest(rest_server: FakeVertexServer) -> Iterator[None]:
    with aiplatform_configured(api_endpoint=rest_server.base_url, staging_bucket="gs://test-staging-bucket"):
        yield


def custom_job(image: str, code: str, **overrides: Any) -> dict[str, Any]:
    """A CustomJob dict whose primary replica runs ``python -c code`` in ``image``."""
    job: dict[str, Any] = {
        "display_name": "standin-job",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "replica_count": 1,
                    "container_spec": {"image_uri": image, "command": ["python", "-c", code]},
                }
            ],
        },
    }
    job.update(overrides)
    return job


def wait_until(client: gapic.JobServiceClient, name: str, done: Callable[[Any], bool], timeout: float = 60) -> Any:
    """Polls GetCustomJob through the client until ``done(job)``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_custom_job(name=name)
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} is still {job.state.name}")
        time.sleep(0.05)


def wait_final(client: gapic.JobServiceClient, name: str) -> Any:
    return wait_until(client, name, lambda job: job.state in FINAL_STATES)


# -- gRPC, as TFX's Vertex Trainer calls it -----------------------------------------------------------


def test_job_runs_its_container_in_the_pipeline_image_to_success(
    client: gapic.JobServiceClient, jobs: CustomJobService, image: str
) -> None:
    code = (
        "import json, os; import pipeline.training; "
        "print('task', json.loads(os.environ['CLUSTER_SPEC'])['task']); "
        "print('tf_config', 'TF_CONFIG' in os.environ, 'model_dir', 'AIP_MODEL_DIR' in os.environ); "
        "env = os.environ; print('job', env['CLOUD_ML_JOB_ID'], env['CLOUD_ML_PROJECT_ID'], env['CLOUD_ML_REGION']); "
        "print('greeting', os.environ['GREETING'], 'keras', os.environ['TF_USE_LEGACY_KERAS'])"
    )
    job = custom_job(image, code, labels={"team": "ml"})
    pool = job["job_spec"]["worker_pool_specs"][0]
    pool["container_spec"]["env"] = [{"name": "GREETING", "value": "hello"}]
    job["job_spec"]["service_account"] = TRAINER_SA

    created = client.create_custom_job(parent=PARENT, custom_job=job)

    assert JOB_NAME.fullmatch(created.name)
    assert created.state == gapic.JobState.JOB_STATE_QUEUED
    final = wait_final(client, created.name)
    assert final.state == gapic.JobState.JOB_STATE_SUCCEEDED, final.error.message
    assert created.create_time <= final.start_time <= final.end_time
    view = jobs.job(created.name)
    job_id = created.name.rsplit("/", 1)[1]
    assert (view.display_name, view.labels, view.run_as) == ("standin-job", {"team": "ml"}, TRAINER_SA)
    assert (view.machine_spec, view.image_uri, view.env) == (
        {"machine_type": "n1-standard-4"},
        image,
        {"GREETING": "hello"},
    )
    assert "task {'type': 'workerpool0', 'index': 0}" in view.log_text
    assert "tf_config False model_dir False" in view.log_text  # single replica, no base_output_directory
    assert f"job {job_id} {PROJECT_NUMBER} us-central1" in view.log_text
    assert "greeting hello keras 1" in view.log_text  # spec env and the image's Dockerfile ENV
    assert jobs.log_path(job_id) == view.log_path


def test_non_zero_exit_fails_the_job_with_the_replica_message_and_log_tail(
    client: gapic.JobServiceClient, image: str
) -> None:
    code = "import sys; print('Traceback (most recent call last):'); print('ValueError: boom'); sys.exit(3)"

    created = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, code))

    final = wait_final(client, created.name)
    assert final.state == gapic.JobState.JOB_STATE_FAILED
    assert final.error.code == 3
    message = final.error.message
    assert message.startswith(
        "The replica workerpool0-0 exited with a non-zero status of 3. Termination reason: Error."
    )
    assert "ValueError: boom" in message
    assert (
        "To find out more about why your job exited please check the logs: https://console.cloud.google.com/" in message
    )


def test_unknown_image_fails_the_job_like_a_failed_pull(client: gapic.JobServiceClient, image: str) -> None:
    missing = image.split("@")[0] + ":not-pushed"

    created = client.create_custom_job(parent=PARENT, custom_job=custom_job(missing, "pass"))

    final = wait_final(client, created.name)
    assert final.state == gapic.JobState.JOB_STATE_FAILED
    assert "unable to pull image" in final.error.message
    assert missing in final.error.message
    assert not final.start_time


def test_missing_program_fails_the_job_as_a_container_start_error(client: gapic.JobServiceClient, image: str) -> None:
    job = custom_job(image, "pass")
    _pool(job)["container_spec"]["command"] = ["no-such-program"]

    created = client.create_custom_job(parent=PARENT, custom_job=job)

    final = wait_final(client, created.name)
    assert final.state == gapic.JobState.JOB_STATE_FAILED
    assert "exited with a non-zero status of 128. Termination reason: StartError." in final.error.message
    assert 'exec: "no-such-program": executable file not found in $PATH' in final.error.message


def test_distributed_job_describes_every_replica_and_runs_the_primary_one(
    client: gapic.JobServiceClient, jobs: CustomJobService, image: str
) -> None:
    code = "import os; print('tf_config', os.environ['TF_CONFIG'][:1])"
    job = custom_job(image, code)
    workers = copy.deepcopy(_pool(job))
    workers["replica_count"] = 2
    job["job_spec"]["worker_pool_specs"].append(workers)

    created = client.create_custom_job(parent=PARENT, custom_job=job)

    assert wait_final(client, created.name).state == gapic.JobState.JOB_STATE_SUCCEEDED
    view = jobs.job(created.name)
    cluster_spec, tf_config = (json.loads(view.container_env[key]) for key in ("CLUSTER_SPEC", "TF_CONFIG"))
    assert [len(cluster_spec["cluster"][pool]) for pool in ("workerpool0", "workerpool1")] == [1, 2]
    assert {role: len(hosts) for role, hosts in tf_config["cluster"].items()} == {"chief": 1, "worker": 2}
    assert (cluster_spec["task"], tf_config["task"]) == (
        {"type": "workerpool0", "index": 0},
        {"type": "chief", "index": 0},
    )
    assert view.log_text.count("tf_config {") == 1  # only workerpool0-0 ran


def test_cancel_terminates_the_running_container(
    client: gapic.JobServiceClient, jobs: CustomJobService, image: str
) -> None:
    code = "import time; print('started', flush=True); time.sleep(120)"
    created = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, code))
    wait_until(client, created.name, lambda job: job.state == gapic.JobState.JOB_STATE_RUNNING)

    client.cancel_custom_job(name=created.name)

    final = wait_final(client, created.name)
    assert final.state == gapic.JobState.JOB_STATE_CANCELLED
    assert final.error.code == 1
    view = jobs.job(created.name)
    assert view.exit_code == 128 + 15  # SIGTERM
    with pytest.raises(exceptions.FailedPrecondition):
        client.cancel_custom_job(name=created.name)


def test_list_filters_and_pages_and_delete_removes_a_finished_job(client: gapic.JobServiceClient, image: str) -> None:
    first = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, "pass", display_name="list-a"))
    second = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, "pass", display_name="list-b"))
    running = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, "import time; time.sleep(60)"))
    wait_final(client, first.name)
    wait_final(client, second.name)

    filtered = client.list_custom_jobs(request={"parent": PARENT, "filter": 'display_name="list-a"'})
    paged = client.list_custom_jobs(request={"parent": PARENT, "page_size": 1})

    assert [job.name for job in filtered] == [first.name]
    assert {first.name, second.name, running.name} <= {job.name for job in paged}
    client.delete_custom_job(name=first.name).result(timeout=10)
    with pytest.raises(exceptions.NotFound):
        client.get_custom_job(name=first.name)
    with pytest.raises(exceptions.FailedPrecondition):
        client.delete_custom_job(name=running.name)
    client.cancel_custom_job(name=running.name)
    wait_final(client, running.name)


def _without_pools(job: dict[str, Any]) -> None:
    job["job_spec"]["worker_pool_specs"] = []


def _pool(job: dict[str, Any]) -> dict[str, Any]:
    return job["job_spec"]["worker_pool_specs"][0]


INVALID_JOBS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("no display name", lambda job: job.pop("display_name"), "display_name", "Required field is not set."),
    ("no worker pools", _without_pools, "job_spec.worker_pool_specs", "Required field is not set."),
    (
        "no machine type",
        lambda job: _pool(job)["machine_spec"].pop("machine_type"),
        "job_spec.worker_pool_specs[0].machine_spec.machine_type",
        "Required field is not set.",
    ),
    (
        "no replicas",
        lambda job: _pool(job).update(replica_count=0),
        "job_spec.worker_pool_specs[0].replica_count",
        "Required field is not set.",
    ),
    (
        "no image",
        lambda job: _pool(job)["container_spec"].pop("image_uri"),
        "job_spec.worker_pool_specs[0].container_spec.image_uri",
        "Required field is not set.",
    ),
    (
        "accelerator without count",
        lambda job: _pool(job)["machine_spec"].update(accelerator_type="NVIDIA_TESLA_T4"),
        "job_spec.worker_pool_specs[0].machine_spec.accelerator_type",
        "Both `accelerator_type` and `accelerator_count` should be specified or none.",
    ),
    ("upper-case label", lambda job: job.update(labels={"Team": "ml"}), "labels", "Label keys and values can only"),
    (
        "user account",
        lambda job: job["job_spec"].update(service_account="someone@example.com"),
        "job_spec.service_account",
        "is not a valid service account email",
    ),
    (
        "network by project ID",
        lambda job: job["job_spec"].update(network="projects/test-project/global/networks/default"),
        "job_spec.network",
        "projects/{project_number}/global/networks/{network}",
    ),
    (
        "duplicate env",
        lambda job: _pool(job)["container_spec"].update(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "job_spec.worker_pool_specs[0].container_spec.env",
        "EnvVar names must be unique.",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "text"), [case[1:] for case in INVALID_JOBS], ids=[c[0] for c in INVALID_JOBS]
)
def test_invalid_jobs_are_refused_with_the_field_violation(
    client: gapic.JobServiceClient,
    jobs: CustomJobService,
    image: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
    text: str,
) -> None:
    job = custom_job(image, "pass")
    mutate(job)
    before = len(jobs.jobs())

    with pytest.raises(exceptions.InvalidArgument) as refused:
        client.create_custom_job(parent=PARENT, custom_job=job)

    assert refused.value.message.startswith("List of found errors:\t1.Field: ")
    assert f"Field: {field}; Message: " in refused.value.message
    assert text in refused.value.message
    violations = [
        v for d in refused.value.details if isinstance(d, error_details_pb2.BadRequest) for v in d.field_violations
    ]
    assert field in [violation.field for violation in violations]
    assert len(jobs.jobs()) == before


def test_accelerator_the_machine_cannot_take_is_refused(client: gapic.JobServiceClient, image: str) -> None:
    job = custom_job(image, "pass")
    _pool(job)["machine_spec"].update(accelerator_type="NVIDIA_L4", accelerator_count=1)

    with pytest.raises(exceptions.InvalidArgument, match='Accelerator "NVIDIA_L4" is not supported for machine type'):
        client.create_custom_job(parent=PARENT, custom_job=job)


# -- REST, as the aiplatform SDK calls it: the same store -------------------------------------------------


@pytest.mark.usefixtures("sdk_over_rest")
def test_sdk_over_rest_sees_the_job_created_over_grpc(client: gapic.JobServiceClient, image: str) -> None:
    created = client.create_custom_job(parent=PARENT, custom_job=custom_job(image, "pass", labels={"via": "grpc"}))
    wait_final(client, created.name)

    fetched = aiplatform.CustomJob.get(created.name)

    assert fetched.resource_name == created.name
    assert fetched.state == gapic.JobState.JOB_STATE_SUCCEEDED
    assert (fetched.display_name, fetched.labels) == ("standin-job", {"via": "grpc"})
    assert created.name in [job.resource_name for job in aiplatform.CustomJob.list(filter='labels.via="grpc"')]
    fetched.delete()  # a long-running operation over REST
    with pytest.raises(exceptions.NotFound):
        client.get_custom_job(name=created.name)


@pytest.mark.usefixtures("sdk_over_rest")
def test_job_submitted_by_the_sdk_over_rest_runs_and_grpc_reads_it(
    client: gapic.JobServiceClient, jobs: CustomJobService, image: str
) -> None:
    pool = _pool(custom_job(image, "import os; print('model dir', os.environ['AIP_MODEL_DIR'])"))
    job = aiplatform.CustomJob(
        display_name="sdk-job",
        worker_pool_specs=[pool],
        base_output_dir="gs://test-staging-bucket/outputs/run-1",
        labels={"via": "rest"},
    )

    job.submit(service_account=TRAINER_SA)

    final = wait_final(client, job.resource_name)
    assert final.state == gapic.JobState.JOB_STATE_SUCCEEDED, final.error.message
    view = jobs.job(job.resource_name)
    assert (view.display_name, view.labels, view.service_account) == ("sdk-job", {"via": "rest"}, TRAINER_SA)
    assert view.container_env["AIP_MODEL_DIR"] == "gs://test-staging-bucket/outputs/run-1/model/"
    assert view.container_env["AIP_CHECKPOINT_DIR"] == "gs://test-staging-bucket/outputs/run-1/checkpoints/"
    assert "model dir gs://test-staging-bucket/outputs/run-1/model/" in view.log_text


@pytest.mark.usefixtures("sdk_over_rest")
def test_sdk_cancel_over_rest_cancels_the_running_job(client: gapic.JobServiceClient, image: str) -> None:
    job = aiplatform.CustomJob(
        display_name="to-cancel", worker_pool_specs=[_pool(custom_job(image, "import time; time.sleep(120)"))]
    )
    job.submit()
    wait_until(client, job.resource_name, lambda found: found.state == gapic.JobState.JOB_STATE_RUNNING)

    job.cancel()

    assert wait_final(client, job.resource_name).state == gapic.JobState.JOB_STATE_CANCELLED


@pytest.mark.usefixtures("sdk_over_rest")
def test_sdk_over_rest_is_refused_with_the_field_violation(image: str) -> None:
    pool = _pool(custom_job(image, "pass"))
    pool["machine_spec"] = {}
    job = aiplatform.CustomJob(display_name="invalid", worker_pool_specs=[pool])

    # Over REST api_core maps HTTP 400 to BadRequest (InvalidArgument's base class); the body says INVALID_ARGUMENT.
    with pytest.raises(
        exceptions.BadRequest, match=re.escape("worker_pool_specs[0].machine_spec.machine_type")
    ) as refused:
        job.submit()

    assert refused.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert refused.value.details[0]["fieldViolations"][0]["description"] == "Required field is not set."


# -- TFX's own client, with the project's Trainer configuration --------------------------------------------

# What a Trainer step's container does on Vertex AI Pipelines: TFX's own VertexJobClient, unmodified, with
# the project's Trainer configuration, against the hard-coded us-central1-aiplatform.googleapis.com.
LAUNCH_TRAINING_WITH_TFX = textwrap.dedent(
    """
    import os, time
    from google.api_core import exceptions
    from tfx.extensions.google_cloud_ai_platform import training_clients
    from tfx.v1.extensions import google_cloud_ai_platform as vertex
    from pipeline.config import VertexRunnerConfig
    from pipeline.training import vertex_trainer_config

    def launch(**training):
        runner = VertexRunnerConfig(
            kind="vertex", project="test-project", region="us-central1", pipeline_root="gs://test-bucket/root",
            service_account=os.environ["PIPELINE_SA"], image=os.environ["PIPELINE_IMAGE"],
            dataflow={"service_account": "dataflow@test-project.iam.gserviceaccount.com"}, training=training,
        )
        config = vertex_trainer_config(runner, "my-pipeline")
        job_args = dict(config[vertex.TRAINING_ARGS_KEY])
        project = job_args.pop("project")  # as tfx...google_cloud_ai_platform.runner.start_cloud_training does
        client = training_clients.VertexJobClient(config[vertex.VERTEX_REGION_KEY])
        job = client.create_training_job({}, {}, {}, os.environ["EXECUTOR"], job_args, None, None)
        client.launch_job(project, job)
        return client

    try:
        launch(machine_type="n1-standard-4", accelerator_type="NVIDIA_L4", accelerator_count=1)
    except exceptions.InvalidArgument as refused:
        print("refused:", refused.message, flush=True)
    client = launch()
    response = client.get_job()
    while client.get_job_state(response) not in client.JOB_STATES_COMPLETED:
        time.sleep(0.2)
        response = client.get_job()
    print("final state", response.state.name, client.get_job_name(), flush=True)
    """
)


def test_tfx_trainer_client_reaches_the_service_at_its_real_endpoint_through_the_rehearsal_network(
    staged_image: StagedImage, tmp_path: Path
) -> None:
    from tools.standins.network import GoogleCloudNetwork
    from tools.standins.proxy import ProxiedConnection

    host = "us-central1-aiplatform.googleapis.com"
    pipeline_sa = "pipeline@test-project.iam.gserviceaccount.com"
    with GoogleCloudNetwork(tmp_path / "net", project_numbers={PROJECT: PROJECT_NUMBER}) as network:
        training = ContainerRuntime(tmp_path / "job-logs", cloud_env=network.cloud_env(PROJECT))
        training.add_image(staged_image.reference, staged_image.local)
        jobs = CustomJobService(training, identify=network.tokens.identity_from_header)
        with serve_grpc(jobs) as server:
            network.route(host, grpc=("127.0.0.1", server.port))
            pipelines = ContainerRuntime(tmp_path / "step-logs", cloud_env=network.cloud_env(PROJECT))
            pipelines.add_image(staged_image.reference, staged_image.local)
            env = {"PIPELINE_SA": pipeline_sa, "PIPELINE_IMAGE": staged_image.reference, "EXECUTOR": NO_OP_EXECUTOR}
            step = ContainerSpec(staged_image.reference, ("python", "-c", LAUNCH_TRAINING_WITH_TFX), env=env)

            exit_code, container = pipelines.run(step, name="trainer-step", service_account=pipeline_sa, timeout=180)

            assert exit_code == 0, container.log_tail()
            assert set(network.proxy.connections) == {ProxiedConnection(host, "h2")}
            unauthenticated = gapic.JobServiceClient(
                transport=JobServiceGrpcTransport(channel=grpc.insecure_channel(server.target))
            )
            with pytest.raises(exceptions.Unauthenticated):
                unauthenticated.list_custom_jobs(parent=PARENT)
        jobs.close()
    (view,) = jobs.jobs()
    assert 'refused: Accelerator "NVIDIA_L4" is not supported for machine type "n1-standard-4".' in container.log_tail()
    assert f"final state JOB_STATE_SUCCEEDED {view.name}" in container.log_tail()
    assert (view.created_by, view.run_as) == (pipeline_sa, pipeline_sa)
    assert view.display_name == "my-pipeline-trainer"
    assert view.command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
    assert (view.image_uri, view.machine_spec) == (staged_image.reference, {"machine_type": "n1-standard-4"})
    assert view.env == {"TF_USE_LEGACY_KERAS": "1"}
    assert view.labels["tfx_version"] == "1-16-0"  # TFX's own labels, next to the run's
    assert view.labels["pipeline"] == "my-pipeline"
    assert "Starting executor" in view.log_text
