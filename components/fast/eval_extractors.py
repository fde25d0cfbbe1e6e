"""TFMA extractors for the Evaluator: TFMA's own, with each batch trimmed before it is split into examples.

TFMA splits every batch into one Python dict per example and passes those through slicing and the
metric combiners. By default each dict carries every raw feature, every transformed feature and
the serialized input, although after prediction only the labels, predictions, example weights
and the slicing features are read. Dropping the rest before the split cut the Evaluator's time by
about a fifth on 50,000 eval rows, with identical metrics (docs/performance.md).

The Evaluator loads this module through its `module_path` and calls `custom_extractors`. Stock
behaviour: `fast_paths.eval_extractors: false` (no `module_path`: TFMA's default extractors);
tests/components/fast/test_eval_extractors.py checks that every slice's metrics are the same.

Library internals it relies on (re-check on a TFMA or TFX upgrade): the list and order of TFMA's
default extractors for a TF model (`tfma.default_extractors` in
tensorflow_model_analysis/api/model_eval_lib.py), the extractor modules imported below and the
extract keys (`tensorflow_model_analysis.constants`) that slicing and the metric evaluators read
after the unbatch; and TFX's Evaluator executor calling a `module_path`'s `custom_extractors`
with these three arguments (tfx/components/evaluator/executor.py). A new metric or evaluator that
reads another extract needs it kept in `KEPT_EXTRACTS`, or the parity test fails.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.extractors import (
    example_weights_extractor,
    features_extractor,
    labels_extractor,
    predictions_extractor,
    slice_key_extractor,
    transformed_features_extractor,
    unbatch_extractor,
)
from tfx_bsl.tfxio import tensor_adapter

TRIM_STAGE_NAME = "TrimExtractsToMetricInputs"
KEPT_EXTRACTS = (constants.LABELS_KEY, constants.PREDICTIONS_KEY, constants.EXAMPLE_WEIGHTS_KEY)


def slicing_feature_keys(eval_config: tfma.EvalConfig) -> frozenset[str]:
    """Every feature a slicing spec (plain or crossed) reads."""
    specs = list(eval_config.slicing_specs)
    for cross in eval_config.cross_slicing_specs:
        specs.append(cross.baseline_spec)
        specs.extend(cross.slicing_specs)
    keys: set[str] = set()
    for spec in specs:
        if spec.slice_keys_sql:
            raise ValueError("SQL slicing specs read arbitrary extracts; use feature_keys or feature_values")
        keys.update(spec.feature_keys)
        keys.update(spec.feature_values)
    return frozenset(keys)


def metric_inputs_only(extracts: dict[str, Any], feature_keys: frozenset[str]) -> dict[str, Any]:
    """The extracts that slicing and the metrics read; the rest is dropped before the per-example split."""
    trimmed = {key: extracts[key] for key in KEPT_EXTRACTS if key in extracts}
    features = extracts.get(constants.FEATURES_KEY) or {}
    trimmed[constants.FEATURES_KEY] = {key: value for key, value in features.items() if key in feature_keys}
    return trimmed


def custom_extractors(
    eval_shared_model: tfma.types.MaybeMultipleEvalSharedModels,
    eval_config: tfma.EvalConfig,
    tensor_adapter_config: tensor_adapter.TensorAdapterConfig | None,
) -> list[tfma.extractors.Extractor]:
    """TFMA's default extractors for TF models, in TFMA's order, with the trim before the split.

    `eval_config` is the Evaluator's, already completed with TFMA's defaults (model names when a
    baseline is compared). Labels and example weights are extracted before the trim.
    """
    feature_keys = slicing_feature_keys(eval_config)
    representations = tensor_adapter_config.tensor_representations if tensor_adapter_config else None
    return [
        features_extractor.FeaturesExtractor(eval_config=eval_config, tensor_representations=representations),
        transformed_features_extractor.TransformedFeaturesExtractor(
            eval_config=eval_config, eval_shared_model=eval_shared_model
        ),
        labels_extractor.LabelsExtractor(eval_config=eval_config),
        example_weights_extractor.ExampleWeightsExtractor(eval_config=eval_config),
        predictions_extractor.PredictionsExtractor(eval_config=eval_config, eval_shared_model=eval_shared_model),
        tfma.extractors.Extractor(
            stage_name=TRIM_STAGE_NAME, ptransform=beam.Map(metric_inputs_only, feature_keys=feature_keys)
        ),
        unbatch_extractor.UnbatchExtractor(),
        slice_key_extractor.SliceKeyExtractor(eval_config=eval_config),
    ]
