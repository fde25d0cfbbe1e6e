# Workload Identity Federation for GitHub Actions: no service account keys anywhere.
#
# Two pools, so that what admits a token also decides what it may become:
#   github-ci      any workflow of var.github_repository is admitted; only jobs on
#                  var.github_train_ref (main) may act as tfx-ci-trainer (train.yaml).
#   github-deploy  only jobs of var.github_repository that run in the protected GitHub environment
#                  var.github_deploy_environment ("production": required reviewers) from
#                  var.github_deploy_ref are admitted; they may act as tfx-promoter (promote.yaml).
# A principalSet names a pool, not a provider: with one pool, a binding for the promoter could
# not tell a production job from any other job of the repository.

resource "google_iam_workload_identity_pool" "ci" {
  count = local.ci_count

  project                   = var.project
  workload_identity_pool_id = "github-ci"
  display_name              = "GitHub Actions: training"
  description               = "Workflows of ${var.github_repository}"
  depends_on                = [google_project_service.services]
}

resource "google_iam_workload_identity_pool_provider" "ci" {
  count = local.ci_count

  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.ci[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC"
  attribute_condition                = local.from_repository
  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
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

resource "google_iam_workload_identity_pool" "deploy" {
  count = local.deploy_count

  project                   = var.project
  workload_identity_pool_id = "github-deploy"
  display_name              = "GitHub Actions: promotion"
  description               = "Jobs of ${var.github_repository} in the ${var.github_deploy_environment} environment"
  depends_on                = [google_project_service.services]
}

resource "google_iam_workload_identity_pool_provider" "deploy" {
  count = local.deploy_count

  project                            = var.project
  workload_identity_pool_id          = google_iam_workload_identity_pool.deploy[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github"
  display_name                       = "GitHub Actions OIDC (${var.github_deploy_environment})"
  attribute_condition                = "${local.from_repository} && assertion.environment == '${var.github_deploy_environment}' && assertion.ref == '${var.github_deploy_ref}'"
  attribute_mapping = {
    "google.subject"        = "assertion.sub"
    "attribute.repository"  = "assertion.repository"
    "attribute.environment" = "assertion.environment"
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
