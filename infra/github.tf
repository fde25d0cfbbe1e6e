# Workload Identity Federation for GitHub Actions: no service account keys anywhere.
#
# Every pool admits only tokens of var.github_repository with its numeric ID, from one workflow file
# on one branch (assertion.job_workflow_ref, which names the file and the ref it ran from), so a
# workflow added or edited on a branch gets nothing:
#   github-ci      train.yaml on var.github_train_ref (main); may act as tfx-ci-trainer (dev only).
#   github-plan    promote.yaml on var.github_deploy_ref (main), jobs in the GitHub environment
#                  "<var.github_deploy_environment>-plan" (no reviewers); may act as
#                  tfx-promotion-planner, which can only read the registry and the endpoint.
#   github-deploy  promote.yaml on main, jobs in the protected GitHub environment
#                  var.github_deploy_environment ("production": required reviewers); may act as
#                  tfx-promoter, the one identity that can change endpoint traffic.
# A principalSet names a pool, not a provider: separate pools keep a planning job from ever
# becoming the promoter.

locals {
  # assertion.job_workflow_ref: "<owner>/<name>/<path of the workflow file>@<ref>".
  train_workflow   = "${var.github_repository}/.github/workflows/train.yaml@${var.github_train_ref}"
  promote_workflow = "${var.github_repository}/.github/workflows/promote.yaml@${var.github_deploy_ref}"
  plan_environment = "${var.github_deploy_environment}-plan"
}

resource "google_iam_workload_identity_pool" "ci" {
  count = local.ci_count

  project                   = var.project
  workload_identity_pool_id = "github-ci"
  display_name              = "GitHub Actions: training"
  description               = "train.yaml of ${var.github_repository} on ${var.github_train_ref}"
  depends_on                = [google_project_service.services]
}

resource "google_iam_workload_identity_pool_provider" "ci" {
  count = local.ci_count

  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.ci[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC (train.yaml)"
  attribute_condition                = "${local.from_repository} && assertion.ref == '${var.github_train_ref}' && assertion.job_workflow_ref == '${local.train_workflow}'"
  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.repository_id"    = "assertion.repository_id"
    "attribute.ref"              = "assertion.ref"
    "attribute.job_workflow_ref" = "assertion.job_workflow_ref"
  }

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "trainer_workload_identity" {
  count = local.ci_count

  service_account_id = google_service_account.trainer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.ci[0].name}/attribute.ref/${var.github_train_ref}"
}

resource "google_iam_workload_identity_pool" "plan" {
  count = local.deploy_count

  project                   = var.project
  workload_identity_pool_id = "github-plan"
  display_name              = "GitHub Actions: promotion plans"
  description               = "promote.yaml of ${var.github_repository} in the ${local.plan_environment} environment"
  depends_on                = [google_project_service.services]
}

resource "google_iam_workload_identity_pool_provider" "plan" {
  count = local.deploy_count

  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.plan[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub OIDC (${local.plan_environment})"
  attribute_condition                = "${local.from_repository} && assertion.environment == '${local.plan_environment}' && assertion.ref == '${var.github_deploy_ref}' && assertion.job_workflow_ref == '${local.promote_workflow}'"
  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.repository_id"    = "assertion.repository_id"
    "attribute.ref"              = "assertion.ref"
    "attribute.job_workflow_ref" = "assertion.job_workflow_ref"
    "attribute.environment"      = "assertion.environment"
  }

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "planner_workload_identity" {
  count = local.deploy_count

  service_account_id = google_service_account.planner.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.plan[0].name}/attribute.environment/${local.plan_environment}"
}

resource "google_iam_workload_identity_pool" "deploy" {
  count = local.deploy_count

  project                   = var.project
  workload_identity_pool_id = "github-deploy"
  display_name              = "GitHub Actions: promotion"
  description               = "promote.yaml of ${var.github_repository} in the ${var.github_deploy_environment} environment"
  depends_on                = [google_project_service.services]
}

resource "google_iam_workload_identity_pool_provider" "deploy" {
  count = local.deploy_count

  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.deploy[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC (${var.github_deploy_environment})"
  attribute_condition                = "${local.from_repository} && assertion.environment == '${var.github_deploy_environment}' && assertion.ref == '${var.github_deploy_ref}' && assertion.job_workflow_ref == '${local.promote_workflow}'"
  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.repository_id"    = "assertion.repository_id"
    "attribute.ref"              = "assertion.ref"
    "attribute.job_workflow_ref" = "assertion.job_workflow_ref"
    "attribute.environment"      = "assertion.environment"
  }

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account_iam_member" "promoter_workload_identity" {
  count = local.deploy_count

  service_account_id = google_service_account.promoter.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.deploy[0].name}/attribute.environment/${var.github_deploy_environment}"
}
