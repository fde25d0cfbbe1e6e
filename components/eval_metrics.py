"""The candidate model's metrics over the whole eval split, from the Evaluator's output."""

from __future__ import annotations


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    import tensorflow_model_analysis as tfma

    for metrics_for_slice in tfma.load_metrics(evaluation_uri):
        if metrics_for_slice.slice_key.single_slice_keys:
            continue
        # With a baseline, TFMA also reports the baseline's values and the differences.
        return {
            entry.key.name: entry.value.double_value.value
            for entry in metrics_for_slice.metric_keys_and_values
            if entry.key.model_name in ("", "candidate")
            and not entry.key.is_diff
            and entry.value.HasField("double_value")
        }
    return {}
