"""The `registry` and `endpoint` sections of a Vertex AI environment config (see pipeline/config.py).

`registry`: the Model Registry model every blessed model becomes a version of (ModelRegistration
in the pipeline), the container that serves its versions and the bucket their SavedModels are
copied to. `endpoint`: the endpoint `python -m pipeline promote` manages, and the smoke test it runs
after a canary (docs/promotion.md). Project and region come from `runner`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from components.registration.settings import TF_SERVING, RegistrySettings
from pipeline.image import ImageError, require_digest
from pipeline.paths import in_repository

# Vertex AI: model IDs up to 63 of [a-z0-9_-], starting with a letter; endpoint IDs either a letter
# then up to 62 of [a-z0-9-] (not ending in '-'), or up to 9 digits without a leading zero.
MODEL_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
ENDPOINT_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}")
# A bucket, optionally with a folder: gs://my-tfx-dev-models[/folder].
MODELS_BUCKET = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[^\s/]+)*/?")
MACHINE_TYPE = r"^[a-z][a-z0-9-]*$"
# The serving instances: raw feature values as clients send them (models/features.py's features).
SERVING_INSTANCES_FILE = "configs/smoke_instances.json"
SERVICE_ACCOUNT = r"^[a-z0-9][a-z0-9-]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.gserviceaccount\.com$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Strict):
    model_id: str
    display_name: str = Field(min_length=1, max_length=128)
    # tf-serving: TensorFlow Serving's image as a custom container (numbered version folders under
    # the artifact folder); prebuilt: Google's prebuilt TensorFlow prediction image (the SavedModel
    # at the root). docs/vertex.md, "The serving runtime".
    serving_container: Literal["tf-serving", "prebuilt"] = TF_SERVING  # settings.SERVING_CONTAINERS
    # That container's image, pinned by digest: for tf-serving, tensorflow/serving mirrored into
    # the project's Artifact Registry (infra/registry.tf).
    serving_image: str
    # Where registered SavedModels live, outside the pipeline root: gs://BUCKET[/FOLDER].
    models_bucket: str

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, value: str) -> str:
        if not MODEL_ID.fullmatch(value):
            raise ValueError(f"expected a model ID: a letter, then up to 62 of a-z 0-9 _ - (got {value!r})")
        return value

    @field_validator("serving_image")
    @classmethod
    def _image_pinned_by_digest(cls, value: str) -> str:
        try:
            return require_digest(value)
        except ImageError as error:
            reason = str(error).split(";", 1)[0]
            raise ValueError(f"{reason}; {SERVING_IMAGE_HINT}") from None

    @field_validator("models_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not MODELS_BUCKET.fullmatch(value):
            raise ValueError(f"expected a gs:// bucket such as gs://my-tfx-dev-models (got {value!r})")
        return value.rstrip("/")

    def settings(
        self, *, project: str, region: str, pipeline_root: str, pipeline_image: str | None
    ) -> RegistrySettings:
        return RegistrySettings(
            project=project,
            region=region,
            model_id=self.model_id,
            display_name=self.display_name,
            serving_image=self.serving_image,
            pipeline_root=pipeline_root,
            pipeline_image=pipeline_image,
            serving_container=self.serving_container,
            models_bucket=self.models_bucket,
        )


EXAMPLE_SERVING_IMAGE = "us-central1-docker.pkg.dev/my-tfx-dev/dockerhub/tensorflow/serving@sha256:<64 hex digits>"
SERVING_IMAGE_HINT = (
    f"pin it by digest, such as {EXAMPLE_SERVING_IMAGE} (docs/vertex.md, 'The serving runtime', shows how to get it)"
)


class SmokeTestConfig(_Strict):
    """The predict requests sent after a canary deploy, and what they must show (docs/promotion.md)."""

    # JSON list of instances (raw feature values), relative to the repository root; every request
    # carries all of them. The pipeline's smoke test of every blessed model sends the same ones
    # (PipelineConfig.serving_instances_path), so a model that cannot answer them is never registered.
    instances_file: str = SERVING_INSTANCES_FILE
    # Requests sent: at least min_predictions, and enough that the canary answers warmup_answers + 1
    # of them unless with probability max_miss_probability; a canary that needs more than
    # max_predictions is refused before anything changes.
    # (strict: a YAML `true` or "50" is refused rather than read as a number)
    min_predictions: int = Field(default=50, ge=1, le=10_000, strict=True)
    max_predictions: int = Field(default=1000, ge=1, le=10_000, strict=True)
    max_miss_probability: float = Field(default=0.001, gt=0, le=0.1, strict=True)
    # Failed requests over requests sent.
    max_error_rate: float = Field(default=0.0, ge=0, le=1, strict=True)
    # The first answers of each deployed model (cold start) are left out of its latency percentile.
    warmup_answers: int = Field(default=1, ge=0, le=10, strict=True)
    # Bound on this percentile of each deployed model's latencies after its warm-up.
    latency_percentile: float = Field(default=95, ge=50, le=100, strict=True)
    max_latency_ms: int = Field(default=2000, ge=1, le=60_000, strict=True)

    @property
    def instances_path(self) -> Path:
        path = Path(self.instances_file)
        return in_repository(path)

    @model_validator(mode="after")
    def _predictions(self) -> SmokeTestConfig:
        if self.max_predictions < self.min_predictions:
            raise ValueError(
                f"max_predictions ({self.max_predictions}) is below min_predictions ({self.min_predictions})"
            )
        return self


class EndpointConfig(_Strict):
    endpoint_id: str
    display_name: str = Field(min_length=1, max_length=128)
    machine_type: str = Field(default="n1-standard-2", pattern=MACHINE_TYPE)
    min_replicas: PositiveInt = 1
    max_replicas: PositiveInt = 1
    # Identity the deployed model runs as; null = the Vertex AI service agent.
    service_account: str | None = Field(default=None, pattern=SERVICE_ACCOUNT)
    smoke_test: SmokeTestConfig = SmokeTestConfig()

    @field_validator("endpoint_id", mode="before")
    @classmethod
    def _numeric_id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("endpoint_id")
    @classmethod
    def _endpoint_id(cls, value: str) -> str:
        if not ENDPOINT_ID.fullmatch(value):
            raise ValueError(
                "expected an endpoint ID: a letter then up to 62 of a-z 0-9 - (not ending in -), "
                f"or up to 9 digits (got {value!r})"
            )
        return value

    @model_validator(mode="after")
    def _replicas(self) -> EndpointConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})")
        return self
