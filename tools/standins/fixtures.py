"""Start the Vertex AI and Cloud Storage stand-ins and point the real SDK at them.

Use from any test module::

    from tools.standins.fixtures import vertex_standins

    def test_something():
        with vertex_standins() as env:
            job = aiplatform.PipelineJob(...); job.submit()
            assert env.server.job(job.job_id).labels == {...}

or make the pytest fixtures available in a folder by importing them in its
``conftest.py``::

    from tools.standins.fixtures import (  # noqa: F401
        fast_vertex_polling,
        storage_emulator,
        vertex_env,
    )

(``vertex_env`` depends on the session-scoped ``storage_emulator``, so both
must be imported.)

Deployed models run in their serving container: ``vertex_standins()`` gives the
models surface a ``ContainerRuntime`` that knows Google's prebuilt TensorFlow
serving image (``TF_SERVING_IMAGE``, run by ``tools/standins/model_server.py``)
and hands containers ``STORAGE_EMULATOR_HOST``. A deploy then starts a
TensorFlow process (~5 s); folders that deploy often can share warm replicas
across the session with ``warm_serving_replicas`` and their own ``vertex_env``::

    @pytest.fixture
    def vertex_env(storage_emulator, warm_serving_replicas):
        with vertex_standins(storage=storage_emulator, replicas=warm_serving_replicas) as env:
            yield env
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.standins.containers import ContainerRuntime
from tools.standins.gcs_emulator import StorageEmulator
from tools.standins.model_server import register_tf_serving_image
from tools.standins.serving_replicas import ReplicaPool
from tools.standins.vertex_models import ModelsSurface
from tools.standins.vertex_pipelines import DEFAULT_JOB_STATES
from tools.standins.vertex_server import FakeVertexServer

DEFAULT_PROJECT = "test-project"
DEFAULT_PROJECT_NUMBER = "123456789012"
DEFAULT_LOCATION = "us-central1"
DEFAULT_BUCKET = "test-staging-bucket"
FAST_POLL_SECONDS = 0.01
# Google's prebuilt TensorFlow prediction image (registry.serving_container: prebuilt), for the faster unit tests.
TF_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


@dataclass(frozen=True)
class VertexStandins:
    """Handles to the running stand-ins (see :func:`vertex_standins`)."""

    server: FakeVertexServer
    storage: StorageEmulator
    project: str
    project_number: str
    location: str
    bucket: str
    models: ModelsSurface
    runtime: ContainerRuntime | None = None

    @property
    def vertex_url(self) -> str:
        return self.server.base_url

    @property
    def storage_url(self) -> str:
        return self.storage.url

    @property
    def staging_bucket(self) -> str:
        return f"gs://{self.bucket}"

    @property
    def parent(self) -> str:
        """Location path as the server writes it in resource names."""
        return self.server.identity.location_path(self.project, self.location)

    def create_bucket(self, name: str) -> None:
        """Create a bucket in the emulator (directly, not through the GCS API).

        Pre-create every bucket a pipeline root points at: when
        ``PipelineJob.submit`` finds the bucket missing it creates it and then
        looks up the project number through Resource Manager over gRPC at
        cloudresourcemanager.googleapis.com (it ignores ``api_endpoint``),
        which retries for 60 s without network before the SDK gives up and
        logs the error.
        """
        self.storage.create_bucket(name)

    def storage_client(self) -> Any:
        """A ``google.cloud.storage.Client`` talking to the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=self.project, credentials=AnonymousCredentials())


@contextmanager
def vertex_standins(
    *,
    project: str = DEFAULT_PROJECT,
    project_number: str = DEFAULT_PROJECT_NUMBER,
    location: str = DEFAULT_LOCATION,
    bucket: str = DEFAULT_BUCKET,
    service_account: str | None = None,
    network: str | None = None,
    default_job_states: Sequence[str] = DEFAULT_JOB_STATES,
    init_aiplatform: bool = True,
    storage: StorageEmulator | None = None,
    replicas: ReplicaPool | None = None,
    state_dir: Path | None = None,
) -> Iterator[VertexStandins]:
    """Run both stand-ins on free loopback ports for the duration of the block.

    Sets ``STORAGE_EMULATOR_HOST`` and (unless ``init_aiplatform=False``) calls
    ``aiplatform.init`` with the REST transport and anonymous credentials;
    both are restored on exit, so tests do not leak configuration.  Pass a
    running ``storage`` emulator to reuse it: it is reset (only ``bucket``
    left) instead of being started and stopped.  Serving containers run on
    ``replicas`` when given (their runtime must reach the same storage), else
    on a runtime of this block (:func:`serving_runtime`, state and container
    logs under ``state_dir`` or a temporary folder); they are stopped on exit.
    """
    with ExitStack() as stack:
        if storage is None:
            storage = stack.enter_context(StorageEmulator(default_bucket=bucket))
        else:
            storage.reset([bucket])
        if replicas is not None:
            runtime = replicas.runtime
        else:
            state = state_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vertex-standins-")))
            runtime = serving_runtime(state, storage.url)
        models = ModelsSurface(runtime, replicas=replicas)
        server = stack.enter_context(
            FakeVertexServer(
                project_id=project,
                project_number=project_number,
                default_job_states=default_job_states,
                surfaces=[models],
            )
        )
        stack.callback(models.close)
        stack.enter_context(environment_variable("STORAGE_EMULATOR_HOST", storage.url))
        env = VertexStandins(server, storage, project, project_number, location, bucket, models, runtime)
        if init_aiplatform:
            stack.enter_context(
                aiplatform_configured(
                    api_endpoint=server.base_url,
                    project=project,
                    location=location,
                    staging_bucket=env.staging_bucket,
                    service_account=service_account,
                    network=network,
                )
            )
        yield env


def serving_runtime(state_dir: Path, storage_url: str) -> ContainerRuntime:
    """A container runtime that knows ``TF_SERVING_IMAGE`` and gives every container
    ``STORAGE_EMULATOR_HOST=storage_url`` (until the proxy network gives them Google's hosts)."""
    runtime = ContainerRuntime(
        state_dir / "container-logs", cloud_env=lambda _account: {"STORAGE_EMULATOR_HOST": storage_url}
    )
    register_tf_serving_image(runtime, TF_SERVING_IMAGE, state_dir)
    return runtime


@contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """Set ``os.environ[name]`` and restore the previous value (or absence)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextmanager
def aiplatform_configured(
    *,
    api_endpoint: str,
    project: str = DEFAULT_PROJECT,
    location: str = DEFAULT_LOCATION,
    staging_bucket: str | None = None,
    service_account: str | None = None,
    network: str | None = None,
) -> Iterator[None]:
    """``aiplatform.init`` against a local endpoint; restores the global config after.

    ``aiplatform.init`` is a bound method of ``initializer.global_config``, so
    the config object is kept and its attributes are restored instead.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    saved = dict(vars(initializer.global_config))
    try:
        aiplatform.init(
            project=project,
            location=location,
            api_endpoint=api_endpoint,
            api_transport="rest",
            credentials=AnonymousCredentials(),
            staging_bucket=staging_bucket,
            service_account=service_account,
            network=network,
        )
        yield
    finally:
        state = vars(initializer.global_config)
        state.clear()
        state.update(saved)


def minimal_pipeline_spec(
    name: str = "tiny-pipeline",
    tasks: Sequence[str] = ("train", "evaluate"),
    parameters: Mapping[str, tuple[str, Any]] | None = None,
    caching: bool | Mapping[str, bool] = True,
) -> dict[str, Any]:
    """A small PipelineSpec in the shape kfp 2.5 compiles (schema 2.1.0).

    ``tasks`` run in sequence; ``parameters`` maps pipeline parameter names
    to ``(parameterType, defaultValue)``; ``caching`` is the compile-time
    ``cachingOptions.enableCache`` for all tasks or per task.
    """
    if parameters is None:
        parameters = {
            "epochs": ("NUMBER_INTEGER", 1),
            "learning_rate": ("NUMBER_DOUBLE", 0.1),
        }
    dag_tasks: dict[str, Any] = {}
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    for index, task in enumerate(tasks):
        enable = caching if isinstance(caching, bool) else caching.get(task, True)
        dag_tasks[task] = {
            "cachingOptions": {"enableCache": enable},
            "componentRef": {"name": f"comp-{task}"},
            "taskInfo": {"name": task},
            **({"dependentTasks": [tasks[index - 1]]} if index else {}),
        }
        components[f"comp-{task}"] = {"executorLabel": f"exec-{task}"}
        executors[f"exec-{task}"] = {
            "container": {
                "image": "python:3.10",
                "command": ["python", "-c", f"print('{task}')"],
            }
        }
    return {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": {"name": name},
        "root": {
            "dag": {"tasks": dag_tasks},
            "inputDefinitions": {
                "parameters": {
                    key: {"parameterType": kind, "defaultValue": default} for key, (kind, default) in parameters.items()
                }
            },
        },
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.5.0",
    }


def write_pipeline_spec(path: Path, **kwargs: Any) -> str:
    """Write :func:`minimal_pipeline_spec` as JSON; returns the path as str."""
    path.write_text(json.dumps(minimal_pipeline_spec(**kwargs), indent=2))
    return str(path)


@pytest.fixture(scope="session")
def storage_emulator() -> Iterator[StorageEmulator]:
    """One GCS emulator per test session; ``vertex_env`` resets it per test."""
    with StorageEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def warm_serving_replicas(
    storage_emulator: StorageEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReplicaPool]:
    """Serving replicas shared by the session's deployments of identical models (see
    ``serving_replicas.ReplicaPool``, ``keep_warm``); stopped at the end of the session."""
    runtime = serving_runtime(tmp_path_factory.mktemp("serving"), storage_emulator.url)
    with ReplicaPool(runtime, keep_warm=True) as pool:
        yield pool


@pytest.fixture
def vertex_env(storage_emulator: StorageEmulator) -> Iterator[VertexStandins]:
    """Fresh fake Vertex server, emptied GCS emulator, ``aiplatform`` aimed at both."""
    with vertex_standins(storage=storage_emulator) as env:
        yield env


@pytest.fixture
def fast_vertex_polling(monkeypatch: pytest.MonkeyPatch) -> float:
    """Make ``PipelineJob.wait()`` poll every 10 ms instead of every 5 s.

    ``PipelineJob._block_until_complete`` sleeps
    ``pipeline_jobs._JOB_WAIT_TIME`` seconds between GETs (a constant, no
    parameter).  Only that interval is changed: the SDK still polls through
    its real REST transport, so this configures the client rather than
    mocking it.
    """
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", FAST_POLL_SECONDS)
    return FAST_POLL_SECONDS
