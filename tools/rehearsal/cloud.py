"""`LocalCloud`: every Google Cloud service a Vertex AI run of this pipeline touches, on loopback.

- Cloud Storage, the GCE metadata servers that hand each identity its tokens, and one TLS proxy
  that routes each Google API host to its stand-in (`tools/standins/network.py`). Containers and
  commands reach Google's real host names through it, with unmodified clients.
- Vertex AI at `<region>-aiplatform.googleapis.com`: Pipelines (jobs are executed, see
  `tools/standins/pipeline_runs.py`), Model Registry and Endpoints (deployed models are served by
  their serving container, `vertex_models.py`), and Training CustomJobs over REST and gRPC.
- Dataflow at `dataflow.googleapis.com`: submitted jobs run in the worker image (`dataflow.py`).
- A container runtime standing in for image pulls: the pipeline image is built from the
  Dockerfile (`tools/standins/containers.py`), serving images are the TF Serving stand-ins
  (`tools/standins/model_server.py`).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Literal

from pipeline.paths import REPO_ROOT
from tools.standins.containers import ContainerRuntime, pipeline_image
from tools.standins.dataflow import DataflowServer, DataflowService
from tools.standins.model_server import register_tf_serving_image
from tools.standins.network import GoogleCloudNetwork
from tools.standins.pipeline_runs import LocalPipelineExecutor
from tools.standins.vertex_core import ProjectIdentity
from tools.standins.vertex_jobs import CustomJobService, CustomJobsSurface, serve_grpc
from tools.standins.vertex_models import ModelsSurface
from tools.standins.vertex_server import FakeVertexServer

DEFAULT_PROJECT_NUMBER = "123456789012"


class LocalCloud:
    """The stand-ins of one project and region, wired together; a context manager."""

    def __init__(
        self,
        state_dir: Path,
        project: str,
        region: str,
        *,
        project_number: str = DEFAULT_PROJECT_NUMBER,
        routing_seed: int = 0,
    ) -> None:
        self.state_dir = state_dir
        self.project = project
        self.region = region
        self.project_number = project_number
        self.network = GoogleCloudNetwork(
            state_dir / "network", project_numbers={project: project_number}, require_auth=True
        )
        self.runtime = ContainerRuntime(state_dir / "containers", cloud_env=self.network.cloud_env(project))
        self.pipelines = LocalPipelineExecutor(self.runtime, self.read_object, project, project_number)
        self.training = CustomJobService(
            self.runtime,
            identity=ProjectIdentity(project, project_number),
            identify=self.network.tokens.identity_from_header,
        )
        self.models = ModelsSurface(self.runtime, routing_seed=routing_seed)
        self.vertex = FakeVertexServer(
            project_id=project,
            project_number=project_number,
            surfaces=[self.models, CustomJobsSurface(self.training)],
            pipelines_executor=self.pipelines,
        )
        self.training_grpc = serve_grpc(self.training)
        self.dataflow = DataflowService(self.runtime, state_dir / "dataflow", tokens=self.network.tokens)
        self.dataflow_server = DataflowServer(self.dataflow)
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> LocalCloud:
        if self._started:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.network.start()
        self.vertex.start()
        self.training_grpc.start()
        self.dataflow_server.start()
        self.network.route(
            f"{self.region}-aiplatform.googleapis.com",
            http=(self.vertex.host, self.vertex.port),
            grpc=("127.0.0.1", self.training_grpc.port),
        )
        self.network.route("dataflow.googleapis.com", http=self.dataflow_server.address)
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self.models.close()
        self.training.close()
        self.dataflow.close()
        self.dataflow_server.stop()
        self.training_grpc.stop()
        self.vertex.stop()
        self.network.stop()
        self._started = False

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what a project holds -------------------------------------------------------------------

    @property
    def vertex_url(self) -> str:
        """The Vertex AI REST endpoint for `--api-endpoint` (the SDK then uses anonymous credentials)."""
        return self.vertex.base_url

    def push_pipeline_image(self, repository: str, repo_root: Path = REPO_ROOT) -> str:
        """Builds the pipeline image's stand-in from the Dockerfile; returns REPOSITORY@sha256:<digest>."""
        digest, image = pipeline_image(self.state_dir / "image", repo_root)
        reference = f"{repository}@{digest}"
        self.runtime.add_image(reference, image)
        return reference

    def add_serving_image(self, reference: str, container: Literal["tf-serving", "prebuilt"] = "tf-serving") -> None:
        """Makes `reference` a TensorFlow serving image (`registry.serving_container`): the
        tensorflow/serving image, whose `tensorflow_model_server` the registered version's command
        starts, or Google's prebuilt TensorFlow prediction image (tools/standins/model_server.py)."""
        register_tf_serving_image(self.runtime, reference, self.state_dir, container=container)

    def env(self, service_account: str) -> dict[str, str]:
        """Environment for a command run as `service_account` against this cloud."""
        return self.network.env(service_account, self.project)

    def read_object(self, uri: str) -> bytes | None:
        """A gs:// object's bytes, None when it does not exist."""
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        storage = self.network.storage
        return storage.get_object(bucket, name) if storage.has_object(bucket, name) else None

    def upload_folder(self, folder: Path, destination: str) -> list[str]:
        """Copies the files of `folder` to the gs:// folder `destination`, as `gsutil cp` would."""
        bucket, _, prefix = destination.removeprefix("gs://").partition("/")
        uploaded = []
        for file in sorted(path for path in folder.iterdir() if path.is_file()):
            name = f"{prefix.rstrip('/')}/{file.name}" if prefix else file.name
            self.network.storage.put_object(bucket, name, file.read_bytes())
            uploaded.append(f"gs://{bucket}/{name}")
        return uploaded
