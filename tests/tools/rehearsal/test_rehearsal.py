"""The whole cloud story, rehearsed: compile -> submit -> every task runs -> a registered candidate ->
promote canary -> the real model answers through the endpoint -> finish; a second run after new data
is evaluated against the first run's blessed model, promoted and rolled back; bad data fails the run
at the gate and registers nothing.

Everything goes through the project's own commands (`python -m pipeline compile|submit|promote`)
and the real SDKs, against `LocalCloud`. The runs take a few minutes each. The data is the
configured data (`data.path`), the names are configs/vertex-dev.yaml's and the bad data breaks a
text category of the curated schema, so that this holds in a fork.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tensorflow as tf
from google.cloud import aiplatform

from models.label import TASK
from pipeline.data import csv_files
from pipeline.paths import REPO_ROOT
from tests.pipeline.expected import vertex_config
from tests.runners.columns import UNLISTED_VALUE, text_category
from tools.rehearsal.findings import checks, collect, file_digests, served_model_folder
from tools.rehearsal.rehearsal import Rehearsal
from tools.standins.fixtures import aiplatform_configured

pytestmark = pytest.mark.e2e

SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED = "PIPELINE_STATE_FAILED"
CONFIG = vertex_config("dev")
MODEL_ID = CONFIG.registry.model_id if CONFIG.registry else None
ENDPOINT_ID = CONFIG.endpoint.endpoint_id if CONFIG.endpoint else None


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    if MODEL_ID is None or ENDPOINT_ID is None:
        pytest.fail("configs/vertex-dev.yaml: the rehearsal registers and serves: it needs `registry` and `endpoint`")
    log = io.StringIO()
    with Rehearsal("dev", tmp_path_factory.mktemp("rehearsal"), out=log) as rehearsal:
        rehearsal.bootstrap()
        rehearsal.compile()
        yield rehearsal


def tasks_of(job: Any) -> dict[str, Any]:
    return {task.task_name: task for task in job.task_details if task.parent_task_id}


def registry(rehearsal: Rehearsal) -> Any:
    return rehearsal.cloud.models.model(MODEL_ID)


def registered_versions(rehearsal: Rehearsal) -> list[str]:
    try:
        return registry(rehearsal).version_ids
    except KeyError:  # nothing registered yet
        return []


def sdk(rehearsal: Rehearsal) -> Any:
    return aiplatform_configured(
        api_endpoint=rehearsal.cloud.vertex_url, project=rehearsal.runner.project, location=rehearsal.runner.region
    )


def smoke_instances() -> list[dict[str, Any]]:
    return json.loads((REPO_ROOT / "configs" / "smoke_instances.json").read_text())


def load_registered(rehearsal: Rehearsal, artifact_uri: str, folder: Path) -> Any:
    """The SavedModel a registry version points at, copied out of the storage stand-in."""
    bucket, _, prefix = artifact_uri.removeprefix("gs://").partition("/")
    storage = rehearsal.cloud.network.storage
    for name in storage.object_names(bucket, prefix=prefix.rstrip("/") + "/"):
        if name.endswith("/"):  # a folder marker, as TensorFlow's gs:// filesystem writes them
            continue
        target = folder / name[len(prefix) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get_object(bucket, name))
    return tf.saved_model.load(str(folder))


def model_outputs(model: Any, instances: list[dict[str, Any]]) -> np.ndarray:
    signature = model.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    columns = {key: tf.constant([row[key] for row in instances], spec.dtype) for key, spec in specs.items()}
    return signature(**columns)[TASK.output_key].numpy()


def write_data(rehearsal_data: Path, folder: Path, *, extra_rows: int = 0, unlisted_every: int = 0) -> Path:
    """The data the rehearsal started with (the configured data), plus `extra_rows` of its rows again
    in a second file (new data arrived), or with a value outside the schema's list in a text
    category's every `unlisted_every`-th row."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for file in csv_files(rehearsal_data):
        with file.open(newline="", encoding="utf-8-sig") as source:
            rows.extend(csv.DictReader(source))
    if unlisted_every:
        column = text_category().name
        for index, row in enumerate(rows):
            if index % unlisted_every == 0:
                row[column] = UNLISTED_VALUE
    files = {"data.csv": rows}
    if extra_rows:
        files["new-rows.csv"] = rows[:extra_rows]
    for name, content in files.items():
        with (folder / name).open("w", newline="") as target:
            writer = csv.DictWriter(target, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(content)
    return folder


def test_runs_register_models_that_the_endpoint_serves_and_promotion_moves_them(
    rehearsal: Rehearsal, tmp_path: Path
) -> None:
    # 1. The first run: every task of the compiled spec executes and succeeds.
    first = rehearsal.submit()
    assert first.exit_code == 0, rehearsal.out.getvalue()[-4000:]
    job = rehearsal.job(first.job_id)
    assert job.state.name == SUCCEEDED
    tasks = tasks_of(job)
    assert {name: task.state.name for name, task in tasks.items()} == dict.fromkeys(tasks, "SUCCEEDED")
    assert {"CsvExampleGen", "Trainer", "Evaluator", "ModelRegistration", "Pusher"} <= set(tasks)
    findings = collect(rehearsal.cloud, job)
    results = checks(rehearsal.config, rehearsal.image, findings, rehearsal.cloud)
    assert [check.what for check in results if not check.ok] == []
    assert sum(len(finding.dataflow_jobs) for finding in findings) == 4  # the four Beam steps on Dataflow
    assert sum(len(finding.training_jobs) for finding in findings) == 1

    # The candidate version holds the trained model, copied out of the pipeline root into the models bucket.
    first_model_uri = tasks["Trainer"].outputs["model"].artifacts[0].uri
    candidate = registry(rehearsal).aliases["candidate"]
    version = registry(rehearsal).version(candidate)
    registry_config = rehearsal.config.registry
    assert version["artifactUri"] == f"{registry_config.models_bucket}/{MODEL_ID}/{first.job_id}"
    saved_model = served_model_folder(version["artifactUri"], registry_config.serving_container)
    assert file_digests(rehearsal.cloud, saved_model) == file_digests(
        rehearsal.cloud, f"{first_model_uri}/Format-Serving"
    )
    served = load_registered(rehearsal, saved_model, tmp_path / "v1")

    # 2. Canary: the first version to serve takes all the traffic; the endpoint serves the real model.
    assert rehearsal.promote("canary", "--alias", "candidate", "--traffic", "10") == 0
    instances = smoke_instances()
    with sdk(rehearsal):
        endpoint = aiplatform.Endpoint(ENDPOINT_ID)
        answer = endpoint.predict(instances=instances)
    np.testing.assert_allclose(np.array(answer.predictions), model_outputs(served, instances), rtol=1e-5)
    # A request body as clients send it over REST (the README's example: tests/example/) gets one
    # answer per instance.
    body = {"instances": instances}
    runner = rehearsal.runner
    endpoint_name = f"projects/{runner.project}/locations/{runner.region}/endpoints/{ENDPOINT_ID}"
    url = f"{rehearsal.cloud.vertex_url}/v1/{endpoint_name}:predict"
    response = requests.post(url, json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(body["instances"])
    assert rehearsal.promote("finish") == 0
    assert registry(rehearsal).aliases["production"] == candidate

    # 3. New rows arrive: the second run evaluates its model against the first run's blessed one.
    rehearsal.upload_data(write_data(rehearsal.data, tmp_path / "more", extra_rows=300))
    second = rehearsal.submit()
    assert second.exit_code == 0, rehearsal.out.getvalue()[-4000:]
    evaluator = tasks_of(rehearsal.job(second.job_id))["Evaluator"]
    (baseline,) = evaluator.inputs["baseline_model"].artifacts
    assert baseline.uri == first_model_uri
    (blessing,) = evaluator.outputs["blessing"].artifacts
    assert blessing.metadata["baseline_model_id"] == baseline.name
    new_candidate = registry(rehearsal).aliases["candidate"]
    assert new_candidate != candidate

    # 4. The new version as a 10% canary, then all traffic, then back to the first version.
    assert rehearsal.promote("canary", "--alias", "candidate", "--traffic", "10") == 0
    assert rehearsal.cloud.models.endpoint(ENDPOINT_ID).traffic_by_version == {candidate: 90, new_candidate: 10}
    assert rehearsal.promote("finish") == 0
    assert rehearsal.cloud.models.endpoint(ENDPOINT_ID).traffic_by_version == {new_candidate: 100}
    assert rehearsal.promote("rollback") == 0
    assert rehearsal.cloud.models.endpoint(ENDPOINT_ID).traffic_by_version == {candidate: 100}
    assert registry(rehearsal).aliases["production"] == candidate


def test_bad_data_fails_the_run_at_the_gate_and_registers_nothing(rehearsal: Rehearsal, tmp_path: Path) -> None:
    before = registered_versions(rehearsal)
    category = text_category()
    rehearsal.upload_data(write_data(rehearsal.data, tmp_path / "bad", unlisted_every=category.breaking_every))

    run = rehearsal.submit()

    assert run.exit_code != 0
    job = rehearsal.job(run.job_id)
    assert job.state.name == FAILED
    assert "The failed tasks are: [ValidationGate]" in job.gca_resource.error.message
    gate = tasks_of(job)["ValidationGate"]
    assert gate.state.name == "FAILED"
    assert "exited with a non-zero status" in gate.error.message
    (finding,) = [f for f in collect(rehearsal.cloud, job) if f.name == "ValidationGate"]
    assert category.name in Path(finding.logs[-1]).read_text()
    assert {"Transform", "Trainer", "ModelRegistration", "Pusher"}.isdisjoint(tasks_of(job))
    assert registered_versions(rehearsal) == before
