"""A rehearsal of one environment's Vertex AI run, end to end, against a `LocalCloud`.

The steps are the ones a team takes in the cloud, with the project's own commands:

1. bootstrap (docs/bootstrap.md): the buckets of `data.path`, `runner.pipeline_root` and
   `registry.models_bucket`, the CSV files uploaded to `data.path`, and the serving image;
2. the pipeline image (`make image`): built from the Dockerfile, named as Artifact Registry names it;
3. `python -m pipeline compile --env ENV --image IMAGE` (what `make compile` runs);
4. `python -m pipeline submit --env ENV --wait` as the CI identity (what train.yaml runs); the
   Vertex AI stand-in executes the spec.

Commands run as separate processes in the environment of the identity that runs them in the
cloud; they reach Google's host names through the stand-ins' proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pipeline.config import BASE_CONFIG, PipelineConfig, VertexRunnerConfig, load_config, vertex_config_path
from pipeline.data import data_dir
from pipeline.paths import REPO_ROOT
from tools.rehearsal.cloud import LocalCloud

IMAGE_REPOSITORY = "pipelines"  # the Artifact Registry repository `make image` pushes to (REPO)
CI_ACCOUNT = "tfx-ci-trainer"  # infra/iam.tf: the identity train.yaml submits runs as
PROMOTER_ACCOUNT = "tfx-promoter"  # infra/iam.tf: the identity promote.yaml moves traffic as
POLL_SECONDS = 2.0


class RehearsalError(Exception):
    """A step of the rehearsal could not run; the message is one line."""


@dataclass(frozen=True)
class Submission:
    job_id: str
    exit_code: int
    started: float
    ended: float


class Rehearsal:
    """One environment's rehearsal; `with Rehearsal(...) as rehearsal: rehearsal.run_pipeline()`."""

    def __init__(
        self,
        env: str,
        state_dir: Path,
        *,
        data: Path | None = None,
        out: TextIO = sys.stdout,
        routing_seed: int = 0,
    ) -> None:
        self.env = env
        self.config_file = vertex_config_path(env)
        self.config: PipelineConfig = load_config([BASE_CONFIG, self.config_file])
        if not isinstance(self.config.runner, VertexRunnerConfig):
            raise RehearsalError(f"{self.config_file}: runner.kind is '{self.config.runner.kind}', not 'vertex'")
        self.runner: VertexRunnerConfig = self.config.runner
        self.state_dir = state_dir
        # The data a local run reads (configs/local.yaml over base.yaml), uploaded to data.path.
        self.data = data or Path(data_dir(load_config()))
        self.out = out
        self.cloud = LocalCloud(state_dir / "cloud", self.runner.project, self.runner.region, routing_seed=routing_seed)
        self.image: str | None = None
        self.spec = state_dir / "pipeline.json"
        self._runs = 0

    def __enter__(self) -> Rehearsal:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.cloud.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cloud.stop()

    # -- identities ----------------------------------------------------------------------------

    def account(self, name: str) -> str:
        return f"{name}@{self.runner.project}.iam.gserviceaccount.com"

    # -- steps ----------------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """What the one-time setup leaves (infra/): buckets (data, pipeline root, models), the
        training data, and the serving image mirrored by digest into the project's registry."""
        data_path = self.config.data.path or ""
        registry = self.config.registry
        wanted = {_bucket(data_path), _bucket(self.runner.pipeline_root)}
        if registry is not None:
            wanted.add(_bucket(registry.models_bucket))
        buckets = sorted(wanted)
        for bucket in buckets:
            self.cloud.network.storage.create_bucket(bucket, project=self.runner.project, location=self.runner.region)
        uploaded = self.upload_data(self.data)
        self._say(f"  buckets  {', '.join(f'gs://{b}' for b in buckets)}")
        self._say(f"  data     {len(uploaded)} file(s) from {self.data} -> {data_path}")
        if registry is not None:
            self.cloud.add_serving_image(registry.serving_image, registry.serving_container)
            self._say(f"  serving  {registry.serving_image} ({registry.serving_container})")

    def upload_data(self, folder: Path) -> list[str]:
        """Replaces what `data.path` holds with the CSV files of `folder` (as `gsutil rsync -d`)."""
        data_path = self.config.data.path or ""
        bucket, _, prefix = data_path.removeprefix("gs://").partition("/")
        storage = self.cloud.network.storage
        for name in storage.object_names(bucket, prefix=prefix.rstrip("/") + "/"):
            storage.delete_object(bucket, name)
        return self.cloud.upload_folder(folder, data_path)

    def build_image(self) -> str:
        repository = (
            f"{self.runner.region}-docker.pkg.dev/{self.runner.project}/{IMAGE_REPOSITORY}/{self.config.pipeline_name}"
        )
        self.image = self.cloud.push_pipeline_image(repository)
        self._say(f"  image    {self.image} (the Dockerfile's image, built locally)")
        return self.image

    def compile(self) -> Path:
        if self.image is None:
            self.build_image()
        assert self.image is not None
        command = ["compile", "--env", self.env, "--image", self.image, "--output", str(self.spec)]
        code = self.command(command, account=None)
        if code != 0:
            raise RehearsalError(f"`python -m pipeline compile` failed with exit code {code}")
        return self.spec

    def submit(self, job_id: str | None = None) -> Submission:
        """Submits the compiled spec as the CI identity and follows it to its end."""
        self._runs += 1
        job_id = job_id or f"{self.config.pipeline_name}-rehearsal-{self._runs}-{int(time.time())}"
        started = time.time()
        code = self.command(
            [
                "submit",
                "--env",
                self.env,
                "--spec",
                str(self.spec),
                "--job-id",
                job_id,
                "--wait",
                "--poll-interval",
                str(POLL_SECONDS),
                "--summary-file",
                str(self.state_dir / "summary.md"),
            ],
            account=self.account(CI_ACCOUNT),
        )
        return Submission(job_id, code, started, time.time())

    def promote(self, *args: str) -> int:
        """`python -m pipeline promote ARGS` as the promoter identity."""
        return self.command(["promote", "--env", self.env, *args], account=self.account(PROMOTER_ACCOUNT))

    def command(self, args: Sequence[str], account: str | None) -> int:
        """`python -m pipeline ARGS` from the repository, as `account` against the stand-ins
        (None: offline, e.g. compile); its output goes to this rehearsal's output."""
        env = {key: value for key, value in os.environ.items() if not _routes_traffic(key)}
        if account is not None:
            env.update(self.cloud.env(account))
        self._say(f"$ python -m pipeline {' '.join(_shorten(a) for a in args)}")
        process = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        for line in process.stdout.splitlines():
            self._say(f"  | {line}")
        return process.returncode

    def run_pipeline(self, job_id: str | None = None) -> Submission:
        """Compiles (once) and submits; returns when the run has ended."""
        if not self.spec.exists():
            self.compile()
        return self.submit(job_id)

    def job(self, job_id: str) -> Any:
        """The PipelineJob as the SDK reads it."""
        from google.cloud import aiplatform

        from tools.standins.fixtures import aiplatform_configured

        with aiplatform_configured(
            api_endpoint=self.cloud.vertex_url, project=self.runner.project, location=self.runner.region
        ):
            return aiplatform.PipelineJob.get(job_id)

    def _say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def _bucket(path: str) -> str:
    return path.removeprefix("gs://").split("/", 1)[0]


def _routes_traffic(variable: str) -> bool:
    """Settings of this machine that would send a command's requests elsewhere or pick credentials."""
    lowered = variable.lower()
    return lowered.endswith("_proxy") or variable in {
        "GOOGLE_APPLICATION_CREDENTIALS",
        "STORAGE_EMULATOR_HOST",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "HTTPLIB2_CA_CERTS",
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        "CLOUDSDK_CONFIG",
    }


def _shorten(arg: str) -> str:
    return arg if len(arg) <= 90 else arg[:60] + "..." + arg[-20:]
