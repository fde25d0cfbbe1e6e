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

# Docker Hub through Artifact Registry (a remote repository): the serving image, tensorflow/serving
# at the lock's TensorFlow, is pulled by digest from this project (registry.serving_image in
# configs/vertex-*.yaml), never from Docker Hub itself. The first pull of a digest caches it here;
# later pulls, and Vertex AI's ingestion at every model upload, are served from that copy whatever
# becomes of the tag upstream. No cleanup policy: cached images stay until removed by hand.
# docs/vertex.md, "The serving runtime", says how to read the digest and move to another version.
resource "google_artifact_registry_repository" "dockerhub" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest; a customer-managed key (kms_key_name) adds a key ring to operate and is left to projects whose policy requires it.
  project       = var.project
  location      = var.region
  repository_id = var.dockerhub_repository
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  description   = "Docker Hub mirror: the TensorFlow Serving image of registered models, pulled by digest"

  remote_repository_config {
    description = "Docker Hub"
    docker_repository {
      public_repository = "DOCKER_HUB"
    }
  }

  depends_on = [google_project_service.services]
}
