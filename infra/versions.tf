# Google Cloud bootstrap for the TFX pipeline template: one apply per project (dev, prod).
# Walkthrough: docs/bootstrap.md.

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }

  # State starts local (an empty project has no bucket to keep it in). docs/bootstrap.md shows
  # how to move it to the state bucket this configuration creates, with a `backend "gcs"` block.
}

provider "google" {
  project = var.project
  region  = var.region

  default_labels = {
    app        = var.pipeline_name
    managed-by = "terraform"
  }
}
