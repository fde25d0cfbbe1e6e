"""Beam's real DataflowRunner against the Dataflow stand-in, which runs the submitted pipelines here.

Wired as in the rehearsal: the submitting program runs as a container of the pipeline image (as the
TFX executor does on Vertex AI), as the pipeline's service account, with the `GoogleCloudNetwork`
environment: Beam's apitools client reaches https://dataflow.googleapis.com through the TLS proxy,
which forwards to the stand-in; staging and data go to the Cloud Storage stand-in; tokens come from
the metadata servers. The Beam args are the components' args of tests/example/golden/dev.json,
unchanged.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tools.standins.containers import ContainerRuntime, ContainerSpec, pipeline_image
from tools.standins.dataflow import DataflowServer, DataflowService
from tools.standins.network import GoogleCloudNetwork
from tools.standins.vertex_core import ApiError

PROJECT = "my-tfx-dev"
REGION = "us-central1"
BUCKET = "my-tfx-dev-pipelines"
SUBMITTER = "pipeline-runner@my-tfx-dev.iam.gserviceaccount.com"
WORKER_ACCOUNT = "tfx-dataflow@my-tfx-dev.iam.gserviceaccount.com"
IMAGE_REPOSITORY = "us-central1-docker.pkg.dev/my-tfx-dev/pipelines/my-pipeline"
UNKNOWN_IMAGE = IMAGE_REPOSITORY + "@sha256:" + "0" * 64


def beam_args(image: str, *extra: str) -> list[str]:
    """The component Beam args of tests/example/golden/dev.json."""
    return [
        "--runner=DataflowRunner",
        f"--project={PROJECT}",
        f"--region={REGION}",
        f"--temp_location=gs://{BUCKET}/my-pipeline/dataflow/tmp",
        f"--staging_location=gs://{BUCKET}/my-pipeline/dataflow/staging",
        f"--sdk_container_image={image}",
        f"--service_account_email={WORKER_ACCOUNT}",
        "--max_num_workers=4",
        "--machine_type=n1-standard-4",
        "--disk_size_gb=50",
        "--subnetwork=regions/us-central1/subnetworks/dataflow",
        "--no_use_public_ips",
        "--labels=app=my-pipeline",
        "--labels=env=dev",
        *extra,
    ]


# The submitting program: builds one of three small pipelines and waits as TFX's executors do (or cancels).
SUBMIT_PROGRAM = """
import json, os, time
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

spec = json.loads(os.environ["SUBMISSION"])
pipeline = beam.Pipeline(options=PipelineOptions(spec["args"]))
if spec["kind"] == "sleep":
    pipeline | "Seconds" >> beam.Create([120]) | "Sleep" >> beam.Map(time.sleep)
else:
    lines = pipeline | "ReadCsv" >> beam.io.ReadFromText(spec["source"], skip_header_lines=spec["skip"])
if spec["kind"] == "csv_to_tfrecord":
    records = lines | "Encode" >> beam.Map(str.encode)
    records | "Write" >> beam.io.WriteToTFRecord(spec["target"], file_name_suffix=".tfrecord")
elif spec["kind"] == "parse_ints":
    lines | "ParseInt" >> beam.Map(int)
result = pipeline.run()
print("SUBMITTED JOB", result.job_id(), flush=True)
if spec["kind"] == "sleep":
    while str(result.state) != "RUNNING":
        time.sleep(0.5)
    time.sleep(3)  # the worker is in the DoFn by now
    print("CANCEL ->", result.cancel(), flush=True)
result.wait_until_finish()
print("FINAL STATE", result.state, flush=True)
"""

# TFX's StatisticsGen executor over a two-split Examples artifact it first writes to gs:// with TensorFlow.
STATISTICS_GEN_PROGRAM = """
import json, os
import tensorflow as tf
from tfx.components.statistics_gen.executor import Executor
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.types import standard_artifacts

spec = json.loads(os.environ["SUBMISSION"])
root = spec["root"]
for split, rows in (("train", [(1.5, 2.0), (3.0, 0.0), (7.2, 5.0)]), ("eval", [(2.0, 1.0)])):
    path = f"{root}/examples/Split-{split}/data_tfrecord-00000-of-00001.gz"
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for miles, tips in rows:
            features = {
                "trip_miles": tf.train.Feature(float_list=tf.train.FloatList(value=[miles])),
                "tips": tf.train.Feature(float_list=tf.train.FloatList(value=[tips])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
examples = standard_artifacts.Examples()
examples.uri = f"{root}/examples"
examples.split_names = json.dumps(["train", "eval"])
statistics = standard_artifacts.ExampleStatistics()
statistics.uri = f"{root}/statistics"
context = BaseBeamExecutor.Context(beam_pipeline_args=spec["args"], tmp_dir=f"{root}/tmp", unique_id="1")
Executor(context).Do({"examples": [examples]}, {"statistics": [statistics]}, {"exclude_splits": "[]"})
print("STATISTICS", sorted(tf.io.gfile.listdir(statistics.uri)), flush=True)
"""


@dataclass
class Standins:
    network: GoogleCloudNetwork
    service: DataflowService
    server: DataflowServer
    runtime: ContainerRuntime
    image: str
    programs: Path


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standins]:
    state = tmp_path_factory.mktemp("dataflow")
    with GoogleCloudNetwork(state / "network") as network:
        network.storage.create_bucket(BUCKET, project=PROJECT)
        runtime = ContainerRuntime(state / "logs", cloud_env=network.cloud_env(PROJECT))
        digest, image = pipeline_image(state)
        reference = f"{IMAGE_REPOSITORY}@{digest}"
        runtime.add_image(reference, image)
        service = DataflowService(runtime, state / "service", tokens=network.tokens)
        with DataflowServer(service) as server:
            network.route("dataflow.googleapis.com", http=server.address)
            programs = state / "programs"
            programs.mkdir()
            (programs / "submit.py").write_text(SUBMIT_PROGRAM)
            (programs / "statistics_gen.py").write_text(STATISTICS_GEN_PROGRAM)
            yield Standins(network, service, server, runtime, reference, programs)


@dataclass
class Submission:
    job_id: str | None
    exit_code: int
    log: str


def submit(standins: Standins, name: str, spec: dict[str, Any], program: str = "submit.py") -> Submission:
    """Runs a submitting program in the pipeline image as the pipeline's service account."""
    command = ("python", str(standins.programs / program))
    exit_code, container = standins.runtime.run(
        ContainerSpec(standins.image, command=command, env={"SUBMISSION": json.dumps(spec)}),
        name=name,
        service_account=SUBMITTER,
        timeout=240,
    )
    log = container.log_path.read_text()
    found = re.search(r"SUBMITTED JOB (\S+)", log)
    return Submission(found.group(1) if found else None, exit_code, log)


@pytest.fixture(scope="module")
def jobs(standins: Standins) -> dict[str, Submission]:
    """Every Beam submission of the module at once (Beam polls every 5 s; waiting in parallel saves minutes)."""
    storage = standins.network.storage
    storage.put_object(BUCKET, "data/rides.csv", "trip_miles,tips\n1.5,2\n3.0,0\n7.2,5\n")
    storage.put_object(BUCKET, "data/broken.csv", "12\nnot-a-number\n")
    source = f"gs://{BUCKET}/data/rides.csv"
    specs = {
        "csv_to_tfrecord": {
            "args": beam_args(standins.image),
            "kind": "csv_to_tfrecord",
            "source": source,
            "skip": 1,
            "target": f"gs://{BUCKET}/out/rides",
        },
        "unknown_image": {
            "args": beam_args(UNKNOWN_IMAGE),
            "kind": "csv_to_tfrecord",
            "source": source,
            "skip": 1,
            "target": f"gs://{BUCKET}/out/never",
        },
        "dofn_raises": {
            "args": beam_args(standins.image),
            "kind": "parse_ints",
            "source": f"gs://{BUCKET}/data/broken.csv",
            "skip": 0,
        },
        "subnetwork_elsewhere": {
            "args": [*beam_args(standins.image), "--subnetwork=regions/europe-west1/subnetworks/dataflow"],
            "kind": "parse_ints",
            "source": f"gs://{BUCKET}/data/broken.csv",
            "skip": 0,
        },
        "cancelled": {"args": beam_args(standins.image), "kind": "sleep"},
        "statistics_gen": {"args": beam_args(standins.image), "root": f"gs://{BUCKET}/statistics-gen"},
    }
    results: dict[str, Submission] = {}

    def run(key: str) -> None:
        program = "statistics_gen.py" if key == "statistics_gen" else "submit.py"
        results[key] = submit(standins, f"submit-{key}", specs[key], program)

    threads = [threading.Thread(target=run, args=(key,)) for key in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def read_tfrecords(data: bytes) -> list[bytes]:
    import io

    from apache_beam.io.tfrecordio import _TFRecordUtil

    stream, records = io.BytesIO(data), []
    while (record := _TFRecordUtil.read_record(stream)) is not None:
        records.append(record)
    return records


def test_pipeline_reading_csv_from_gcs_writes_tfrecords_to_gcs(standins: Standins, jobs: dict[str, Submission]) -> None:
    submitted = jobs["csv_to_tfrecord"]
    assert submitted.exit_code == 0, submitted.log
    assert "FINAL STATE DONE" in submitted.log
    assert standins.service.state(submitted.job_id) == "JOB_STATE_DONE"
    storage = standins.network.storage
    assert storage.object_names(BUCKET, "out/rides") == ["out/rides-00000-of-00001.tfrecord"]
    records = read_tfrecords(storage.get_object(BUCKET, "out/rides-00000-of-00001.tfrecord"))
    assert sorted(records) == [b"1.5,2", b"3.0,0", b"7.2,5"]


def test_request_carries_the_worker_settings(standins: Standins, jobs: dict[str, Submission]) -> None:
    job = standins.service.job(jobs["csv_to_tfrecord"].job_id)
    assert job.worker_image == standins.image
    assert job.sdk_harness_images == (standins.image,)
    assert job.service_account == WORKER_ACCOUNT
    assert job.subnetwork == "regions/us-central1/subnetworks/dataflow"
    assert job.ip_configuration == "WORKER_IP_PRIVATE"
    assert (job.project, job.region) == (PROJECT, REGION)
    assert job.temp_location.startswith(f"gs://{BUCKET}/my-pipeline/dataflow/tmp/{job.name}.")
    assert job.temp_storage_prefix.startswith(f"storage.googleapis.com/{BUCKET}/my-pipeline/dataflow/tmp/")
    assert job.staging_location.startswith(f"gs://{BUCKET}/my-pipeline/dataflow/staging/{job.name}.")
    assert job.pipeline_url == f"{job.staging_location}/pipeline.pb"
    assert (job.machine_type, job.max_workers, job.disk_size_gb) == ("n1-standard-4", 4, 50)
    assert job.labels == {"app": "my-pipeline", "env": "dev"}
    assert {"use_runner_v2", "use_portable_job_submission"} <= set(job.experiments)
    assert job.job_type == "JOB_TYPE_BATCH"
    assert job.submitted_by == SUBMITTER
    create = next(r for r in standins.service.captured if r.method == "POST" and r.body["name"] == job.name)
    assert create.path == f"/v1b3/projects/{PROJECT}/locations/{REGION}/jobs"
    pool = create.body["environment"]["workerPools"][0]
    assert pool["sdkHarnessContainerImages"][0]["containerImage"] == standins.image
    assert pool["kind"] == "harness"  # the default endpoint, not a localhost one


def test_worker_ran_in_the_job_image_as_the_worker_service_account(
    standins: Standins, jobs: dict[str, Submission]
) -> None:
    job_id = jobs["csv_to_tfrecord"].job_id
    log = standins.service.log_path(job_id)
    assert log is not None
    text = log.read_text()
    assert text.splitlines()[0] == "$ python -m tools.standins.dataflow_worker"
    assert "Pipeline finished" in text
    readers = {r.identity for r in standins.network.storage.requests if "data/rides.csv" in unquote(r.path)}
    assert WORKER_ACCOUNT in readers


def test_unknown_worker_image_fails_the_job_with_the_pull_error(
    standins: Standins, jobs: dict[str, Submission]
) -> None:
    submitted = jobs["unknown_image"]
    assert submitted.exit_code != 0
    assert standins.service.state(submitted.job_id) == "JOB_STATE_FAILED"
    assert "Dataflow pipeline failed. State: FAILED" in submitted.log
    assert f"failed to pull image {UNKNOWN_IMAGE}" in submitted.log


def test_dofn_exception_reaches_the_caller(standins: Standins, jobs: dict[str, Submission]) -> None:
    submitted = jobs["dofn_raises"]
    assert submitted.exit_code != 0
    assert standins.service.state(submitted.job_id) == "JOB_STATE_FAILED"
    raised = submitted.log[submitted.log.index("DataflowRuntimeException: Dataflow pipeline failed. State: FAILED") :]
    assert "Traceback" in raised
    assert "ValueError: invalid literal for int() with base 10: 'not-a-number' [while running 'ParseInt']" in raised
    errors = [m for m in standins.service.messages(submitted.job_id) if m["messageImportance"] == "JOB_MESSAGE_ERROR"]
    assert errors[-1]["messageText"].startswith("Workflow failed.")


def test_refused_request_is_raised_by_beam(standins: Standins, jobs: dict[str, Submission]) -> None:
    submitted = jobs["subnetwork_elsewhere"]
    assert submitted.exit_code != 0 and submitted.job_id is None
    assert "HttpBadRequestError" in submitted.log
    assert "The workflow could not be created. Causes:" in submitted.log
    assert "The subnetwork regions/europe-west1/subnetworks/dataflow is in region europe-west1" in submitted.log


def test_cancel_stops_the_worker(standins: Standins, jobs: dict[str, Submission]) -> None:
    submitted = jobs["cancelled"]
    assert "CANCEL -> CANCELLING" in submitted.log
    assert "State: CANCELLED" in submitted.log
    assert standins.service.state(submitted.job_id) == "JOB_STATE_CANCELLED"
    log = standins.service.log_path(submitted.job_id)
    assert log is not None and "Pipeline finished" not in log.read_text()
    update = next(r for r in standins.service.captured if r.method == "PUT")
    assert update.body == {"requestedState": "JOB_STATE_CANCELLED"}
    assert update.path.endswith(f"/jobs/{submitted.job_id}")


def test_tfx_statistics_gen_executor_runs_on_dataflow(standins: Standins, jobs: dict[str, Submission]) -> None:
    submitted = jobs["statistics_gen"]
    assert submitted.exit_code == 0, submitted.log[-3000:]
    assert "STATISTICS ['Split-eval/', 'Split-train/']" in submitted.log
    printed = {submission.job_id for submission in jobs.values()}
    (executor_job,) = [
        job for job in standins.service.created() if job.name.startswith("beamapp-") and job.job_id not in printed
    ]
    assert standins.service.state(executor_job.job_id) == "JOB_STATE_DONE"
    assert executor_job.worker_image == standins.image
    assert standins.network.storage.has_object(BUCKET, "statistics-gen/statistics/Split-train/FeatureStats.pb")


# -- requests Beam would not send: the REST surface directly ---------------------------------------


def call(
    standins: Standins, method: str, path: str, body: Any = None, *, account: str | None = SUBMITTER
) -> tuple[int, dict[str, Any]]:
    import requests

    headers = {"Authorization": f"Bearer {standins.network.tokens.issue(account).token}"} if account else {}
    response = requests.request(
        method, f"{standins.server.url}/v1b3/projects/{path}", json=body, headers=headers, timeout=10
    )
    return response.status_code, response.json()


def valid_body(standins: Standins, jobs: dict[str, Submission], name: str) -> dict[str, Any]:
    body = copy.deepcopy(standins.service.request_body(jobs["csv_to_tfrecord"].job_id))
    body["name"] = name
    body["clientRequestId"] = f"{name}-request"
    return body


JOBS_PATH = f"{PROJECT}/locations/{REGION}/jobs"


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        (lambda b: b.update(name="My_Pipeline"), "Invalid job name 'My_Pipeline'"),
        (lambda b: b.update(labels={"App": "my-pipeline"}), "Invalid label key 'App'"),
        (lambda b: b.update(labels={"env": "Dev"}), "Invalid value 'Dev' for label 'env'"),
        (lambda b: b.update(location="europe-west1"), "does not match the location us-central1"),
        (lambda b: b["environment"].update(serviceAccountEmail="tfx-dataflow"), "Invalid service account email"),
        (lambda b: b["environment"].update(tempStoragePrefix="/tmp/dataflow"), "Invalid tempStoragePrefix"),
        (lambda b: b["environment"]["workerPools"][0].update(subnetwork="dataflow"), "Invalid subnetwork 'dataflow'"),
        (
            lambda b: b["environment"]["workerPools"][0].update(
                subnetwork="https://www.googleapis.com/compute/v1/projects/host/regions/us-east1/subnetworks/dataflow"
            ),
            "is in region us-east1",
        ),
    ],
)
def test_invalid_job_is_refused(standins: Standins, jobs: dict[str, Submission], change: Any, cause: str) -> None:
    body = valid_body(standins, jobs, "refused-job")
    change(body)
    status, answer = call(standins, "POST", JOBS_PATH, body)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert "The workflow could not be created. Causes:" in answer["error"]["message"]
    assert cause in answer["error"]["message"]


def test_full_subnetwork_url_in_the_job_region_is_accepted(standins: Standins, jobs: dict[str, Submission]) -> None:
    body = valid_body(standins, jobs, "full-subnetwork-url")
    body["environment"]["workerPools"][0]["subnetwork"] = (
        "https://www.googleapis.com/compute/v1/projects/host/regions/us-central1/subnetworks/dataflow"
    )
    body["environment"]["workerPools"][0]["sdkHarnessContainerImages"][0]["containerImage"] = UNKNOWN_IMAGE
    status, answer = call(standins, "POST", JOBS_PATH, body)
    assert status == 200 and answer["currentState"] == "JOB_STATE_PENDING"
    assert standins.service.wait(answer["id"], 30) == "JOB_STATE_FAILED"


def test_requests_need_a_valid_token(standins: Standins) -> None:
    status, answer = call(standins, "GET", JOBS_PATH, account=None)
    assert (status, answer["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert answer["error"]["message"].startswith("Request is missing required authentication credential.")
    import requests

    forged = requests.get(
        f"{standins.server.url}/v1b3/projects/{JOBS_PATH}", headers={"Authorization": "Bearer forged"}, timeout=10
    )
    assert forged.status_code == 401
    assert forged.json()["error"]["message"].startswith("Request had invalid authentication credentials.")


def test_jobs_are_regional(standins: Standins, jobs: dict[str, Submission]) -> None:
    job_id = jobs["csv_to_tfrecord"].job_id
    assert call(standins, "GET", f"{JOBS_PATH}/{job_id}")[0] == 200
    status, answer = call(standins, "GET", f"{PROJECT}/locations/europe-west1/jobs/{job_id}")
    assert status == 404 and f"Information about job {job_id} could not be found" in answer["error"]["message"]
    listed = call(standins, "GET", f"{JOBS_PATH}?filter=TERMINATED")[1]["jobs"]
    assert job_id in {job["id"] for job in listed}


def test_same_name_while_active_answers_the_active_job(standins: Standins, jobs: dict[str, Submission]) -> None:
    first = valid_body(standins, jobs, "only-one-at-a-time")
    first["environment"]["workerPools"][0]["sdkHarnessContainerImages"][0]["containerImage"] = UNKNOWN_IMAGE
    created = call(standins, "POST", JOBS_PATH, first)[1]
    retried = call(standins, "POST", JOBS_PATH, first)[1]
    second = dict(first, clientRequestId="another-request")
    duplicate = call(standins, "POST", JOBS_PATH, second)[1]
    assert retried["id"] == created["id"]
    # Beam compares clientRequestId and raises "There is already active job named ...".
    assert (duplicate["id"], duplicate["clientRequestId"]) == (created["id"], first["clientRequestId"])
    assert standins.service.wait(created["id"], 30) == "JOB_STATE_FAILED"
    status, answer = call(standins, "PUT", f"{JOBS_PATH}/{created['id']}", {"requestedState": "JOB_STATE_CANCELLED"})
    assert (status, answer["error"]["status"]) == (400, "FAILED_PRECONDITION")


def test_messages_page_and_filter(standins: Standins, jobs: dict[str, Submission]) -> None:
    job_id = jobs["dofn_raises"].job_id
    everything = standins.service.messages(job_id)
    seen, token = [], None
    while True:
        query = "pageSize=2" + (f"&pageToken={token}" if token else "")
        page = call(standins, "GET", f"{JOBS_PATH}/{job_id}/messages?{query}")[1]
        seen += page["jobMessages"]
        token = page.get("nextPageToken")
        if not token:
            break
    assert seen == everything
    errors = call(standins, "GET", f"{JOBS_PATH}/{job_id}/messages?minimumImportance=JOB_MESSAGE_ERROR")[1]
    assert {m["messageImportance"] for m in errors["jobMessages"]} == {"JOB_MESSAGE_ERROR"}
    later = call(standins, "GET", f"{JOBS_PATH}/{job_id}/messages?startTime={everything[-1]['time']}")[1]
    assert later["jobMessages"] == [everything[-1]]


def test_worker_service_account_must_be_one_the_submitter_can_act_as(tmp_path: Path, standins: Standins) -> None:
    service = DataflowService(
        standins.runtime, tmp_path, known_service_accounts={"other@my-tfx-dev.iam.gserviceaccount.com"}
    )
    body = {
        "name": "act-as",
        "type": "JOB_TYPE_BATCH",
        "environment": {
            "tempStoragePrefix": f"storage.googleapis.com/{BUCKET}/tmp",
            "serviceAccountEmail": WORKER_ACCOUNT,
            "workerPools": [{"kind": "harness"}],
        },
    }
    with pytest.raises(ApiError, match=f"Current user cannot act as service account {WORKER_ACCOUNT}"):
        service.create_job(PROJECT, REGION, body, {}, SUBMITTER)
