"""Serving signatures: every entry point applies the Transform graph before the model.

- `serving_default`: one tensor per raw feature, the JSON `instances` that Vertex AI endpoints send
  ({"fare": 12.5, "payment_type": "Cash", ...}) -> the task's answer (models/label.py TASK):
  {"probabilities": [batch, 1]} for binary classification (the positive class), [batch, classes]
  for multi-class, {"predictions": [batch, 1]} for regression. A Vertex AI predict request cannot
  name a signature: TF Serving behind the endpoint always calls this one.
- `serving_examples`: serialized `tf.Example`s (no label) -> the same answer, for TFMA and for batch
  prediction from TFRecord files.
- `transform_features`: serialized examples -> transformed features and label, for TFMA.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from components.fast import transform_export
from models import features, label

DEFAULT_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "serving_examples"
TRANSFORM_SIGNATURE = "transform_features"


def export(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str) -> None:
    # A plain module holding the model's variables and the Transform graph (with its vocabulary
    # assets), not the Keras model: saving one makes Keras trace its calls again for its own loader,
    # which nothing here uses. The signatures are the whole interface. `transform_export.load` gives
    # TFT's `transform_features_layer()`, or with the pipeline's fast path on, the same graph
    # without that layer's Keras wrapper (components/fast/transform_export.py).
    exported = tf.Module()
    exported.model_variables = list(model.variables)
    transform = transform_export.load(tf_transform_output)
    exported.transform_graph = transform.state
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {key: spec for key, spec in raw_spec.items() if key in features.RAW_FEATURE_KEYS}

    # The signatures below are plain tensor code, traced without AutoGraph: converting the Transform
    # layer and the model's call would add seconds to every export.
    def predict(raw_features: dict[str, tf.Tensor | tf.SparseTensor]) -> dict[str, tf.Tensor]:
        transformed = transform.apply(raw_features)
        model_inputs = {name: transformed[name] for name in model.input_names}
        return {label.TASK.output_key: model(model_inputs)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(tf.io.parse_example(serialized, serving_spec))

    @tf.function(
        input_signature=[{key: tf.TensorSpec([None], spec.dtype, name=key) for key, spec in serving_spec.items()}],
        autograph=False,
    )
    def serve_instances(instances: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return predict({key: _as_parsed(value, serving_spec[key]) for key, value in instances.items()})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return transform.apply(tf.io.parse_example(serialized, raw_spec))

    tf.saved_model.save(
        exported,
        export_dir,
        signatures={
            DEFAULT_SIGNATURE: serve_instances.get_concrete_function(),
            EXAMPLES_SIGNATURE: serve_examples,
            TRANSFORM_SIGNATURE: transform_features,
        },
    )


def _as_parsed(value: tf.Tensor, spec: tf.io.FixedLenFeature | tf.io.VarLenFeature) -> tf.Tensor | tf.SparseTensor:
    """One value per instance, shaped as `tf.io.parse_example` would give it for `spec`."""
    if isinstance(spec, tf.io.VarLenFeature):
        rows = tf.shape(value, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(rows), tf.zeros([rows], tf.int64)], axis=1)
        return tf.SparseTensor(indices, value, dense_shape=tf.stack([rows, 1]))
    return tf.reshape(value, [-1, *spec.shape])
