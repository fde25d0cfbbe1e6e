# The pipeline image: every Vertex AI Pipelines step, the training job and the Dataflow workers
# run it, pinned by digest (docs/vertex.md).
resource "google_artifact_registry_repository" "pipelines" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest; a customer-managed key (kms_key_name) adds a key ring to operate and is left to projects whose policy requires it.
  project       = var.project
  location      = var.region
  repository_id = var.artifact_repository
  format        = "DOCKER"
  description   = "TFX pipeline images, tagged with the commit they were built from"

  # train.yaml tags each image with its commit; a tag never moves to another image.
  docker_config {
    immutable_tags = true
  }

  depends_on = [google_project_service.services]
}
