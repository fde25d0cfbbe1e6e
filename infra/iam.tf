# Service accounts and what each may do (the table in docs/bootstrap.md, "Who can do what", is this
# file; tests/infra keeps them equal). No account gets a basic role (owner, editor, viewer) or
# roles/aiplatform.user, and none has a key: people use their own login, GitHub Actions uses
# Workload Identity (github.tf).
#
#   tfx-pipelines          the identity of every pipeline run and of the Trainer's training job
#   tfx-dataflow           the Dataflow workers started by the Beam steps
#   tfx-ci-trainer         GitHub Actions train.yaml: builds the image, submits runs (dev only)
#   tfx-cloud-build        the Cloud Build job that builds the image (dev only)
#   tfx-promotion-planner  GitHub Actions promote.yaml, plan job: reads aliases, labels, endpoint
#   tfx-promoter           GitHub Actions promote.yaml, approved job: aliases, endpoint traffic
#
# Only tfx-promoter can deploy, undeploy or change an endpoint's traffic split, and only it can
# move an alias of an existing version or change a version's labels (aiplatform.models.update).
# The runtime identities (the first four) hold none of that: a pipeline run, a Dataflow worker or
# a CI build cannot touch production traffic. What Vertex AI's permissions cannot narrow: the
# pipeline's aiplatform.models.upload lets it give the version it uploads any alias (it gives
# `candidate`); docs/bootstrap.md says why that cannot move traffic and what catches it.

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

resource "google_service_account" "planner" {
  project      = var.project
  account_id   = "tfx-promotion-planner"
  display_name = "Promotion plans from GitHub Actions, read only (${var.environment})"
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
# What the run's steps call in Vertex AI: the Trainer's training job (customJobs), the
# registration of a blessed model (models.upload with the alias `candidate`, which Vertex AI moves
# off the version that held it as part of the upload: no models.update), the baseline and
# provenance lookups (models.list, pipelineJobs.get), and the run's records in Vertex ML Metadata.
# Nothing on endpoints, no models.update (aliases, labels of existing versions), no models.delete.
resource "google_project_iam_custom_role" "pipeline_runner" {
  project     = var.project
  role_id     = "tfxPipelineRunner"
  title       = "TFX pipeline run"
  description = "A pipeline run's steps: training job, Model Registry upload of a blessed model, run metadata; no endpoint change, no alias or label change of existing versions"
  permissions = [
    "aiplatform.artifacts.create",
    "aiplatform.artifacts.get",
    "aiplatform.artifacts.list",
    "aiplatform.artifacts.update",
    "aiplatform.contexts.addContextArtifactsAndExecutions",
    "aiplatform.contexts.create",
    "aiplatform.contexts.get",
    "aiplatform.contexts.list",
    "aiplatform.contexts.update",
    "aiplatform.customJobs.create",
    "aiplatform.customJobs.get",
    "aiplatform.executions.addExecutionEvents",
    "aiplatform.executions.create",
    "aiplatform.executions.get",
    "aiplatform.executions.list",
    "aiplatform.executions.update",
    "aiplatform.metadataStores.get",
    "aiplatform.models.get",
    "aiplatform.models.list",
    "aiplatform.models.upload",
    "aiplatform.pipelineJobs.get",
  ]
  depends_on = [google_project_service.services]
}

resource "google_project_iam_member" "pipelines_vertex" {
  project = var.project
  role    = google_project_iam_custom_role.pipeline_runner.id
  member  = google_service_account.pipelines.member
}

# The subnetwork lookup that Dataflow does at job start.
resource "google_project_iam_member" "pipelines" {
  project = var.project
  role    = "roles/compute.networkViewer"
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
# Submit a Vertex AI pipeline run (it runs as tfx-pipelines) and follow it; start Cloud Builds.
resource "google_project_iam_custom_role" "pipeline_submitter" {
  count = local.ci_count

  project     = var.project
  role_id     = "tfxPipelineSubmitter"
  title       = "TFX pipeline run submitter"
  description = "Submit a pipeline run and follow it; nothing on models or endpoints"
  permissions = [
    "aiplatform.metadataStores.get",
    "aiplatform.pipelineJobs.create",
    "aiplatform.pipelineJobs.get",
  ]
  depends_on = [google_project_service.services]
}

resource "google_project_iam_member" "trainer" {
  count   = local.ci_count
  project = var.project
  role    = google_project_iam_custom_role.pipeline_submitter[0].id
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

# ---- Promotion planner (promote.yaml, plan job: no approval) ----------------------------------
# Read what a plan is computed from: the versions with their aliases and labels
# (models.listVersions; models.get as well, both read-only, as the reference does not say which of
# the two that method checks) and the endpoint's deployed models and traffic split (endpoints.get).
# No write.
resource "google_project_iam_custom_role" "promotion_planner" {
  project     = var.project
  role_id     = "tfxPromotionPlanner"
  title       = "TFX promotion planner (read only)"
  description = "Read Model Registry versions (aliases, labels) and the endpoint (deployed models, traffic split) to plan a promotion"
  permissions = [
    "aiplatform.endpoints.get",
    "aiplatform.models.get",
    "aiplatform.models.list",
  ]
  depends_on = [google_project_service.services]
}

resource "google_project_iam_member" "planner" {
  project = var.project
  role    = google_project_iam_custom_role.promotion_planner.id
  member  = google_service_account.planner.member
}

# ---- Promoter (promote.yaml, approved job) ---------------------------------------------------
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
