"""Key properties of infra/ (Terraform), read with python-hcl2: keyless identity, admission of
GitHub tokens, least-privilege roles, hardened buckets, and names that fit the configs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.infra.terraform import (
    INFRA,
    REPO_ROOT,
    all_resources,
    blocks,
    locals_,
    outputs,
    resolve_locals,
    resources,
    scalar,
    text_of_all_files,
    tf_files,
    variables,
)
from tests.workflows.workflows import WORKFLOWS_DIR

REPOSITORY_CONDITION = "assertion.repository == '${var.github_repository}'"
PRIMITIVE_ROLES = re.compile(r"roles/(owner|editor|viewer)\b")
PROJECT_WIDE_IMPERSONATION = {
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.workloadIdentityUser",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.serviceAccountAdmin",
}


def test_every_file_parses_and_the_google_provider_is_pinned() -> None:
    assert {path.name for path in tf_files()} >= {"versions.tf", "variables.tf", "main.tf", "github.tf", "outputs.tf"}
    (terraform,) = blocks("terraform")
    (providers,) = terraform["required_providers"]
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["google"]["version"].startswith("~> ")


def test_required_apis_are_enabled() -> None:
    services = set(locals_()["services"])
    required = "aiplatform dataflow cloudbuild artifactregistry storage iam iamcredentials sts compute".split()
    assert services >= {f"{name}.googleapis.com" for name in required}
    (enable,) = resources("google_project_service").values()
    assert enable["disable_on_destroy"] is False


def test_github_providers_admit_only_this_repository() -> None:
    providers = resources("google_iam_workload_identity_pool_provider")
    assert set(providers) == {"ci", "deploy"}
    for name, provider in providers.items():
        condition = resolve_locals(provider["attribute_condition"])
        assert REPOSITORY_CONDITION in condition, name
        assert "||" not in provider["attribute_condition"], name  # nothing may widen the condition
        assert scalar(provider["oidc"])["issuer_uri"] == "https://token.actions.githubusercontent.com"
        assert provider["attribute_mapping"]["google.subject"] == "assertion.sub"


def test_repository_condition_with_and_without_the_repository_id() -> None:
    # local.from_repository: the repository name always, its numeric ID as well when given.
    condition = locals_()["from_repository"]
    with_id, without_id = condition.split(" ? ", 1)[1].split(" : ", 1)
    assert REPOSITORY_CONDITION in with_id and REPOSITORY_CONDITION in without_id
    assert "assertion.repository_id == '${var.github_repository_id}'" in without_id + with_id


def test_only_the_protected_environment_on_main_reaches_the_promoter() -> None:
    deploy = resources("google_iam_workload_identity_pool_provider")["deploy"]
    condition = deploy["attribute_condition"]
    assert "assertion.environment == '${var.github_deploy_environment}'" in condition
    assert "assertion.ref == '${var.github_deploy_ref}'" in condition
    assert variables()["github_deploy_environment"]["default"] == "production"
    assert deploy["attribute_mapping"]["attribute.environment"] == "assertion.environment"

    bindings = resources("google_service_account_iam_member")
    promoter = bindings["promoter_workload_identity"]
    assert promoter["service_account_id"] == "${google_service_account.promoter.name}"
    assert promoter["role"] == "roles/iam.workloadIdentityUser"
    assert promoter["member"] == (
        "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.deploy[0].name}"
        "/attribute.environment/${var.github_deploy_environment}"
    )
    trainer = bindings["trainer_workload_identity"]
    assert trainer["member"].startswith(
        "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.ci[0].name}/"
    )
    assert trainer["member"].endswith("/attribute.ref/${var.github_train_ref}")
    # Nothing else may be impersonated from a pool.
    pool_members = {name for name, body in bindings.items() if "workloadIdentityPools" in body["member"]
                    or "workload_identity_pool" in body["member"]}  # fmt: skip
    assert pool_members == {"promoter_workload_identity", "trainer_workload_identity"}


def test_no_service_account_keys() -> None:
    assert "google_service_account_key" not in all_resources()
    assert "google_service_account_key" not in text_of_all_files()


def test_no_primitive_roles_and_no_project_wide_impersonation() -> None:
    assert not PRIMITIVE_ROLES.search(text_of_all_files())
    for resource_type in ("google_project_iam_member", "google_project_iam_binding", "google_project_iam_policy"):
        for name, body in resources(resource_type).items():
            text = f"{body.get('role')} {body.get('for_each', '')}"
            granted = set(re.findall(r"roles/[\w.]+|google_project_iam_custom_role\.\w+", text))
            assert granted and not granted & PROJECT_WIDE_IMPERSONATION, f"{resource_type}.{name}: {granted}"
    assert "google_project_iam_binding" not in all_resources()  # authoritative for the role: avoided
    assert "google_project_iam_policy" not in all_resources()


def test_actas_is_granted_on_single_accounts() -> None:
    act_as = {
        name: (body["service_account_id"], body["member"])
        for name, body in resources("google_service_account_iam_member").items()
        if body["role"] == "roles/iam.serviceAccountUser"
    }
    assert act_as == {
        "pipelines_act_as_itself": ("${google_service_account.pipelines.name}",
                                    "${google_service_account.pipelines.member}"),
        "pipelines_act_as_dataflow": ("${google_service_account.dataflow.name}",
                                      "${google_service_account.pipelines.member}"),
        "trainer_act_as_pipelines": ("${google_service_account.pipelines.name}",
                                     "${google_service_account.trainer[0].member}"),
        "trainer_act_as_cloudbuild": ("${google_service_account.cloudbuild[0].name}",
                                      "${google_service_account.trainer[0].member}"),
    }  # fmt: skip


def test_the_promoter_gets_a_narrow_custom_role() -> None:
    (role,) = resources("google_project_iam_custom_role").values()
    prefixes = ("aiplatform.endpoints.", "aiplatform.models.")
    assert all(permission.startswith(prefixes) for permission in role["permissions"])
    assert resources("google_project_iam_member")["promoter"]["role"] == "${google_project_iam_custom_role.promoter.id}"


def test_buckets_are_private_uniform_and_versioned() -> None:
    buckets = resources("google_storage_bucket")
    assert {"pipelines", "data"} <= set(buckets)
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert scalar(bucket["versioning"])["enabled"] is True, name
        assert bucket.get("force_destroy") in (None, False), name


def test_the_image_repository_is_docker_with_immutable_tags() -> None:
    repository = resources("google_artifact_registry_repository")["pipelines"]
    assert repository["format"] == "DOCKER"
    assert repository.get("mode") in (None, "STANDARD_REPOSITORY")
    assert scalar(repository["docker_config"])["immutable_tags"] is True


def test_the_serving_image_comes_through_a_docker_hub_mirror_in_the_project() -> None:
    repositories = resources("google_artifact_registry_repository")
    assert set(repositories) == {"pipelines", "dockerhub"}
    mirror = repositories["dockerhub"]
    assert (mirror["format"], mirror["mode"]) == ("DOCKER", "REMOTE_REPOSITORY")
    assert mirror["repository_id"] == "${var.dockerhub_repository}"
    upstream = scalar(scalar(mirror["remote_repository_config"])["docker_repository"])
    assert upstream == {"public_repository": "DOCKER_HUB"}
    assert "cleanup_policies" not in mirror  # a cached serving image is never removed by a policy
    assert locals_()["serving_image_repository"] == (
        "${var.region}-docker.pkg.dev/${var.project}/${var.dockerhub_repository}/tensorflow/serving"
    )


# Roles that can delete or replace objects (storage.objects.delete), at any level.
DELETING_ROLES = re.compile(
    r"roles/storage\.(admin|objectAdmin|objectUser|legacyBucketWriter|legacyBucketOwner|legacyObjectOwner)\b"
)


def test_the_models_bucket_keeps_every_registered_model() -> None:
    models = resources("google_storage_bucket")["models"]
    assert models["name"] == "${local.models_bucket}"
    assert scalar(models["versioning"])["enabled"] is True
    assert models.get("force_destroy") in (None, False)
    assert "retention_policy" not in models  # versioning instead: a bucket cannot have both
    # Lifecycle rules may only remove noncurrent versions, never a live object.
    for rule in models.get("lifecycle_rule", []):
        assert set(scalar(rule["condition"])) == {"days_since_noncurrent_time"}


def test_the_pipeline_may_create_models_but_nobody_may_delete_them() -> None:
    on_models = {
        name: body
        for name, body in resources("google_storage_bucket_iam_member").items()
        if body["bucket"] == "${google_storage_bucket.models.name}"
    }
    assert set(on_models) == {"models_writer", "models_readers"}
    writer, readers = on_models["models_writer"], on_models["models_readers"]
    assert writer["member"] == "${google_service_account.pipelines.member}"
    assert set(re.findall(r"roles/[\w.]+", writer["for_each"])) == {
        "roles/storage.objectCreator",
        "roles/storage.objectViewer",
    }
    assert readers["role"] == "roles/storage.objectViewer"
    assert "${google_service_account.promoter.member}" in readers["for_each"]
    assert "dataflow" not in str(on_models)
    assert not DELETING_ROLES.search(str(on_models))
    # Nor through the project: no storage role there (their project roles, aiplatform.user,
    # compute.networkViewer, dataflow.developer and dataflow.worker, hold no storage.objects.delete).
    project_roles = {
        body["member"]: set(re.findall(r"roles/[\w.]+", f"{body['role']} {body.get('for_each', '')}"))
        for body in resources("google_project_iam_member").values()
        if body["member"] in {"${google_service_account.pipelines.member}", "${google_service_account.dataflow.member}"}
    }
    assert not any(DELETING_ROLES.search(" ".join(roles)) for roles in project_roles.values())
    assert not any(role.startswith("roles/storage.") for roles in project_roles.values() for role in roles)


def test_names_fit_the_vertex_configs() -> None:
    """With var.project set to a config's project, the Terraform names are the config's values."""
    local_values = locals_()
    for environment in ("dev", "prod"):
        runner = yaml.safe_load((REPO_ROOT / "configs" / f"vertex-{environment}.yaml").read_text())["runner"]
        data = yaml.safe_load((REPO_ROOT / "configs" / f"vertex-{environment}.yaml").read_text())["data"]
        project = runner["project"]

        def name(template: str, project: str = project) -> str:
            return template.replace("${var.project}", project)

        assert runner["pipeline_root"] == f"gs://{name(local_values['pipeline_bucket'])}/taxi-tips"
        assert data["path"] == f"gs://{name(local_values['data_bucket'])}/taxi"
        registry = yaml.safe_load((REPO_ROOT / "configs" / f"vertex-{environment}.yaml").read_text())["registry"]
        assert registry["models_bucket"] == f"gs://{name(local_values['models_bucket'])}"
        serving_repository = (
            name(local_values["serving_image_repository"])
            .replace("${var.region}", runner["region"])
            .replace("${var.dockerhub_repository}", variables()["dockerhub_repository"]["default"])
        )
        assert registry["serving_image"].startswith(f"{serving_repository}@sha256:")
        accounts = {body["account_id"]: f"{body['account_id']}@{project}.iam.gserviceaccount.com"
                    for body in resources("google_service_account").values()}  # fmt: skip
        assert runner["service_account"] == accounts["tfx-pipelines"]
        assert runner["dataflow"]["service_account"] == accounts["tfx-dataflow"]
        subnetwork = resources("google_compute_subnetwork")["dataflow"]
        assert runner["dataflow"]["subnetwork"] == f"regions/{runner['region']}/subnetworks/{subnetwork['name']}"
        assert scalar(subnetwork["private_ip_google_access"]) is True


def test_outputs_give_every_variable_the_workflows_read() -> None:
    def used(workflow: str) -> set[str]:
        return set(re.findall(r"\bvars\.([A-Z0-9_]+)", (WORKFLOWS_DIR / workflow).read_text()))

    values = outputs()
    repository_variables = set(re.findall(r"'(GCP_[A-Z_]+)':", values["github_repository_variables"]["value"]))
    environment_variables = set(re.findall(r"'(GCP_[A-Z_]+)':", values["github_environment_variables"]["value"]))
    assert used("train.yaml") == repository_variables
    assert used("promote.yaml") == environment_variables
    assert used("ci.yaml") == set()
    for output in ("workload_identity_provider", "trainer_service_account", "deploy_workload_identity_provider",
                   "promoter_service_account", "pipeline_bucket", "image_repository", "build_bucket",
                   "build_service_account", "pipeline_service_account", "dataflow_service_account",
                   "models_bucket", "serving_image_repository"):  # fmt: skip
        assert output in values


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed (CI runs fmt and validate with hashicorp/setup-terraform)")
    result = subprocess.run(
        [terraform, f"-chdir={INFRA}", "fmt", "-check", "-diff", "-recursive"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


BOOTSTRAP = REPO_ROOT / "docs" / "bootstrap.md"
# Columns of the role table in docs/bootstrap.md, by the Terraform resource each one means.
TABLE_COLUMNS = {
    "project": "project",
    "`<project>-pipelines`": "${google_storage_bucket.pipelines.name}",
    "`<project>-data`": "${google_storage_bucket.data.name}",
    "`<project>-models`": "${google_storage_bucket.models.name}",
    "`<project>-cloudbuild`": "${google_storage_bucket.cloudbuild[0].name}",
    "repository `pipelines`": "${google_artifact_registry_repository.pipelines.name}",
}


def granted_roles() -> dict[tuple[str, str], set[str]]:
    """{(service account resource, granted on): roles without 'roles/'} from the *_iam_member resources."""
    grants: dict[tuple[str, str], set[str]] = {}
    for resource_type, on in (
        ("google_project_iam_member", "project"),
        ("google_storage_bucket_iam_member", "bucket"),
        ("google_artifact_registry_repository_iam_member", "repository"),
    ):
        for body in resources(resource_type).values():
            where = "project" if on == "project" else body[on]
            for_each = body.get("for_each") or ""
            members_text = str(for_each) if body["member"] == "${each.value}" else body["member"]
            roles_text = for_each if body["role"] == "${each.value}" else body["role"]
            roles = set(re.findall(r"roles/([\w.]+)", str(roles_text)))
            roles |= set(re.findall(r"google_project_iam_custom_role\.(\w+)", str(roles_text)))
            for account in re.findall(r"google_service_account\.(\w+)(?:\[0\])?\.member", members_text):
                grants.setdefault((account, where), set()).update(roles)
    return grants


def documented_roles() -> dict[tuple[str, str], set[str]]:
    """The same from the table in docs/bootstrap.md (accounts by their resource name)."""
    account_resources = {body["account_id"]: name for name, body in resources("google_service_account").items()}
    rows = [line.strip() for line in BOOTSTRAP.read_text().splitlines() if line.strip().startswith("| `tfx-")]
    header = next(line.strip() for line in BOOTSTRAP.read_text().splitlines() if line.strip().startswith("| account |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")][1:]
    documented: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        account, *cells = (cell.strip() for cell in row.strip("|").split("|"))
        name = account_resources[re.match(r"`([\w-]+)`", account).group(1)]  # type: ignore[union-attr]
        for column, cell in zip(columns, cells, strict=True):
            roles = {role.replace("tfxModelPromoter", "promoter") for role in re.findall(r"`([\w.]+)`", cell)}
            if roles:
                documented[(name, TABLE_COLUMNS[column])] = roles
    return documented


def test_the_role_table_in_the_bootstrap_doc_is_the_terraform() -> None:
    assert documented_roles() == granted_roles()
