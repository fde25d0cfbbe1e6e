"""Finds the model a candidate is compared against: the latest blessed model other than itself.

TFX's LatestBlessedModelStrategy returns the candidate itself once it has been blessed, so
re-running an unchanged pipeline feeds the Evaluator a new baseline and it can never be served
from the cache. Excluding the candidate keeps the Evaluator's inputs identical on re-runs, and
a changed model is still compared against the last blessed one.
"""

from __future__ import annotations

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    """Inputs: `model` and `model_blessing` channels of all models, and the `candidate` model."""

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        candidates = input_dict.get(CANDIDATE_KEY, [])
        candidate_ids = {artifact.id for artifact in candidates}
        models = [model for model in input_dict.get(MODEL_KEY, []) if model.id not in candidate_ids]
        blessings = input_dict.get(BLESSING_KEY, [])
        result = {MODEL_KEY: [], BLESSING_KEY: []}
        if models and blessings:
            result = self._resolve({MODEL_KEY: models, BLESSING_KEY: blessings}, MODEL_KEY, BLESSING_KEY)
        result[CANDIDATE_KEY] = candidates
        return result
