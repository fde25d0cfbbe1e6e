"""Static checks of .github/workflows: triggers, pinned actions, permissions, keyless auth,
make targets, and no expressions spliced into shell scripts."""

from __future__ import annotations

import re

import pytest

from pipeline.config import load_config
from tests.workflows.workflows import (
    REPO_ROOT,
    SHA_PINNED,
    action_name,
    all_steps,
    jobs,
    load_workflow,
    make_invocations,
    make_targets,
    makefile_targets,
    steps,
    triggers,
    workflow_files,
)
from tools.standins.containers import read_dockerfile

WORKFLOWS = {path.name: load_workflow(path) for path in workflow_files()}
AUTH = "google-github-actions/auth"
CHECKOUT = "actions/checkout"
PLACEHOLDER_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def test_the_four_workflows_exist() -> None:
    assert set(WORKFLOWS) == {"ci.yaml", "train.yaml", "promote.yaml", "fork-check.yaml"}


def test_fork_check_runs_weekly_or_by_hand_without_credentials() -> None:
    workflow = WORKFLOWS["fork-check.yaml"]
    assert set(triggers(workflow)) == {"schedule", "workflow_dispatch"}
    (job,) = jobs(workflow).values()
    assert job["permissions"] == {"contents": "read"}
    assert "make fork-check" in [step.get("run") for step in steps(job)]


def test_ci_runs_on_every_push_and_pull_request() -> None:
    on = triggers(WORKFLOWS["ci.yaml"])
    assert set(on) == {"push", "pull_request"}
    assert on["push"] in (None, {"branches": ["**"]})
    assert on["pull_request"] is None


def test_train_runs_on_pushes_to_main_that_change_the_pipeline_or_by_hand() -> None:
    on = triggers(WORKFLOWS["train.yaml"])
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"]["branches"] == ["main"]
    # Whatever goes into the pipeline image, the schema included, starts a run when it changes.
    copied = {source for source, _ in read_dockerfile(REPO_ROOT / "Dockerfile").copies}
    folders = {source for source in copied if source.endswith("/")}
    files = {source for source in copied - folders if not any(source.startswith(f) for f in folders)}
    assert set(on["push"]["paths"]) == {f"{folder}**" for folder in folders} | files | {"Dockerfile"}
    assert "schema/**" in on["push"]["paths"]
    assert on["workflow_dispatch"]["inputs"] == {
        "wait": {"description": on["workflow_dispatch"]["inputs"]["wait"]["description"], "type": "boolean",
                 "default": False},
    }  # fmt: skip


def test_promote_runs_only_by_hand_with_typed_inputs() -> None:
    on = triggers(WORKFLOWS["promote.yaml"])
    assert set(on) == {"workflow_dispatch"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert {name: spec["type"] for name, spec in inputs.items()} == {
        "environment": "choice", "action": "choice", "version_or_alias": "string", "traffic_percent": "number",
    }  # fmt: skip
    assert inputs["environment"]["options"] == ["dev", "prod"]
    assert inputs["action"]["options"] == ["canary", "finish", "rollback"]
    assert inputs["version_or_alias"]["default"] == "candidate"
    assert inputs["traffic_percent"]["default"] == 10


def test_promote_plans_without_approval_then_applies_in_the_production_environment() -> None:
    promote = jobs(WORKFLOWS["promote.yaml"])
    assert set(promote) == {"plan", "apply"}
    # The plan job's environments hold the read-only planner's variables and need no reviewers; the
    # apply job's `production` has the required reviewers (docs/bootstrap.md).
    assert promote["plan"]["environment"] == "${{ inputs.environment == 'prod' && 'production-plan' || 'dev-plan' }}"
    assert promote["apply"]["environment"] == "${{ inputs.environment == 'prod' && 'production' || 'dev' }}"
    assert promote["apply"]["needs"] == "plan"
    assert "needs" not in promote["plan"]


def promote_calls(job_id: str) -> list[list[str]]:
    job = jobs(WORKFLOWS["promote.yaml"])[job_id]
    commands = [call for step in steps(job) if "run" in step for call in make_invocations(step["run"])]
    return [call for call in commands if make_targets(call) == ["promote"]]


def test_promote_applies_the_plan_file_the_plan_job_uploaded() -> None:
    (plan,) = promote_calls("plan")
    (apply,) = promote_calls("apply")
    assert plan[-1] == "ARGS=$PROMOTE_ARGS --dry-run --plan-file promotion-plan.json"
    assert apply[-1] == "ARGS=apply --plan promotion-plan.json --summary-file $GITHUB_STEP_SUMMARY"
    promote = jobs(WORKFLOWS["promote.yaml"])
    (upload,) = [step for step in steps(promote["plan"]) if action_name(step) == "actions/upload-artifact"]
    (download,) = [step for step in steps(promote["apply"]) if action_name(step) == "actions/download-artifact"]
    assert upload["with"]["path"] == "promotion-plan.json" and upload["with"]["if-no-files-found"] == "error"
    assert download["with"] == {"name": upload["with"]["name"]}  # into the workspace, same file name
    # The plan is in the summary before anyone approves; the apply job's result after it.
    for job_id in ("plan", "apply"):
        assert sum("GITHUB_STEP_SUMMARY" in step.get("run", "") for step in steps(promote[job_id])) == 1, job_id


def test_each_promote_job_authenticates_as_its_own_identity() -> None:
    promote = jobs(WORKFLOWS["promote.yaml"])
    identities = {
        job_id: next(step["with"] for step in steps(job) if action_name(step) == AUTH)
        for job_id, job in promote.items()
    }
    assert identities == {
        "plan": {
            "workload_identity_provider": "${{ vars.GCP_PLAN_WIF_PROVIDER }}",
            "service_account": "${{ vars.GCP_PLANNER_SA }}",
        },
        "apply": {
            "workload_identity_provider": "${{ vars.GCP_DEPLOY_WIF_PROVIDER }}",
            "service_account": "${{ vars.GCP_PROMOTER_SA }}",
        },
    }
    # The request is checked, and the plan made, before the job that holds write rights exists.
    plan_steps = [step.get("name") or action_name(step) for step in steps(promote["plan"])]
    assert plan_steps.index("Check the request") < plan_steps.index("Plan") < plan_steps.index("Upload the plan")
    assert "inputs." not in str(steps(promote["apply"])).replace("inputs.environment", "")


def test_training_runs_do_not_race_and_are_not_cancelled() -> None:
    concurrency = WORKFLOWS["train.yaml"]["concurrency"]
    assert concurrency["group"] and concurrency["cancel-in-progress"] is False


def test_every_action_is_pinned_to_a_full_commit_with_its_version_in_a_comment() -> None:
    for path in workflow_files():
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", line)
            if not match or match.group(1).startswith("./"):
                continue
            assert SHA_PINNED.match(match.group(1)), f"{path.name}: {line.strip()}"
            assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", match.group(2)), f"{path.name}: no '# vX.Y.Z' on {line.strip()}"


def test_each_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for _, _, step in all_steps():
        if "uses" in step:
            name, _, ref = step["uses"].partition("@")
            pins.setdefault(name, set()).add(ref)
    assert {name: refs for name, refs in pins.items() if len(refs) > 1} == {}


def test_workflows_read_the_repository_and_nothing_more_by_default() -> None:
    for name, workflow in WORKFLOWS.items():
        assert workflow["permissions"] == {"contents": "read"}, name


@pytest.mark.parametrize("name", ["ci.yaml", "train.yaml", "promote.yaml"])
def test_id_token_only_for_jobs_that_authenticate_to_google_cloud(name: str) -> None:
    for job_id, job in jobs(WORKFLOWS[name]).items():
        authenticates = any(action_name(step) == AUTH for step in steps(job))
        expected = {"contents": "read", "id-token": "write"} if authenticates else {"contents": "read"}
        assert job.get("permissions") == expected, f"{name} {job_id}"


def test_checkout_comes_before_auth_and_keeps_no_token() -> None:
    for name, workflow in WORKFLOWS.items():
        for job_id, job in jobs(workflow).items():
            actions = [action_name(step) for step in steps(job)]
            if AUTH in actions:
                assert CHECKOUT in actions[: actions.index(AUTH)], f"{name} {job_id}"
            for step in steps(job):
                if action_name(step) == CHECKOUT:
                    assert step["with"]["persist-credentials"] is False, f"{name} {job_id}"


def test_auth_is_workload_identity_federation_from_variables() -> None:
    auth_steps = [(name, step) for name, _, step in all_steps() if action_name(step) == AUTH]
    assert {name for name, _ in auth_steps} == {"train.yaml", "promote.yaml"}
    for name, step in auth_steps:
        assert set(step["with"]) == {"workload_identity_provider", "service_account"}, name
        for value in step["with"].values():
            assert re.fullmatch(r"\$\{\{ vars\.[A-Z_]+ \}\}", value), f"{name}: {value}"


def test_no_json_keys_and_no_secrets() -> None:
    for path in workflow_files():
        text = path.read_text()
        assert "credentials_json" not in text, path.name
        assert "GOOGLE_CREDENTIALS" not in text, path.name
        assert not re.search(r"(?i)secrets\.\w*(key|json|credential)", text), path.name
        used = set(re.findall(r"secrets\.(\w+)", text))
        assert used <= {"GITHUB_TOKEN"}, f"{path.name}: {used}"


def test_nothing_prints_or_passes_on_tokens() -> None:
    for name, _, step in all_steps():
        text = " ".join(str(value) for value in [step.get("run", ""), step.get("env", {}), step.get("with", {})])
        for forbidden in ("print-access-token", "print-identity-token", "access_token", "auth_token",
                          "id_token", "GOOGLE_APPLICATION_CREDENTIALS", "gha-creds", "set -x"):  # fmt: skip
            assert forbidden not in text, f"{name} {step.get('name')}: {forbidden}"


def test_run_scripts_take_inputs_from_env_not_from_expressions() -> None:
    for name, job_id, step in all_steps():
        assert "${{" not in step.get("run", ""), f"{name} {job_id} {step.get('name')}"


def test_every_make_target_the_workflows_call_exists() -> None:
    known = makefile_targets()
    called = {
        target
        for _, _, step in all_steps()
        for call in make_invocations(step.get("run", ""))
        for target in make_targets(call)
    }
    assert called >= {"setup", "actionlint", "lint", "test", "compile", "submit", "promote"}
    assert called - known == set()


def test_make_target_parsing_reads_this_makefile() -> None:
    assert {"help", "setup", "test", "compile", "submit", "image", "infra-tools", "infra-check"} <= makefile_targets()
    assert "VENV" not in makefile_targets() and "SUBMIT_ARGS" not in makefile_targets()
    script = (
        'for e in dev prod; do\n  make compile ENV="$e" IMAGE="$I"\ndone\n'
        "make -s lint test 2>&1 | tee x && make \\\n  submit X=1 >> out"
    )
    assert [make_targets(call) for call in make_invocations(script)] == [["compile"], ["lint", "test"], ["submit"]]


def test_ci_caches_the_venv_on_the_lock_the_makefile_and_the_python_version() -> None:
    (job,) = jobs(WORKFLOWS["ci.yaml"]).values()
    python = next(step for step in steps(job) if action_name(step) == "actions/setup-python")
    assert python["with"]["python-version"] == "3.10"
    caches = {step["with"]["path"]: step["with"]["key"] for step in steps(job) if action_name(step) == "actions/cache"}
    # The Makefile decides how .venv is installed (bytecode compiled, for one).
    assert "hashFiles('requirements.lock', 'Makefile')" in caches[".venv"]
    assert f"steps.{python['id']}.outputs.python-version" in caches[".venv"]


def test_ci_compiles_dev_and_prod_with_a_placeholder_digest_and_uploads_the_specs() -> None:
    (job,) = jobs(WORKFLOWS["ci.yaml"]).values()
    compile_step = next(step for step in steps(job) if "make compile" in step.get("run", ""))
    assert "for environment in dev prod" in compile_step["run"]
    assert PLACEHOLDER_DIGEST.search(compile_step["env"]["PLACEHOLDER_IMAGE"])
    upload = next(step for step in steps(job) if action_name(step) == "actions/upload-artifact")
    assert upload["with"]["path"] == "build/*/pipeline.json"
    names = [step.get("name") or action_name(step) for step in steps(job)]
    assert names.index(compile_step["name"]) < names.index(upload.get("name") or "actions/upload-artifact")


def test_train_appends_the_run_summary_to_the_job_summary() -> None:
    (job,) = jobs(WORKFLOWS["train.yaml"]).values()
    submit = next(step for step in steps(job) if "make submit" in step.get("run", ""))
    assert 'SUMMARY="$GITHUB_STEP_SUMMARY"' in submit["run"]


def test_credentials_files_stay_out_of_the_build_context_and_the_image() -> None:
    # gcloud builds submit uploads what .gitignore admits when there is no .gcloudignore.
    assert not (REPO_ROOT / ".gcloudignore").exists()
    assert "gha-creds-*.json" in (REPO_ROOT / ".gitignore").read_text().split()
    assert "gha-creds-*.json" in (REPO_ROOT / ".dockerignore").read_text().split()


def test_no_workflow_or_makefile_names_the_configured_pipeline(tmp_path) -> None:
    """The pipeline's name (and the image's) is pipeline_name in configs/base.yaml, read where needed."""
    import shutil
    import subprocess

    pipeline_name = load_config().pipeline_name
    for path in [*workflow_files(), REPO_ROOT / "Makefile"]:
        assert pipeline_name not in path.read_text(), path
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for text, expected in [("pipeline_name: churn-model  # ours\n", "churn-model"), ("pipeline_name: 'a-b'\n", "a-b")]:
        (tmp_path / "configs" / "base.yaml").write_text(f"# a fork\n{text}data: {{}}\n")
        printed = subprocess.run(
            [make, "--no-print-directory", "-s", "pipeline-name"], cwd=tmp_path, capture_output=True, text=True
        )
        assert printed.stdout.strip() == expected, printed.stderr
        dry_run = subprocess.run(
            [make, "--no-print-directory", "-n", "image", "PROJECT=p"], cwd=tmp_path, capture_output=True, text=True
        )
        assert f"us-central1-docker.pkg.dev/p/pipelines/{expected}:" in dry_run.stdout
