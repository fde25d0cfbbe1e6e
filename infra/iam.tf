# Service accounts and what each may do. No account gets a basic role (owner, editor, viewer) and
# none has a key: people use their own login, GitHub Actions uses Workload Identity (github.tf).
#
#   tfx-pipelines   the identity of every pipeline run and of the Trainer's training job
#   tfx-dataflow    the Dataflow workers started by the Beam steps
#   tfx-ci-trainer  GitHub Actions train.yaml: builds the image, submits runs (dev only)
#   tfx-cloud-build the Cloud Build job that builds the image (dev only)
#   tfx-promoter    GitHub Actions promote.yaml: Model Registry aliases, endpoint traffic

resource "google_service_account" "pipelines" {
  project      = var.project
  account_id   = "tfx-pipelines"
  display_name = "TFX pipeline runs (${var.environment})"
  depends_on   = [google_project_service.services]
}

resource "google_service_account" "dataflow" {
  project      = var.project
  account_id   = "tfx-dataflow"
  display_name = "TFX Dataflow workers (${var.environment})"
  depends_on   = [google_project_service.services]
}

resource "google_service_account" "promoter" {
  project      = var.project
  account_id   = "tfx-promoter"
  display_name = "Model promotion from GitHub Actions (${var.environment})"
  depends_on   = [google_project_service.services]
}

resource "google_service_account" "trainer" {
  count        = local.ci_count
  project      = var.project
  account_id   = "tfx-ci-trainer"
  display_name = "Image builds and pipeline runs from GitHub Actions (${var.environment})"
  depends_on   = [google_project_service.services]
}

resource "google_service_account" "cloudbuild" {
  count        = local.ci_count
  project      = var.project
  account_id   = "tfx-cloud-build"
  display_name = "Cloud Build of the pipeline image (${var.environment})"
  depends_on   = [google_project_service.services]
}

# ---- Pipeline runs -------------------------------------------------------------------------
# Vertex AI jobs (the run, the training job), Dataflow jobs, and the subnetwork lookup that
# Dataflow does at job start.
resource "google_project_iam_member" "pipelines" {
  for_each = toset(["roles/aiplatform.user", "roles/compute.networkViewer"])

  project = var.project
  role    = each.value
  member  = google_service_account.pipelines.member
}

resource "google_project_iam_member" "pipelines_dataflow" {
  #checkov:skip=CKV_GCP_49:roles/dataflow.developer is the narrowest predefined role that creates Dataflow jobs; the workers run as tfx-dataflow, which this account may act as (pipelines_act_as_dataflow) and no other.
  project = var.project
  role    = "roles/dataflow.developer"
  member  = google_service_account.pipelines.member
}

# The Trainer starts its training job as the run's own account, Beam steps start Dataflow jobs
# as tfx-dataflow.
resource "google_service_account_iam_member" "pipelines_act_as_itself" {
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.pipelines.member
}

resource "google_service_account_iam_member" "pipelines_act_as_dataflow" {
  service_account_id = google_service_account.dataflow.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.pipelines.member
}

# ---- Dataflow workers ------------------------------------------------------------------------
resource "google_project_iam_member" "dataflow_worker" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = google_service_account.dataflow.member
}

# ---- Buckets and images ----------------------------------------------------------------------
resource "google_storage_bucket_iam_member" "pipeline_root" {
  for_each = {
    pipelines = google_service_account.pipelines.member
    dataflow  = google_service_account.dataflow.member
  }

  bucket = google_storage_bucket.pipelines.name
  role   = "roles/storage.objectAdmin"
  member = each.value
}

resource "google_storage_bucket_iam_member" "data_readers" {
  for_each = {
    pipelines = google_service_account.pipelines.member
    dataflow  = google_service_account.dataflow.member
  }

  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = each.value
}

# The models bucket: ModelRegistration (as tfx-pipelines) creates objects and reads them back (a
# retried step compares what is there instead of writing again); neither role has
# storage.objects.delete, without which an existing object can be neither deleted nor replaced.
# tfx-dataflow gets nothing here. The promoter and var.model_readers may read.
resource "google_storage_bucket_iam_member" "models_writer" {
  for_each = toset(["roles/storage.objectCreator", "roles/storage.objectViewer"])

  bucket = google_storage_bucket.models.name
  role   = each.value
  member = google_service_account.pipelines.member
}

resource "google_storage_bucket_iam_member" "models_readers" {
  for_each = toset(concat([google_service_account.promoter.member], var.model_readers))

  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = each.value
}

# Dataflow workers pull the pipeline image (--sdk_container_image); Vertex AI's own service
# agents pull it in this project without a grant. var.image_readers: other projects' pullers.
resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = toset(concat([google_service_account.dataflow.member], var.image_readers))

  project    = var.project
  location   = google_artifact_registry_repository.pipelines.location
  repository = google_artifact_registry_repository.pipelines.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

# ---- CI trainer (train.yaml) -----------------------------------------------------------------
# Create Vertex AI pipeline runs, start Cloud Builds.
resource "google_project_iam_member" "trainer" {
  count   = local.ci_count
  project = var.project
  role    = "roles/aiplatform.user"
  member  = google_service_account.trainer[0].member
}

resource "google_project_iam_member" "trainer_cloudbuild" {
  #checkov:skip=CKV_GCP_49:roles/cloudbuild.builds.editor is the narrowest predefined role that creates builds; train.yaml's builds run as tfx-cloud-build (actAs on that account only). The project's default build account must hold no broad roles (docs/bootstrap.md, step 2).
  count   = local.ci_count
  project = var.project
  role    = "roles/cloudbuild.builds.editor"
  member  = google_service_account.trainer[0].member
}

# Runs are submitted to run as tfx-pipelines, builds to run as tfx-cloud-build.
resource "google_service_account_iam_member" "trainer_act_as_pipelines" {
  count              = local.ci_count
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.trainer[0].member
}

resource "google_service_account_iam_member" "trainer_act_as_cloudbuild" {
  count              = local.ci_count
  service_account_id = google_service_account.cloudbuild[0].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.trainer[0].member
}

# `gcloud builds submit` checks the staging bucket (storage.buckets.get), uploads the source and
# streams the build log from it.
resource "google_storage_bucket_iam_member" "trainer_build_bucket" {
  for_each = var.enable_ci_training ? toset(["roles/storage.legacyBucketReader", "roles/storage.objectCreator", "roles/storage.objectViewer"]) : toset([])

  bucket = google_storage_bucket.cloudbuild[0].name
  role   = each.value
  member = google_service_account.trainer[0].member
}

# Submitting checks that the pipeline root's bucket exists (storage.buckets.get), nothing more.
resource "google_storage_bucket_iam_member" "trainer_pipeline_root" {
  count  = local.ci_count
  bucket = google_storage_bucket.pipelines.name
  role   = "roles/storage.legacyBucketReader"
  member = google_service_account.trainer[0].member
}

# Look up the digest of the image it built (and reuse an image already built for the commit).
resource "google_artifact_registry_repository_iam_member" "trainer_reader" {
  count      = local.ci_count
  project    = var.project
  location   = google_artifact_registry_repository.pipelines.location
  repository = google_artifact_registry_repository.pipelines.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.trainer[0].member
}

# ---- Cloud Build -----------------------------------------------------------------------------
resource "google_artifact_registry_repository_iam_member" "cloudbuild_writer" {
  count      = local.ci_count
  project    = var.project
  location   = google_artifact_registry_repository.pipelines.location
  repository = google_artifact_registry_repository.pipelines.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.cloudbuild[0].member
}

# Read the uploaded source, write the build log.
resource "google_storage_bucket_iam_member" "cloudbuild_bucket" {
  count  = local.ci_count
  bucket = google_storage_bucket.cloudbuild[0].name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.cloudbuild[0].member
}

resource "google_project_iam_member" "cloudbuild_logs" {
  count   = local.ci_count
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.cloudbuild[0].member
}

# ---- Promoter (promote.yaml) -----------------------------------------------------------------
# Move aliases between Model Registry versions and traffic between deployed models. No predefined
# role is that narrow (roles/aiplatform.user can also run jobs and create datasets). Long-running
# operations are polled with the resource's own get permission.
resource "google_project_iam_custom_role" "promoter" {
  project     = var.project
  role_id     = "tfxModelPromoter"
  title       = "TFX model promoter"
  description = "Model Registry aliases, endpoint deploy/undeploy and traffic split, a smoke prediction"
  permissions = [
    "aiplatform.endpoints.create",
    "aiplatform.endpoints.deploy",
    "aiplatform.endpoints.get",
    "aiplatform.endpoints.list",
    "aiplatform.endpoints.predict",
    "aiplatform.endpoints.undeploy",
    "aiplatform.endpoints.update",
    "aiplatform.models.get",
    "aiplatform.models.list",
    "aiplatform.models.update",
  ]
  depends_on = [google_project_service.services]
}

resource "google_project_iam_member" "promoter" {
  project = var.project
  role    = google_project_iam_custom_role.promoter.id
  member  = google_service_account.promoter.member
}
