variable "project" {
  description = "Project ID to set up (one apply per environment: the dev project, the prod project)."
  type        = string
}

variable "region" {
  description = "Region of the buckets, the Artifact Registry repository, Vertex AI and Dataflow (runner.region in configs/vertex-*.yaml)."
  type        = string
  default     = "us-central1"
}

variable "pipeline_name" {
  description = "pipeline_name in configs/base.yaml: the folder of the pipeline root and of the data, the pipeline image's name and the `app` label."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.pipeline_name))
    error_message = "pipeline_name: as in configs/base.yaml, a lowercase letter then up to 62 lowercase letters, digits and '-'."
  }
}

variable "environment" {
  description = "Name of this environment, as in configs/vertex-<environment>.yaml (labels, names)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.environment))
    error_message = "environment: lowercase letters, digits and '-', starting with a letter, at most 20 characters."
  }
}

variable "github_repository" {
  description = "The GitHub repository allowed to authenticate, as owner/name (e.g. my-org/my-tfx-pipeline)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_repository_id" {
  description = "Numeric ID of that repository (gh api repos/OWNER/NAME --jq .id). Tokens must carry it, so a repository deleted and re-created under the same name by someone else is not admitted."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.github_repository_id))
    error_message = "github_repository_id is required: the numeric ID of github_repository (gh api repos/OWNER/NAME --jq .id)."
  }
}

variable "github_deploy_environment" {
  description = "The GitHub environment whose jobs may act as the promoter (promote.yaml maps prod to 'production', dev to 'dev'); its plan job runs in '<this>-plan' and may act as the read-only planner."
  type        = string
  default     = "production"
}

variable "github_deploy_ref" {
  description = "The branch ref that promotion jobs (.github/workflows/promote.yaml) must run from."
  type        = string
  default     = "refs/heads/main"
}

variable "github_train_ref" {
  description = "The branch ref from which .github/workflows/train.yaml may act as the CI trainer (build images, submit pipeline runs)."
  type        = string
  default     = "refs/heads/main"
}

variable "enable_ci_training" {
  description = "Create the CI trainer identity, the Cloud Build identity and bucket, and the training pool. True where train.yaml builds and runs (dev); false in prod, which runs images promoted from dev."
  type        = bool
  default     = true
}

variable "enable_ci_promotion" {
  description = "Let promote.yaml act as tfx-promotion-planner (github-plan pool) and tfx-promoter (github-deploy pool). False keeps promotion to people with their own roles on the project (docs/bootstrap.md: private repositories without required reviewers)."
  type        = bool
  default     = true
}

variable "artifact_repository" {
  description = "Artifact Registry repository ID for the pipeline image (REPO in the Makefile)."
  type        = string
  default     = "pipelines"
}

variable "dockerhub_repository" {
  description = "Artifact Registry remote repository (Docker Hub) the serving image is pulled through; registry.serving_image names it."
  type        = string
  default     = "dockerhub"
}

variable "model_readers" {
  description = "Extra members allowed to read the models bucket, e.g. another project's Vertex AI service agent when it serves models registered here."
  type        = list(string)
  default     = []
}

variable "image_readers" {
  description = "Extra members allowed to pull from the repository, e.g. the prod project's Dataflow account and Vertex AI service agents when prod runs images built in dev (docs/vertex.md)."
  type        = list(string)
  default     = []
}

variable "dataflow_subnet_cidr" {
  description = "IP range of the Dataflow workers' subnetwork."
  type        = string
  default     = "10.10.0.0/20"
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept in the versioned buckets."
  type        = number
  default     = 30
}
