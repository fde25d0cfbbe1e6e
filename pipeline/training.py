"""The Vertex AI Training job the Trainer starts: machine, accelerator, image, identity, env."""

from __future__ import annotations

from typing import Any

from components.cloud_labels import sanitize_labels
from pipeline.config import VertexRunnerConfig

# The Keras choice (TFT and TFMA need Keras 2), also set by the Makefile, the tests and the
# pipeline image (Dockerfile ENV); repeated on the training job so it does not depend on the image.
TRAINING_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def vertex_trainer_config(runner: VertexRunnerConfig, pipeline_name: str) -> dict[str, Any]:
    """custom_config entries for `vertex.Trainer` on Vertex AI.

    TRAINING_ARGS_KEY holds the project and a CustomJob (TFX sets the container command itself):
    its spec (machine, image, identity, VPC peering) and its labels, which the older
    spec-only form cannot carry. The job runs as the pipeline's service account.
    """
    # Imported here: the Vertex AI extensions load the Vertex AI SDK, which local runs never need.
    from tfx.v1.extensions import google_cloud_ai_platform as vertex

    if runner.image is None:
        raise ValueError("runner.image is not set: the training job needs the pipeline image")
    training = runner.training
    machine_spec: dict[str, Any] = {"machine_type": training.machine_type}
    if training.accelerator_type:
        machine_spec["accelerator_type"] = training.accelerator_type
        machine_spec["accelerator_count"] = training.accelerator_count
    job_spec: dict[str, Any] = {
        "worker_pool_specs": [
            {
                "machine_spec": machine_spec,
                "replica_count": 1,
                "container_spec": {
                    "image_uri": runner.image,
                    "env": [{"name": name, "value": value} for name, value in TRAINING_ENV.items()],
                },
            }
        ],
        "service_account": runner.service_account,
    }
    if runner.network:
        job_spec["network"] = runner.network
    labels = {**runner.labels, "pipeline": pipeline_name}
    digest = runner.image.rsplit("@sha256:", 1)[-1][:12]
    return {
        vertex.ENABLE_VERTEX_KEY: True,
        vertex.VERTEX_REGION_KEY: runner.region,
        vertex.TRAINING_ARGS_KEY: {
            "project": runner.project,
            "display_name": f"{pipeline_name}-trainer",
            "job_spec": job_spec,
            "labels": sanitize_labels({**labels, "image_digest": digest}),
        },
    }
