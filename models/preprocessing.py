"""The Transform step: turns raw taxi features into model inputs, and computes the label (models/label.py)."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features, label
from models.task import LABEL_XF, label_tensor

# Transform traces preprocessing_fn into a TF1 graph: on the taxi sample the step takes about
# two-thirds of the time it takes in TF2 mode, which traces the function again for every analysis
# phase and saves through tf.saved_model. The Trainer and the serving signatures load the graph
# through TFTransformOutput.transform_features_layer() either way.
FORCE_TF_COMPAT_V1 = True


def fill_in_missing(value: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """Densifies an optional feature ([batch, 1] sparse) to [batch], with '' or 0 where absent."""
    if not isinstance(value, tf.SparseTensor):
        return tf.reshape(value, [-1])
    default = "" if value.dtype == tf.string else tf.cast(0, value.dtype)
    dense = tf.sparse.to_dense(tf.SparseTensor(value.indices, value.values, [value.dense_shape[0], 1]), default)
    return tf.squeeze(dense, axis=1)


def integer_category(value: tf.Tensor, low: int, high: int) -> tf.Tensor:
    """value - low + 1 for values in [low, high]; 0 for any other value."""
    value = tf.cast(value, tf.int64)
    in_range = tf.logical_and(value >= low, value <= high)
    return tf.where(in_range, value - low + 1, tf.zeros_like(value))


def preprocessing_fn(inputs: dict[str, tf.Tensor | tf.SparseTensor]) -> dict[str, tf.Tensor]:
    outputs: dict[str, tf.Tensor] = {}
    for key in features.NUMERIC_FEATURE_KEYS:
        amount = tf.maximum(tf.cast(fill_in_missing(inputs[key]), tf.float32), 0.0)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(tf.math.log1p(amount))

    for key in features.BUCKET_FEATURE_KEYS:
        coordinate = tf.cast(fill_in_missing(inputs[key]), tf.float32)
        outputs[features.transformed_name(key)] = tft.bucketize(coordinate, features.BUCKET_COUNT)

    for key in features.VOCABULARY_FEATURE_KEYS:
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            fill_in_missing(inputs[key]),
            top_k=features.VOCAB_TOP_K,
            num_oov_buckets=features.OOV_BUCKETS,
            vocab_filename=key,
        )

    for key, (low, high) in features.INTEGER_CATEGORY_RANGES.items():
        outputs[features.transformed_name(key)] = integer_category(fill_in_missing(inputs[key]), low, high)

    # The label's columns are absent at serving time; only training and evaluation data carry them.
    if all(column in inputs for column in label.COLUMNS):
        columns = {column: fill_in_missing(inputs[column]) for column in label.COLUMNS}
        outputs[LABEL_XF] = label_tensor(label.TASK, label.compute(columns))
    return outputs
