"""Tiny real SavedModels for tests that deploy models to the fake Vertex AI endpoint.

Each model has the two serving signatures of the pipeline's model (models/serving.py):
``serving_default`` takes one tensor per raw feature (shape [None]), ``serving_examples`` takes
serialized ``tf.Example`` strings; both answer ``{"probabilities": [batch, 1]}``. Variants make the
mistakes a real export can make: ``serving_default`` taking serialized examples, an op that fails
at run time, a slow answer, probabilities outside [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

Probability = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


def fare_probability(scale: float = 10.0) -> Probability:
    """sigmoid(fare / scale), one per row: [batch, 1]."""
    return lambda features: tf.reshape(tf.sigmoid(tf.cast(features["fare"], tf.float32) / scale), [-1, 1])


def save_model(
    folder: Path,
    features: Mapping[str, tf.DType],
    probability: Probability,
    *,
    default_takes_examples: bool = False,
    fails_at_run_time: bool = False,
    delay_seconds: float = 0.0,
) -> Path:
    """Saves a SavedModel with ``serving_default`` and ``serving_examples`` into ``folder``."""
    raw_spec = {key: tf.TensorSpec([None], dtype, name=key) for key, dtype in features.items()}
    parse_spec = {
        key: tf.io.FixedLenFeature([], dtype, default_value="" if dtype == tf.string else 0)
        for key, dtype in features.items()
    }

    class Served(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.offset = tf.Variable(0.0)  # so that the SavedModel has variables/, like a real one

        def predict(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            result = probability(inputs) + self.offset
            checks = []
            if fails_at_run_time:
                fare = tf.cast(inputs["fare"], tf.float32)
                checks.append(tf.debugging.assert_less(fare, -1e9, message="the model refuses every fare"))
            if delay_seconds:
                start = tf.timestamp()
                waited = tf.while_loop(lambda now: now - start < delay_seconds, lambda now: [tf.timestamp()], [start])
                checks.append(waited[0])
            with tf.control_dependencies(checks):
                return {"probabilities": tf.identity(result)}

        @tf.function(input_signature=[raw_spec])
        def from_features(self, inputs: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return self.predict(inputs)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def from_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
            return self.predict(tf.io.parse_example(examples, parse_spec))

    module = Served()
    raw, examples = module.from_features.get_concrete_function(), module.from_examples.get_concrete_function()
    default, other = (examples, raw) if default_takes_examples else (raw, examples)
    tf.saved_model.save(module, str(folder), signatures={"serving_default": default, "serving_examples": other})
    return folder


def serialized_example(values: Mapping[str, Any], features: Mapping[str, tf.DType]) -> bytes:
    """A tf.Example holding ``values`` with the types a model parses them as (``features``)."""
    feature = {}
    for key, value in values.items():
        if features[key] == tf.string:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif features[key].is_integer:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def upload_folder(client: Any, folder: Path, uri: str) -> str:
    """Copies ``folder`` to the ``gs://`` folder ``uri`` (creating the bucket); returns ``uri``."""
    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    bucket = client.lookup_bucket(bucket_name) or client.create_bucket(bucket_name)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            bucket.blob(f"{prefix.rstrip('/')}/{path.relative_to(folder)}").upload_from_filename(str(path))
    return uri
