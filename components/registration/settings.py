"""Where the registration component uploads models: built from the config at compile time and
handed to the executor as one JSON exec property."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Alias of the newest registered version; promotion (runners/promotion) moves the others.
CANDIDATE_ALIAS = "candidate"
# Label every registered version carries; promotion refuses versions without it.
BLESSED_LABEL = "blessed"

# The serving containers a version can be registered with (`registry.serving_container`):
# TensorFlow Serving's own image run as a custom container, which loads the highest numbered
# version folder under its --model_base_path; or Google's prebuilt TensorFlow prediction image,
# which loads the SavedModel at the root of the artifact folder.
TF_SERVING = "tf-serving"
PREBUILT = "prebuilt"
SERVING_CONTAINERS = (TF_SERVING, PREBUILT)


@dataclass(frozen=True)
class RegistrySettings:
    project: str
    region: str
    model_id: str
    display_name: str
    serving_image: str
    # The pipeline root and image of the run: its job ID is read from the artifact path under the
    # root, and the image digest is the fallback provenance label.
    pipeline_root: str
    pipeline_image: str | None = None
    # Which container serves the version (TF_SERVING or PREBUILT), and the gs:// bucket (or folder)
    # the SavedModel is copied to before the upload. No bucket: the version points at the
    # SavedModel where the Trainer wrote it (prebuilt only: TF Serving needs version folders).
    # The defaults keep settings written before these fields meaning what they meant.
    serving_container: str = PREBUILT
    models_bucket: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegistrySettings | None:
        """None for '' (no registry: smoke test only, as in local runs)."""
        return cls(**json.loads(text)) if text else None

    @property
    def serving_model_name(self) -> str:
        """The model name TF Serving serves, in its routes (/v1/models/<name>:predict)."""
        return self.model_id
