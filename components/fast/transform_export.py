"""The Transform graph for an exported SavedModel, without TFT's Keras wrapper.

TFT's public way to put the Transform graph into a SavedModel is `transform_features_layer()`, a
Keras model: saving one makes Keras trace its calls again for its own loader, which nothing in the
serving signatures uses. The fast path loads the graph with the loader that layer wraps, TFT's
internal `tensorflow_transform.saved.saved_transform_io_v2.SavedModelLoader`, and tracks its state
the way the layer does (the loader's `__dict__`): export 2.2 -> 1.2 s, loading the exported model
0.8 -> 0.3 s (docs/performance.md). Both apply the same graph (tests/components/fast/
test_transform_export.py compares their outputs and the exported signatures).

Library internals it relies on (re-check on a TFT upgrade): `SavedModelLoader(path)` and its
`apply_transform_model(raw_features)`, and that `TransformFeaturesLayer.__init__` still tracks
`self._saved_model_loader.__dict__` (output_wrapper.py) and calls nothing else that the export needs.

Which one `load` returns is set per process by the Trainer's wrapper (components/fast/trainer.py)
from the pipeline's `fast_paths.transform_export`; outside it (a notebook, a test) it is TFT's layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

RawFeatures = Mapping[str, tf.Tensor | tf.SparseTensor | tf.RaggedTensor]
TransformedFeatures = dict[str, tf.Tensor | tf.SparseTensor | tf.RaggedTensor]

_use_loader = False


@dataclass(frozen=True)
class TransformGraph:
    """The Transform graph, ready to be applied in a signature and saved with the model.

    `apply` maps raw features to transformed ones; `state` must be assigned to an attribute of
    the object that is saved, so that the graph's variables and vocabulary assets go with it.
    """

    apply: Callable[[RawFeatures], TransformedFeatures]
    state: Any


def load(tf_transform_output: tft.TFTransformOutput) -> TransformGraph:
    """The Transform graph through TFT's loader (fast path) or TFT's Keras layer (stock)."""
    if _use_loader:
        from tensorflow_transform.saved import saved_transform_io_v2

        loader = saved_transform_io_v2.SavedModelLoader(tf_transform_output.transform_savedmodel_dir)
        return TransformGraph(apply=loader.apply_transform_model, state=loader.__dict__)
    layer = tf_transform_output.transform_features_layer()
    return TransformGraph(apply=layer, state=layer)


@contextlib.contextmanager
def loader_export(enabled: bool) -> Iterator[None]:
    """Within this block, `load` uses TFT's loader when `enabled`, else TFT's Keras layer."""
    global _use_loader
    previous, _use_loader = _use_loader, enabled
    try:
        yield
    finally:
        _use_loader = previous
