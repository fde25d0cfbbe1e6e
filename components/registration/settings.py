"""Where the registration component uploads models: built from the config at compile time and
handed to the executor as one JSON exec property."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Alias of the newest registered version; promotion (pipeline/promotion) moves the others.
CANDIDATE_ALIAS = "candidate"
# Label every registered version carries; promotion refuses versions without it.
BLESSED_LABEL = "blessed"


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegistrySettings | None:
        """None for '' (no registry: smoke test only, as in local runs)."""
        return cls(**json.loads(text)) if text else None
