# Everything the workflows (GitHub variables) and configs/vertex-<env>.yaml need; see
# docs/bootstrap.md for where each value goes.

output "project_id" {
  description = "runner.project; GitHub variable GCP_PROJECT_ID (dev)."
  value       = var.project
}

output "project_number" {
  description = "For runner.network (projects/<number>/global/networks/<name>) and service agent names."
  value       = data.google_project.this.number
}

output "region" {
  description = "runner.region; GitHub variable GCP_REGION (dev)."
  value       = var.region
}

output "pipeline_bucket" {
  description = "The pipeline root's bucket."
  value       = google_storage_bucket.pipelines.name
}

output "pipeline_root" {
  description = "runner.pipeline_root."
  value       = "gs://${google_storage_bucket.pipelines.name}/${var.pipeline_name}"
}

output "data_path" {
  description = "data.path: copy the training CSV files here."
  value       = "gs://${google_storage_bucket.data.name}/${var.pipeline_name}"
}

output "models_bucket" {
  description = "registry.models_bucket: registered SavedModels (create-only for the pipeline)."
  value       = "gs://${google_storage_bucket.models.name}"
}

output "serving_image_repository" {
  description = "registry.serving_image without its digest: tensorflow/serving through the Docker Hub mirror; append @sha256:<digest> (docs/vertex.md, \"The serving runtime\")."
  value       = local.serving_image_repository
}

output "state_bucket" {
  description = "Bucket for this configuration's remote state (backend \"gcs\")."
  value       = google_storage_bucket.tfstate.name
}

output "image_repository" {
  description = "Artifact Registry path of the pipeline images; GitHub variable GCP_IMAGE_REPOSITORY (dev)."
  value       = local.image_registry
}

output "pipeline_image" {
  description = "The pipeline image without its digest: `make image` builds it, named after the pipeline."
  value       = "${local.image_registry}/${var.pipeline_name}"
}

output "pipeline_service_account" {
  description = "runner.service_account."
  value       = google_service_account.pipelines.email
}

output "dataflow_service_account" {
  description = "runner.dataflow.service_account."
  value       = google_service_account.dataflow.email
}

output "dataflow_subnetwork" {
  description = "runner.dataflow.subnetwork."
  value       = "regions/${google_compute_subnetwork.dataflow.region}/subnetworks/${google_compute_subnetwork.dataflow.name}"
}

output "workload_identity_provider" {
  description = "GitHub variable GCP_WIF_PROVIDER: the provider train.yaml authenticates through (null without enable_ci_training)."
  value       = one(google_iam_workload_identity_pool_provider.ci[*].name)
}

output "trainer_service_account" {
  description = "GitHub variable GCP_TRAINER_SA."
  value       = one(google_service_account.trainer[*].email)
}

output "build_service_account" {
  description = "GitHub variable GCP_BUILD_SA: the account Cloud Build runs as."
  value       = one(google_service_account.cloudbuild[*].email)
}

output "build_bucket" {
  description = "GitHub variable GCP_BUILD_BUCKET: Cloud Build sources and logs."
  value       = one(google_storage_bucket.cloudbuild[*].name)
}

output "plan_workload_identity_provider" {
  description = "Environment variable GCP_PLAN_WIF_PROVIDER of the GitHub environment <var.github_deploy_environment>-plan."
  value       = one(google_iam_workload_identity_pool_provider.plan[*].name)
}

output "planner_service_account" {
  description = "Environment variable GCP_PLANNER_SA of the GitHub environment <var.github_deploy_environment>-plan."
  value       = google_service_account.planner.email
}

output "deploy_workload_identity_provider" {
  description = "Environment variable GCP_DEPLOY_WIF_PROVIDER of the GitHub environment var.github_deploy_environment."
  value       = one(google_iam_workload_identity_pool_provider.deploy[*].name)
}

output "promoter_service_account" {
  description = "Environment variable GCP_PROMOTER_SA of the GitHub environment var.github_deploy_environment."
  value       = google_service_account.promoter.email
}

output "github_repository_variables" {
  description = "Repository variables for train.yaml (set them from the dev project's outputs)."
  value = var.enable_ci_training ? {
    GCP_PROJECT_ID       = var.project
    GCP_REGION           = var.region
    GCP_WIF_PROVIDER     = google_iam_workload_identity_pool_provider.ci[0].name
    GCP_TRAINER_SA       = google_service_account.trainer[0].email
    GCP_BUILD_SA         = google_service_account.cloudbuild[0].email
    GCP_BUILD_BUCKET     = google_storage_bucket.cloudbuild[0].name
    GCP_IMAGE_REPOSITORY = local.image_registry
  } : {}
}

output "github_plan_environment" {
  description = "The GitHub environment of promote.yaml's plan job (no reviewers: its identity can only read)."
  value       = local.plan_environment
}

output "github_plan_environment_variables" {
  description = "Variables of the GitHub environment <var.github_deploy_environment>-plan, for promote.yaml's plan job."
  value = var.enable_ci_promotion ? {
    GCP_PLAN_WIF_PROVIDER = google_iam_workload_identity_pool_provider.plan[0].name
    GCP_PLANNER_SA        = google_service_account.planner.email
  } : {}
}

output "github_environment_variables" {
  description = "Variables of the GitHub environment var.github_deploy_environment, for promote.yaml's approved job."
  value = var.enable_ci_promotion ? {
    GCP_DEPLOY_WIF_PROVIDER = google_iam_workload_identity_pool_provider.deploy[0].name
    GCP_PROMOTER_SA         = google_service_account.promoter.email
  } : {}
}
