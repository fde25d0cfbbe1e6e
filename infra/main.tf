data "google_project" "this" {
  project_id = var.project
}

locals {
  # The configs refer to these names (configs/vertex-<env>.yaml); docs/bootstrap.md says where.
  pipeline_bucket = "${var.project}-pipelines"
  data_bucket     = "${var.project}-data"
  models_bucket   = "${var.project}-models"
  build_bucket    = "${var.project}-cloudbuild"
  state_bucket    = "${var.project}-tfstate"
  image_registry  = "${var.region}-docker.pkg.dev/${var.project}/${var.artifact_repository}"
  ci_count        = var.enable_ci_training ? 1 : 0
  deploy_count    = var.enable_ci_promotion ? 1 : 0

  # registry.serving_image in configs/vertex-*.yaml is this path, then @sha256:<digest>.
  serving_image_repository = "${var.region}-docker.pkg.dev/${var.project}/${var.dockerhub_repository}/tensorflow/serving"

  # Admission into every identity pool: tokens of this repository only, by name and by numeric ID
  # (a repository deleted and re-created under the same name by someone else has another ID).
  from_repository = "assertion.repository == '${var.github_repository}' && assertion.repository_id == '${var.github_repository_id}'"

  services = [
    "aiplatform.googleapis.com",           # Vertex AI Pipelines, Training, Model Registry, endpoints
    "artifactregistry.googleapis.com",     # the pipeline image, the serving image's mirror
    "cloudbuild.googleapis.com",           # builds the image (no Docker on the runners)
    "cloudresourcemanager.googleapis.com", # project lookups by the SDKs and Terraform
    "compute.googleapis.com",              # Dataflow workers, the network
    "dataflow.googleapis.com",             # the Beam steps
    "iam.googleapis.com",                  # service accounts, Workload Identity pools
    "iamcredentials.googleapis.com",       # impersonation from GitHub Actions
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com", # token exchange for Workload Identity Federation
  ]
}

resource "google_project_service" "services" {
  for_each = toset(local.services)

  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

# Object writes and bucket administration in Cloud Audit Logs: the record of who wrote artifacts
# and models (instead of legacy usage logs, see storage.tf). Object reads (DATA_READ) are left
# out: every pipeline step reads many objects and the volume would dominate logging costs.
resource "google_project_iam_audit_config" "storage" {
  project = var.project
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "ADMIN_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
