"""train.yaml's shell steps, in order, as GitHub would run them: the image build (against a
stand-in `gcloud` that records its calls), then `make compile` and `make submit` against the
fake Vertex AI server and the Cloud Storage emulator (tools/standins).

The job runs in a copy of the repository (sharing .venv) so that build/ and the step files
stay out of the work tree. The Makefile takes API_ENDPOINT and POLL from the environment when
the command line does not set them: that is how the test points the unchanged commands at the
stand-ins; nothing else differs from CI.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from tests.infra.vertex_permissions import permissions_used, role_permissions
from tests.workflows.workflows import REPO_ROOT, JobRun, jobs, load_workflow, run_steps
from tools.standins.fixtures import VertexStandins, vertex_standins

TRAIN = jobs(load_workflow(REPO_ROOT / ".github" / "workflows" / "train.yaml"))["train"]
SHA = "3f2a9c0d4e5b6a7980112233445566778899aabb"
DIGEST = "sha256:" + "ab12" * 16
VARS = {
    "GCP_PROJECT_ID": "my-tfx-dev",
    "GCP_REGION": "us-central1",
    "GCP_WIF_PROVIDER": "projects/123456789012/locations/global/workloadIdentityPools/github-ci/providers/github",
    "GCP_TRAINER_SA": "tfx-ci-trainer@my-tfx-dev.iam.gserviceaccount.com",
    "GCP_BUILD_SA": "tfx-cloud-build@my-tfx-dev.iam.gserviceaccount.com",
    "GCP_BUILD_BUCKET": "my-tfx-dev-cloudbuild",
    "GCP_IMAGE_REPOSITORY": "us-central1-docker.pkg.dev/my-tfx-dev/pipelines",
}
# The image is named after the pipeline (`make pipeline-name`).
PIPELINE_NAME = load_config().pipeline_name
IMAGE = f"{VARS['GCP_IMAGE_REPOSITORY']}/{PIPELINE_NAME}@{DIGEST}"
TAG = f"{VARS['GCP_IMAGE_REPOSITORY']}/{PIPELINE_NAME}:{SHA}"
PIPELINE_BUCKET = "my-tfx-dev-pipelines"  # configs/vertex-dev.yaml's pipeline root
IMAGE_STEP = "Build the pipeline image with Cloud Build"
SUBMIT_STEP = "Submit the run to Vertex AI Pipelines"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".venv-*", ".local", "build", "bench-results", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".terraform", "*.pyc",
)  # fmt: skip

# Records every call; answers `artifacts docker images describe` with the digest once a build ran.
FAKE_GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_GCLOUD_DIR/calls"
if [[ "$1 $2 $3 $4" == "artifacts docker images describe" ]]; then
  if [[ -f "$FAKE_GCLOUD_DIR/built" ]]; then echo "$FAKE_GCLOUD_DIGEST"; exit 0; fi
  echo "ERROR: (gcloud.artifacts.docker.images.describe) NOT_FOUND: $5" >&2; exit 1
fi
if [[ "$1 $2" == "builds submit" ]]; then
  echo "DONE"; touch "$FAKE_GCLOUD_DIR/built"; exit 0
fi
echo "fake gcloud: unexpected call: $*" >&2; exit 2
"""


@dataclass
class Workplace:
    workdir: Path
    gcloud_dir: Path
    summary: Path
    standins: VertexStandins

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.gcloud_dir / 'bin'}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "GITHUB_SHA": SHA,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_WORKSPACE": str(self.workdir),
            "API_ENDPOINT": self.standins.vertex_url,
            "STORAGE_EMULATOR_HOST": self.standins.storage_url,
            "FAKE_GCLOUD_DIR": str(self.gcloud_dir),
            "FAKE_GCLOUD_DIGEST": DIGEST,
            **extra,
        }

    def gcloud_calls(self) -> list[str]:
        calls = self.gcloud_dir / "calls"
        return calls.read_text().splitlines() if calls.exists() else []

    def run(self, inputs: dict[str, Any], only: set[str] | None = None, **kwargs: Any) -> JobRun:
        contexts = {"vars": VARS, "inputs": inputs, "github": {"sha": SHA, "ref": "refs/heads/main"}}
        return run_steps(
            TRAIN,
            workdir=self.workdir,
            environment=self.environment(**kwargs.pop("extra_env", {})),
            contexts=contexts,
            summary_file=self.summary,
            only=only,
            **kwargs,
        )


def make_workplace(root: Path, standins: VertexStandins) -> Workplace:
    workdir = root / "repo"
    shutil.copytree(REPO_ROOT, workdir, ignore=COPY_IGNORE, symlinks=True)
    (workdir / ".venv").symlink_to(REPO_ROOT / ".venv")
    gcloud_dir = root / "gcloud"
    (gcloud_dir / "bin").mkdir(parents=True)
    fake = gcloud_dir / "bin" / "gcloud"
    fake.write_text(FAKE_GCLOUD)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return Workplace(workdir, gcloud_dir, root / "step-summary.md", standins)


@pytest.fixture(scope="module")
def standins() -> Iterator[VertexStandins]:
    with vertex_standins(project=VARS["GCP_PROJECT_ID"], init_aiplatform=False) as env:
        env.create_bucket(PIPELINE_BUCKET)  # a missing one makes submit look up the project (60 s)
        yield env


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, standins: VertexStandins) -> tuple[Workplace, JobRun]:
    """The whole job for a push to main (no inputs: submit without waiting)."""
    workplace = make_workplace(tmp_path_factory.mktemp("train-push"), standins)
    return workplace, workplace.run(inputs={})


def test_the_job_runs_every_shell_step_in_order(pushed: tuple[Workplace, JobRun]) -> None:
    _, run = pushed
    assert [(result.name, result.returncode) for result in run.results] == [
        (IMAGE_STEP, 0), ("Compile the pipeline for dev", 0), (SUBMIT_STEP, 0),
    ], run.results[-1].output  # fmt: skip
    assert run.skipped_actions == [
        "actions/checkout", "google-github-actions/auth", "google-github-actions/setup-gcloud",
        "actions/setup-python", "actions/cache",
    ]  # fmt: skip


def test_cloud_build_runs_as_the_build_account_with_sources_and_logs_in_the_build_bucket(
    pushed: tuple[Workplace, JobRun],
) -> None:
    workplace, run = pushed
    describe = f"artifacts docker images describe {TAG} --format=value(image_summary.digest)"
    assert workplace.gcloud_calls() == [
        describe,
        f"builds submit . --project=my-tfx-dev --region=us-central1 --tag={TAG} "
        f"--service-account=projects/my-tfx-dev/serviceAccounts/{VARS['GCP_BUILD_SA']} "
        "--gcs-source-staging-dir=gs://my-tfx-dev-cloudbuild/source --gcs-log-dir=gs://my-tfx-dev-cloudbuild/logs "
        "--timeout=3600s",
        describe,
    ]
    assert run.outputs["image"] == {"image": IMAGE}


def test_the_spec_is_compiled_with_the_built_digest(pushed: tuple[Workplace, JobRun]) -> None:
    workplace, _ = pushed
    spec = (workplace.workdir / "build" / "dev" / "pipeline.json").read_text()
    executors = json.loads(spec)["pipelineSpec"]["deploymentSpec"]["executors"].values()
    images = {executor["container"]["image"] for executor in executors if "container" in executor}
    assert images == {IMAGE}


def test_a_push_submits_one_run_and_does_not_follow_it(pushed: tuple[Workplace, JobRun]) -> None:
    workplace, _ = pushed
    (job,) = workplace.standins.server.jobs()
    assert job.service_account == "tfx-pipelines@my-tfx-dev.iam.gserviceaccount.com"
    assert job.labels["image_digest"] == DIGEST.removeprefix("sha256:")[:12]
    assert job.labels["git_commit"] == SHA[:12]
    assert job.get_count == 0
    summary = workplace.summary.read_text()
    assert f"Pipeline image: `{IMAGE}` (commit {SHA})" in summary
    assert "(submitted; not followed)" in summary


def test_dispatch_with_wait_follows_the_run_to_the_end(pushed: tuple[Workplace, JobRun]) -> None:
    workplace, first = pushed
    before = {job.job_id for job in workplace.standins.server.jobs()}
    # POLL comes from the environment (the Makefile's POLL ?=): seconds between checks.
    run = workplace.run(inputs={"wait": True}, only={SUBMIT_STEP}, outputs=first.outputs, extra_env={"POLL": "0.01"})

    assert [(result.name, result.returncode) for result in run.results] == [(SUBMIT_STEP, 0)], run.results[0].output
    assert "--wait --timeout 19800" in run.results[0].output
    (job,) = [job for job in workplace.standins.server.jobs() if job.job_id not in before]
    assert job.state == "PIPELINE_STATE_SUCCEEDED" and job.get_count > 0
    assert "### Vertex AI pipeline run: SUCCEEDED" in workplace.summary.read_text()


def test_the_trainer_calls_only_what_its_role_allows(pushed: tuple[Workplace, JobRun]) -> None:
    """Every Vertex AI call of the job so far (submit, and following a run when the test above ran)
    is within tfxPipelineSubmitter, the custom role of tfx-ci-trainer in infra/iam.tf."""
    workplace, _ = pushed
    used = permissions_used(workplace.standins.server.requests)
    assert "aiplatform.pipelineJobs.create" in used
    assert used <= role_permissions("tfxPipelineSubmitter")


def test_an_image_already_built_for_the_commit_is_reused(tmp_path: Path, standins: VertexStandins) -> None:
    workplace = make_workplace(tmp_path, standins)
    (workplace.gcloud_dir / "built").touch()

    run = workplace.run(inputs={}, only={IMAGE_STEP})

    assert run.results[0].returncode == 0, run.results[0].output
    assert [call.split(" ")[:2] for call in workplace.gcloud_calls()] == [["artifacts", "docker"]]
    assert run.outputs["image"] == {"image": IMAGE}


def test_a_missing_repository_variable_stops_the_job_before_any_build(
    tmp_path: Path, standins: VertexStandins, monkeypatch: pytest.MonkeyPatch
) -> None:
    workplace = make_workplace(tmp_path, standins)
    monkeypatch.setitem(VARS, "GCP_BUILD_BUCKET", "")

    run = workplace.run(inputs={})

    assert [result.returncode for result in run.results] == [1]
    assert "::error::repository variable GCP_BUILD_BUCKET is empty" in run.results[0].output
    assert workplace.gcloud_calls() == []
