"""The `registry` and `endpoint` sections of a Vertex AI environment config (see pipeline/config.py).

`registry`: the Model Registry model every blessed model becomes a version of (ModelRegistration
in the pipeline). `endpoint`: the endpoint `python -m pipeline promote` manages, and the smoke test it
runs after a canary (docs/promotion.md). Project and region come from `runner`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from components.registration.settings import RegistrySettings

REPO_ROOT = Path(__file__).resolve().parent.parent
# Vertex AI: model IDs up to 63 of [a-z0-9_-], starting with a letter; endpoint IDs either a letter
# then up to 62 of [a-z0-9-] (not ending in '-'), or up to 9 digits without a leading zero.
MODEL_ID = re.compile(r"[a-z][a-z0-9_-]{0,62}")
ENDPOINT_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}")
IMAGE = re.compile(r"[a-z0-9.-]+(:[0-9]+)?/\S+")
MACHINE_TYPE = r"^[a-z][a-z0-9-]*$"
SERVICE_ACCOUNT = r"^[a-z0-9][a-z0-9-]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.gserviceaccount\.com$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryConfig(_Strict):
    model_id: str
    display_name: str = Field(min_length=1, max_length=128)
    # Prebuilt TensorFlow prediction container (docs: Vertex AI > prebuilt containers for inference).
    serving_image: str

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, value: str) -> str:
        if not MODEL_ID.fullmatch(value):
            raise ValueError(f"expected a model ID: a letter, then up to 62 of a-z 0-9 _ - (got {value!r})")
        return value

    @field_validator("serving_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not IMAGE.fullmatch(value):
            raise ValueError(f"expected a container image such as {EXAMPLE_SERVING_IMAGE} (got {value!r})")
        return value

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
        )


EXAMPLE_SERVING_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


class SmokeTestConfig(_Strict):
    # Predict requests sent after a canary deploy; each carries every sample instance.
    predictions: PositiveInt = 50
    # JSON list of instances (raw feature values), relative to the repository root.
    instances_file: str = "configs/smoke_instances.json"
    max_error_rate: float = Field(default=0.0, ge=0, le=1)
    # Bound on the latency of every successful request.
    max_latency_ms: PositiveInt = 2000

    @property
    def instances_path(self) -> Path:
        path = Path(self.instances_file)
        return path if path.is_absolute() else REPO_ROOT / path


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
