# Buckets: the pipeline root (artifacts, Dataflow temp/staging, pushed models), the training data,
# the registered models, the Cloud Build source and logs (dev), and the Terraform state.
#
# All of them: uniform bucket-level access (IAM only, no ACLs), public access prevention
# enforced, versioning with noncurrent versions deleted after var.noncurrent_version_days.
# Access is recorded by Cloud Audit Logs (google_project_iam_audit_config.storage in main.tf),
# not by usage-log buckets, hence the CKV_GCP_62 skips.

resource "google_storage_bucket" "pipelines" {
  #checkov:skip=CKV_GCP_62:Access is recorded in Cloud Audit Logs (DATA_WRITE, ADMIN_READ; main.tf), Google's recommended replacement for usage logs.
  project                     = var.project
  name                        = local.pipeline_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}

resource "google_storage_bucket" "data" {
  #checkov:skip=CKV_GCP_62:Access is recorded in Cloud Audit Logs (DATA_WRITE, ADMIN_READ; main.tf), Google's recommended replacement for usage logs.
  project                     = var.project
  name                        = local.data_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}

# Registered models: ModelRegistration copies each blessed SavedModel here before the Model Registry
# upload, and the version's artifactUri points here (registry.models_bucket). It is not the pipeline
# root, where the pipeline's and Dataflow's accounts may delete and old runs get cleaned up: a
# version a rollback needs must stay. The pipeline may only add objects (iam.tf: create, never
# delete, and replacing an object needs delete). Live objects never expire; versioning keeps what
# a person deletes or replaces for var.noncurrent_version_days. Not a retention policy: that would
# also stop the deliberate removal of a deleted version's files, and a bucket cannot have both.
resource "google_storage_bucket" "models" {
  #checkov:skip=CKV_GCP_62:Access is recorded in Cloud Audit Logs (DATA_WRITE, ADMIN_READ; main.tf), Google's recommended replacement for usage logs.
  project                     = var.project
  name                        = local.models_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}

# Source archives uploaded by `gcloud builds submit` and the build logs. Without it, gcloud
# creates <project>_cloudbuild itself, which needs storage.buckets.create on the project.
resource "google_storage_bucket" "cloudbuild" {
  #checkov:skip=CKV_GCP_62:Access is recorded in Cloud Audit Logs (DATA_WRITE, ADMIN_READ; main.tf), Google's recommended replacement for usage logs.
  count = local.ci_count

  project                     = var.project
  name                        = local.build_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # Build sources and logs are only worth keeping for a while.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}

# Remote state for this configuration once it exists (docs/bootstrap.md, step 3).
resource "google_storage_bucket" "tfstate" {
  #checkov:skip=CKV_GCP_62:Access is recorded in Cloud Audit Logs (DATA_WRITE, ADMIN_READ; main.tf), Google's recommended replacement for usage logs.
  project                     = var.project
  name                        = local.state_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.services]
}
