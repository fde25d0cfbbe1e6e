"""Helpers for the label declaration (models/label.py): the task types and class lookups.

`label.compute(columns)` runs in two places on the same columns: in Transform (TensorFlow tensors)
and in the preflight check before a run (NumPy arrays of the CSV rows). The helpers here take both,
and `label_tensor` / `label_array` turn its result into the label the model trains on: the class
index (int64) for classification, the value (float32) for regression.
"""

from __future__ import annotations

from typing import Any

from components.serving_checks import Task

__all__ = ["LABEL_XF", "Task", "class_index", "label_array", "label_tensor"]

# The label's name among Transform's outputs (the Trainer's target, the Evaluator's label_key).
LABEL_XF = "label_xf"
# A value that is none of the classes: refused by the preflight check before a run.
UNKNOWN_CLASS = -1


def class_index(task: Task, values: Any) -> Any:
    """The index of each value in `task.classes` (-1 for any other value).

    Strings compare as they are; integers by their text (1 matches the class "1"). Takes a 1-D
    TensorFlow tensor (in Transform) or NumPy array (in the preflight check), returns the same kind.
    """
    if _is_tensor(values):
        import tensorflow as tf

        text = values if values.dtype == tf.string else _integer_text(values)
        matches = tf.equal(tf.expand_dims(text, -1), tf.constant(list(task.classes)))
        found = tf.reduce_any(matches, axis=-1)
        return tf.where(found, tf.argmax(tf.cast(matches, tf.int64), axis=-1), tf.constant(UNKNOWN_CLASS, tf.int64))
    import numpy as np

    lookup = {name: index for index, name in enumerate(task.classes)}
    return np.array([lookup.get(_text(value), UNKNOWN_CLASS) for value in np.asarray(values).tolist()], np.int64)


def label_tensor(task: Task, value: Any) -> Any:
    """`label.compute`'s result in Transform, as the model trains on it."""
    import tensorflow as tf

    return tf.cast(value, tf.int64 if task.is_classification else tf.float32)


def label_array(task: Task, value: Any) -> Any:
    """`label.compute`'s result in the preflight check (NumPy), as `label_tensor` gives it."""
    import numpy as np

    if _is_tensor(value):
        value = value.numpy()
    return np.asarray(value).astype(np.int64 if task.is_classification else np.float32)


def _integer_text(values: Any) -> Any:
    """Numbers as the text of an integer ('1' for 1 and 1.0); '' for a number with a fraction."""
    import tensorflow as tf

    if values.dtype.is_integer:
        return tf.strings.as_string(values)
    whole = tf.equal(values, tf.round(values))
    return tf.where(whole, tf.strings.as_string(tf.cast(values, tf.int64)), tf.fill(tf.shape(values), ""))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("tensorflow")
