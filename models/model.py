"""The Keras model and the Trainer's entry point (`run_fn`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from components.serving_checks import BINARY, MULTICLASS
from models import features, label, serving
from models.task import LABEL_XF, Task

EMBEDDING_DIM = 8
# Cached batches are shuffled between epochs, this many at a time.
SHUFFLE_BATCHES = 64


@dataclass(frozen=True)
class Hyperparameters:
    batch_size: int = 128
    learning_rate: float = 0.002
    hidden_units: tuple[int, ...] = (64, 32)

    @classmethod
    def from_custom_config(cls, custom_config: Mapping[str, Any] | None) -> Hyperparameters:
        values = dict((custom_config or {}).get("hyperparameters", {}))
        if "hidden_units" in values:
            values["hidden_units"] = tuple(values["hidden_units"])
        return cls(**values)


def require_keras_2() -> None:
    """TFT and TFMA need Keras 2 (tf-keras); TF 2.16 gives Keras 3 unless TF_USE_LEGACY_KERAS=1."""
    if not tf.keras.__name__.startswith("tf_keras"):
        raise RuntimeError(
            "tf.keras is Keras 3; set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported "
            "(the Makefile, tests and pipeline image all do)"
        )


def build_model(tf_transform_output: tft.TFTransformOutput, hp: Hyperparameters) -> tf.keras.Model:
    """A small deep network over z-scored amounts and embedded categories and buckets."""
    require_keras_2()
    inputs: dict[str, tf.keras.Input] = {}
    encoded = []
    for key in features.NUMERIC_FEATURE_KEYS:
        name = features.transformed_name(key)
        inputs[name] = tf.keras.Input(shape=(1,), name=name, dtype=tf.float32)
        encoded.append(inputs[name])
    for key in features.BUCKET_FEATURE_KEYS + features.CATEGORICAL_FEATURE_KEYS:
        name = features.transformed_name(key)
        inputs[name] = tf.keras.Input(shape=(1,), name=name, dtype=tf.int64)
        if key in features.INTEGER_CATEGORY_RANGES:
            buckets = features.integer_category_buckets(key)
        else:
            buckets = tf_transform_output.num_buckets_for_transformed_feature(name)
        embedding = tf.keras.layers.Embedding(buckets, min(EMBEDDING_DIM, buckets), name=f"{key}_embedding")
        encoded.append(tf.keras.layers.Flatten()(embedding(inputs[name])))

    hidden = tf.keras.layers.concatenate(encoded)
    for units in hp.hidden_units:
        hidden = tf.keras.layers.Dense(units, activation="relu")(hidden)
    output, loss, metrics = task_head(label.TASK)
    model = tf.keras.Model(inputs=inputs, outputs=output(hidden))
    model.compile(optimizer=tf.keras.optimizers.Adam(hp.learning_rate), loss=loss, metrics=metrics)
    return model


def task_head(task: Task) -> tuple[tf.keras.layers.Layer, tf.keras.losses.Loss, list[tf.keras.metrics.Metric]]:
    """The output layer, loss and training metrics for the task (models/label.py)."""
    if task.kind == BINARY:
        layer = tf.keras.layers.Dense(1, activation="sigmoid", name="probability")
        metrics = [tf.keras.metrics.AUC(name="auc"), tf.keras.metrics.BinaryAccuracy(name="accuracy")]
        return layer, tf.keras.losses.BinaryCrossentropy(), metrics
    if task.kind == MULTICLASS:
        layer = tf.keras.layers.Dense(task.output_width, activation="softmax", name="probabilities")
        metrics = [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        return layer, tf.keras.losses.SparseCategoricalCrossentropy(), metrics
    layer = tf.keras.layers.Dense(1, name="prediction")
    return layer, tf.keras.losses.MeanSquaredError(), [tf.keras.metrics.RootMeanSquaredError(name="rmse")]


def input_dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
) -> tf.data.Dataset:
    """Batches of (transformed features, label), repeated for step-based training.

    Transform does not write transformed copies of the examples: the raw examples are read and the
    Transform graph is applied here, once, and the result is cached in memory for later epochs.
    """
    transform_layer = tf_transform_output.transform_features_layer()

    # Plain tensor code: AutoGraph would only spend seconds rewriting the Transform layer's calls.
    @tf.autograph.experimental.do_not_convert
    def transform(raw_features: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        transformed = transform_layer(raw_features)
        target = transformed.pop(LABEL_XF)
        return transformed, target

    raw = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, num_epochs=1),
        tf_transform_output.raw_metadata.schema,
    )
    return (
        raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
        .shuffle(SHUFFLE_BATCHES)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


def run_fn(fn_args: FnArgs) -> None:
    """Trains the model and saves it with its serving signatures."""
    hp = Hyperparameters.from_custom_config(fn_args.custom_config)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = input_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, hp.batch_size)
    evaluation = input_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, hp.batch_size)

    model = build_model(tf_transform_output, hp)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        verbose=0,
    )
    serving.export(model, tf_transform_output, fn_args.serving_model_dir)
