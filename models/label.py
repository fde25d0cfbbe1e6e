"""What the model predicts: the task, the columns the label comes from, and how it is computed.

This is the one declaration of the label. Transform computes it (models/preprocessing.py), the
preflight check before every local run computes it on the CSV rows to make sure the data holds at
least two classes (or, for regression, varying numbers), and the pipeline derives the model's
output, the Evaluator's metrics, the smoke tests and the registry description from `TASK`.

To predict something else, change the three declarations below:

- `TASK`: `Task.binary(classes=(negative, positive))` (the model answers the positive class's
  probability), `Task.multiclass(classes=(...))` (one probability per class, three classes or more)
  or `Task.regression()` (one number).
- `COLUMNS`: the CSV columns `compute` reads. Those that are not features (models/features.py)
  are training-only: serving requests do not carry them, and the schema marks them
  `not_in_environment: "SERVING"`.
- `compute(columns)`: the label of every row, from one 1-D array per column (a missing value reads
  as 0, or '' for text). Classification: the class index, 0 .. len(classes) - 1 (or a boolean for
  binary); `class_index(TASK, column)` maps a column holding the class names (or integer codes)
  to it. Regression: the number. It runs on TensorFlow tensors in Transform and on NumPy arrays in
  the preflight check: written with Python operators (`>`, `*`, `&`, `==`, ...) and `class_index`,
  it runs on both. One that needs TensorFlow functions works too; the preflight check then runs it
  with TensorFlow, which adds a few seconds to the start of every run.

Examples:

    # A column of class names: "setosa", "versicolor", "virginica"
    TASK = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
    COLUMNS = ("species",)
    def compute(columns): return class_index(TASK, columns["species"])

    # A 0/1 column
    TASK = Task.binary(classes=("stayed", "churned"))
    COLUMNS = ("churned",)
    def compute(columns): return columns["churned"]

    # A number
    TASK = Task.regression()
    COLUMNS = ("price",)
    def compute(columns): return columns["price"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.task import Task, class_index  # noqa: F401 (class_index: for labels from a column of class names)

# A trip is a "big tip" when the tip is more than this share of the fare.
BIG_TIP_SHARE = 0.2

TASK = Task.binary(classes=("tip up to 20%", "big tip"))
COLUMNS = ("tips", "fare")


def compute(columns: Mapping[str, Any]) -> Any:
    """1 (a big tip) when the tip is more than BIG_TIP_SHARE of the fare, else 0."""
    return columns["tips"] > BIG_TIP_SHARE * columns["fare"]
