"""Key properties of infra/ (Terraform), read with python-hcl2: keyless identity, admission of
GitHub tokens, least-privilege roles, hardened buckets, and names that fit the configs."""

from __future__ import annotations

import re
import shutil
import subprocess

import hcl2
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
from tests.workflows.workflows import WORKFLOWS_DIR, evaluate

PIPELINE_NAME = yaml.safe_load((REPO_ROOT / "configs" / "base.yaml").read_text())["pipeline_name"]
REPOSITORY_CONDITION = "assertion.repository == '${var.github_repository}'"
REPOSITORY_ID_CONDITION = "assertion.repository_id == '${var.github_repository_id}'"
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
    assert set(providers) == {"ci", "plan", "deploy"}
    for name, provider in providers.items():
        condition = resolve_locals(provider["attribute_condition"])
        assert REPOSITORY_CONDITION in condition, name
        assert REPOSITORY_ID_CONDITION in condition, name
        assert "||" not in condition and "!" not in condition, name  # nothing may widen the condition
        assert scalar(provider["oidc"])["issuer_uri"] == "https://token.actions.githubusercontent.com"
        assert provider["attribute_mapping"]["google.subject"] == "assertion.sub"
        assert provider["attribute_mapping"]["attribute.repository_id"] == "assertion.repository_id"


def test_the_repository_id_is_required() -> None:
    repository_id = variables()["github_repository_id"]
    assert "default" not in repository_id  # terraform asks for it; an empty value fails validation
    (validation,) = repository_id["validation"]
    assert validation["condition"] == '${can(regex("^[0-9]+$", var.github_repository_id))}'
    assert locals_()["from_repository"] == f"{REPOSITORY_CONDITION} && {REPOSITORY_ID_CONDITION}"
    for example in ("dev", "prod"):
        text = (INFRA / f"{example}.tfvars.example").read_text()
        assert re.search(r'^github_repository_id\s+= "" # required: gh api repos/\S+ --jq \.id$', text, re.M), example


def test_each_pool_admits_one_workflow_file_from_main() -> None:
    local_values = locals_()
    assert (
        local_values["train_workflow"]
        == "${var.github_repository}/.github/workflows/train.yaml@${var.github_train_ref}"
    )
    assert local_values["promote_workflow"] == (
        "${var.github_repository}/.github/workflows/promote.yaml@${var.github_deploy_ref}"
    )
    assert (WORKFLOWS_DIR / "train.yaml").is_file() and (WORKFLOWS_DIR / "promote.yaml").is_file()
    assert (
        variables()["github_train_ref"]["default"] == variables()["github_deploy_ref"]["default"] == "refs/heads/main"
    )
    providers = resources("google_iam_workload_identity_pool_provider")
    pins = {
        "ci": ["assertion.ref == '${var.github_train_ref}'", "assertion.job_workflow_ref == '${local.train_workflow}'"],
        "plan": [
            "assertion.environment == '${local.plan_environment}'",
            "assertion.ref == '${var.github_deploy_ref}'",
            "assertion.job_workflow_ref == '${local.promote_workflow}'",
        ],
        "deploy": [
            "assertion.environment == '${var.github_deploy_environment}'",
            "assertion.ref == '${var.github_deploy_ref}'",
            "assertion.job_workflow_ref == '${local.promote_workflow}'",
        ],
    }
    for name, clauses in pins.items():
        condition = providers[name]["attribute_condition"]
        assert condition.split(" && ") == ["${local.from_repository}", *clauses], name
    assert local_values["plan_environment"] == "${var.github_deploy_environment}-plan"


def test_only_the_protected_environment_on_main_reaches_the_promoter() -> None:
    deploy = resources("google_iam_workload_identity_pool_provider")["deploy"]
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
    planner = bindings["planner_workload_identity"]
    assert planner["service_account_id"] == "${google_service_account.planner.name}"
    assert planner["member"] == (
        "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.plan[0].name}"
        "/attribute.environment/${local.plan_environment}"
    )
    trainer = bindings["trainer_workload_identity"]
    assert trainer["member"].startswith(
        "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.ci[0].name}/"
    )
    assert trainer["member"].endswith("/attribute.ref/${var.github_train_ref}")
    # Nothing else may be impersonated from a pool, and each pool reaches one account.
    pool_members = {
        name: body["member"] for name, body in bindings.items() if "workload_identity_pool" in body["member"]
    }
    assert set(pool_members) == {"promoter_workload_identity", "planner_workload_identity", "trainer_workload_identity"}
    pools = [re.search(r"workload_identity_pool\.(\w+)", member).group(1) for member in pool_members.values()]  # type: ignore[union-attr]
    assert sorted(pools) == ["ci", "deploy", "plan"]


def test_the_workflows_authenticate_where_the_pools_admit_them() -> None:
    """promote.yaml's plan job runs in '<environment>-plan' with the planner's variables, its apply job
    in the environment itself with the promoter's, for the environments the tfvars examples name."""
    from tests.workflows.workflows import jobs, load_workflow, steps

    promote = jobs(load_workflow(WORKFLOWS_DIR / "promote.yaml"))
    deploy_environment = {
        example: hcl2.loads((INFRA / f"{example}.tfvars.example").read_text())["github_deploy_environment"]
        for example in ("dev", "prod")
    }
    for job_id, prefix in (("plan", "GCP_PLAN_WIF_PROVIDER"), ("apply", "GCP_DEPLOY_WIF_PROVIDER")):
        job = promote[job_id]
        for example, environment in deploy_environment.items():
            chosen = evaluate(job["environment"].strip()[3:-2], {"inputs": {"environment": example}})
            assert chosen == (f"{environment}-plan" if job_id == "plan" else environment), (job_id, example)
        (auth,) = [step for step in steps(job) if step.get("uses", "").startswith("google-github-actions/auth@")]
        assert auth["with"]["workload_identity_provider"] == f"${{{{ vars.{prefix} }}}}"


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


# Moving an endpoint's traffic: deploying, undeploying, changing the split (endpoints.update, which
# mutateDeployedModel also checks), creating or deleting an endpoint, its IAM, shared deployments.
MOVES_TRAFFIC = {
    "aiplatform.endpoints.create",
    "aiplatform.endpoints.delete",
    "aiplatform.endpoints.deploy",
    "aiplatform.endpoints.undeploy",
    "aiplatform.endpoints.update",
    "aiplatform.endpoints.setIamPolicy",
    "aiplatform.deploymentResourcePools.create",
    "aiplatform.deploymentResourcePools.delete",
    "aiplatform.deploymentResourcePools.update",
}
# Moving an alias of an existing version (models.mergeVersionAliases checks models.update), changing
# its labels (models.patch), deleting a version a rollback needs.
MOVES_ALIASES = {"aiplatform.models.update", "aiplatform.models.delete", "aiplatform.models.setIamPolicy"}
RUNTIME_ACCOUNTS = {"pipelines", "dataflow", "trainer", "cloudbuild"}
# The predefined roles the runtime accounts hold on the project, with the services of the permissions
# each holds (gcloud iam roles describe ROLE): none of them is Vertex AI's. A role not listed here
# fails the test below until someone has looked.
PREDEFINED_RUNTIME_ROLES = {
    "compute.networkViewer": {"compute", "resourcemanager"},
    "dataflow.developer": {
        "cloudbuild",
        "compute",
        "dataflow",
        "recommender",
        "remotebuildexecution",
        "resourcemanager",
    },
    "dataflow.worker": {"autoscaling", "compute", "dataflow", "logging", "monitoring", "storage"},
    "cloudbuild.builds.editor": {"cloudbuild", "remotebuildexecution", "resourcemanager"},
    "logging.logWriter": {"logging"},
}


def custom_roles() -> dict[str, dict[str, object]]:
    """{resource name: {"role_id", "permissions"}} of the custom roles in infra/."""
    return {
        name: {"role_id": body["role_id"], "permissions": set(body["permissions"])}
        for name, body in resources("google_project_iam_custom_role").items()
    }


def project_roles(account: str) -> set[str]:
    """Roles `google_service_account.<account>` holds on the project: predefined ones without 'roles/',
    custom ones by resource name."""
    roles = granted_roles().get((account, "project"), set())
    return roles


def permissions_of(account: str) -> set[str]:
    """Every permission the account's custom roles give it on the project."""
    custom = custom_roles()
    return {
        permission for role in project_roles(account) if role in custom for permission in custom[role]["permissions"]
    }


def test_the_custom_roles_hold_vertex_ai_permissions_only() -> None:
    roles = custom_roles()
    assert {role["role_id"] for role in roles.values()} == {
        "tfxPipelineRunner",
        "tfxPipelineSubmitter",
        "tfxPromotionPlanner",
        "tfxModelPromoter",
    }
    for name, role in roles.items():
        assert all(permission.startswith("aiplatform.") for permission in role["permissions"]), name
        assert not any("*" in permission for permission in role["permissions"]), name


def test_runtime_identities_cannot_move_endpoint_traffic_or_aliases() -> None:
    """The pipeline run, the Dataflow workers, the CI trainer and Cloud Build: no permission that
    deploys, undeploys or re-splits an endpoint, or moves an alias of an existing version."""
    for account in RUNTIME_ACCOUNTS:
        roles = project_roles(account)
        assert roles, account
        predefined = roles - set(custom_roles())
        assert predefined <= set(
            PREDEFINED_RUNTIME_ROLES
        ), f"{account}: vet {predefined - set(PREDEFINED_RUNTIME_ROLES)}"
        assert not any("aiplatform" in PREDEFINED_RUNTIME_ROLES[role] for role in predefined), account
        permissions = permissions_of(account)
        assert not permissions & MOVES_TRAFFIC, f"{account}: {permissions & MOVES_TRAFFIC}"
        assert not permissions & MOVES_ALIASES, f"{account}: {permissions & MOVES_ALIASES}"
        assert not any(permission.startswith("aiplatform.endpoints.") for permission in permissions), account
    # What the pipeline needs to register a version: upload it (with the alias candidate), read the
    # model it becomes a version of, list versions for the baseline.
    assert {"aiplatform.models.upload", "aiplatform.models.get", "aiplatform.models.list"} <= permissions_of(
        "pipelines"
    )
    assert permissions_of("trainer") == {
        "aiplatform.metadataStores.get",
        "aiplatform.pipelineJobs.create",
        "aiplatform.pipelineJobs.get",
    }
    assert permissions_of("dataflow") == permissions_of("cloudbuild") == set()


def test_only_the_promoter_can_move_traffic_and_aliases() -> None:
    custom = custom_roles()
    holders = {name for name, role in custom.items() if role["permissions"] & (MOVES_TRAFFIC | MOVES_ALIASES)}
    assert holders == {"promoter"}
    granted_to = {account for (account, where), roles in granted_roles().items() if "promoter" in roles}
    assert granted_to == {"promoter"}
    assert {
        "aiplatform.endpoints.deploy",
        "aiplatform.endpoints.undeploy",
        "aiplatform.endpoints.update",
        "aiplatform.models.update",
    } <= custom["promoter"]["permissions"]
    # No predefined Vertex AI role anywhere (roles/aiplatform.user deploys, undeploys and moves aliases).
    assert not any(role.startswith("aiplatform.") for roles in granted_roles().values() for role in roles)
    # Nobody may act as the promoter or the planner: they are reached from GitHub's pools only.
    for body in resources("google_service_account_iam_member").values():
        if body["service_account_id"] in (
            "${google_service_account.promoter.name}",
            "${google_service_account.planner.name}",
        ):
            assert body["role"] == "roles/iam.workloadIdentityUser"


def test_the_planner_can_only_read() -> None:
    planner = custom_roles()["promotion_planner"]["permissions"]
    assert planner == {"aiplatform.endpoints.get", "aiplatform.models.get", "aiplatform.models.list"}
    assert project_roles("planner") == {"promotion_planner"}
    assert not [grant for grant in granted_roles() if grant[0] == "planner" and grant[1] != "project"]


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
    # Nor through the project: no storage role there (their project roles, tfxPipelineRunner,
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

        assert runner["pipeline_root"] == f"gs://{name(local_values['pipeline_bucket'])}/{PIPELINE_NAME}"
        assert data["path"] == f"gs://{name(local_values['data_bucket'])}/{PIPELINE_NAME}"
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

    def variables_of(output: str) -> set[str]:
        return set(re.findall(r"'(GCP_[A-Z_]+)':", values[output]["value"]))

    assert used("train.yaml") == variables_of("github_repository_variables")
    # The plan job's environment ('<environment>-plan') and the approved job's.
    plan, apply = variables_of("github_plan_environment_variables"), variables_of("github_environment_variables")
    assert plan == {"GCP_PLAN_WIF_PROVIDER", "GCP_PLANNER_SA"}
    assert used("promote.yaml") == plan | apply
    assert used("ci.yaml") == set()
    for output in ("workload_identity_provider", "trainer_service_account", "deploy_workload_identity_provider",
                   "promoter_service_account", "plan_workload_identity_provider", "planner_service_account",
                   "github_plan_environment", "pipeline_bucket", "image_repository", "build_bucket",
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
# Columns of the identity table in docs/bootstrap.md that list roles, by the Terraform resource each
# one means; the others are read by the tests below.
TABLE_COLUMNS = {
    "project": "project",
    "`<project>-pipelines`": "${google_storage_bucket.pipelines.name}",
    "`<project>-data`": "${google_storage_bucket.data.name}",
    "`<project>-models`": "${google_storage_bucket.models.name}",
    "`<project>-cloudbuild`": "${google_storage_bucket.cloudbuild[0].name}",
    "repository `pipelines`": "${google_artifact_registry_repository.pipelines.name}",
}
USED_BY, VERTEX_PERMISSIONS, ACTS_AS = "used by", "Vertex AI permissions (`aiplatform.` …)", "acts as"


def granted_roles() -> dict[tuple[str, str], set[str]]:
    """{(service account resource, granted on): roles} from the *_iam_member resources: predefined
    roles without 'roles/', custom roles by resource name."""
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


def identity_table() -> dict[str, dict[str, str]]:
    """{account resource name: {column: cell}} of the identity table in docs/bootstrap.md."""
    account_resources = {body["account_id"]: name for name, body in resources("google_service_account").items()}
    lines = [line.strip() for line in BOOTSTRAP.read_text().splitlines()]
    (header,) = [line for line in lines if line.startswith("| account |")]
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    table = {}
    for row in (line for line in lines if line.startswith("| `tfx-")):
        cells = dict(zip(columns, (cell.strip() for cell in row.strip("|").split("|")), strict=True))
        account = re.match(r"`([\w-]+)`", cells["account"]).group(1)  # type: ignore[union-attr]
        table[account_resources[account]] = cells
    return table


def documented_roles() -> dict[tuple[str, str], set[str]]:
    """The roles in the identity table, as granted_roles() gives them."""
    custom = {body["role_id"]: name for name, body in resources("google_project_iam_custom_role").items()}
    documented: dict[tuple[str, str], set[str]] = {}
    for account, cells in identity_table().items():
        for column, on in TABLE_COLUMNS.items():
            roles = {custom.get(role, role) for role in re.findall(r"`([\w.]+)`", cells[column])}
            if roles:
                documented[(account, on)] = roles
    return documented


def expand(cell: str) -> set[str]:
    """`models.{get,list}` and `pipelineJobs.get` in a cell -> aiplatform.models.get, ... ."""
    permissions = set()
    for item in re.findall(r"`([\w.{},]+)`", cell):
        stem, _, rest = item.partition("{")
        names = rest.rstrip("}").split(",") if rest else [""]
        permissions |= {f"aiplatform.{stem}{name}" for name in names}
    return permissions


def test_the_identity_table_in_the_bootstrap_doc_is_the_terraform() -> None:
    table = identity_table()
    assert set(table) == {body for body in resources("google_service_account")}
    assert documented_roles() == granted_roles()
    for account, cells in table.items():
        assert expand(cells[VERTEX_PERMISSIONS]) == permissions_of(account), account
        if not permissions_of(account):
            assert cells[VERTEX_PERMISSIONS] == "none", account


def test_the_identity_table_says_who_acts_as_whom_and_who_comes_from_github() -> None:
    account_ids = {name: body["account_id"] for name, body in resources("google_service_account").items()}
    acts_as: dict[str, set[str]] = {}
    from_pool: dict[str, set[str]] = {}
    pool_ids = {
        name: body["workload_identity_pool_id"] for name, body in resources("google_iam_workload_identity_pool").items()
    }
    for body in resources("google_service_account_iam_member").values():
        target = re.search(r"google_service_account\.(\w+)", body["service_account_id"]).group(1)  # type: ignore[union-attr]
        if body["role"] == "roles/iam.serviceAccountUser":
            member = re.search(r"google_service_account\.(\w+)", body["member"]).group(1)  # type: ignore[union-attr]
            acts_as.setdefault(member, set()).add(account_ids[target])
        if body["role"] == "roles/iam.workloadIdentityUser":
            pool = re.search(r"workload_identity_pool\.(\w+)", body["member"]).group(1)  # type: ignore[union-attr]
            from_pool.setdefault(target, set()).add(pool_ids[pool])
    for account, cells in identity_table().items():
        assert set(re.findall(r"`([\w-]+)`", cells[ACTS_AS])) == acts_as.get(account, set()), account
        assert set(re.findall(r"`(github-[a-z]+)`", cells[USED_BY])) == from_pool.get(account, set()), account


def test_names_come_from_the_pipeline_name_variable() -> None:
    """Nothing in infra/ names the example pipeline: outputs and labels follow var.pipeline_name, which
    is configs/base.yaml's pipeline_name (the tfvars examples leave it to fill in)."""
    values = outputs()
    assert values["pipeline_root"]["value"] == "gs://${google_storage_bucket.pipelines.name}/${var.pipeline_name}"
    assert values["data_path"]["value"] == "gs://${google_storage_bucket.data.name}/${var.pipeline_name}"
    assert values["pipeline_image"]["value"] == "${local.image_registry}/${var.pipeline_name}"
    (validation,) = variables()["pipeline_name"]["validation"]
    assert "default" not in variables()["pipeline_name"]
    assert re.fullmatch(validation["condition"].split('"')[1], PIPELINE_NAME)
    assert PIPELINE_NAME not in text_of_all_files()
    for example in ("dev", "prod"):
        text = (INFRA / f"{example}.tfvars.example").read_text()
        assert re.search(r'^pipeline_name\s+= "" # required: pipeline_name in configs/base.yaml$', text, re.M)
