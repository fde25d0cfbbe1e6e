"""What the serving checks accept: answers of each task, instances carrying exactly the features of
models/features.py, values of their column's type; and the configured serving instances."""

import math

import pytest

from components.serving_checks import (
    Task,
    instance_problems,
    prediction_problems,
    value_type_problems,
)
from models import features, label
from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from pipeline.deploy_config import SmokeTestConfig
from runners.promotion.smoke import load_instances

# An instance of the declared features (the values' types are checked against the schema elsewhere).
INSTANCE = dict.fromkeys(features.RAW_FEATURE_KEYS, 1) | {features.RAW_FEATURE_KEYS[-1]: ""}
# A column serving requests never carry: the label's own, or one no declaration names.
NOT_SERVED = next(iter(sorted(set(label.COLUMNS) - set(features.RAW_FEATURE_KEYS))), "not_a_feature")
BINARY = Task.binary()
THREE_CLASSES = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
REGRESSION = Task.regression()


def test_one_answer_of_the_task_per_instance_passes() -> None:
    assert prediction_problems([[0.0], [0.5], [1.0]], 3, BINARY) == []
    assert prediction_problems([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], 2, THREE_CLASSES) == []
    assert prediction_problems([[-3.5], [1e6]], 2, REGRESSION) == []


@pytest.mark.parametrize(
    ("predictions", "task", "problem"),
    [
        ([[0.5]], BINARY, "1 predictions for 2 instances"),
        ([[0.5], [1.5]], BINARY, "prediction 1: outside [0, 1]: 1.5"),
        ([[0.5], [math.nan]], BINARY, "prediction 1: not finite: nan"),
        ([[0.5], [0.1, 0.9]], BINARY, "prediction 1: expected [probability], got [0.1, 0.9]"),
        ([[0.5], 0.5], BINARY, "prediction 1: expected [probability], got 0.5"),
        ([[0.5], ["NaN"]], BINARY, "prediction 1: expected a number, got 'NaN'"),
        ([[0.5], [True]], BINARY, "prediction 1: expected a number, got True"),
        ([[0.2, 0.3, 0.5], [0.5]], THREE_CLASSES, "prediction 1: expected 3 class probabilities, got [0.5]"),
        ([[0.2, 0.3, 0.5], [0.2, 0.2, 0.2]], THREE_CLASSES, "prediction 1: class probabilities sum to 0.6, not 1"),
        ([[0.2, 0.3, 0.5], [1.2, -0.2, 0.0]], THREE_CLASSES, "prediction 1: outside [0, 1]: 1.2"),
        ([[1.0], [math.inf]], REGRESSION, "prediction 1: not finite: inf"),
        ([[1.0], [1.0, 2.0]], REGRESSION, "prediction 1: expected [value], got [1.0, 2.0]"),
    ],
)
def test_what_breaks_the_response_schema(predictions: list, task: Task, problem: str) -> None:
    assert problem in prediction_problems(predictions, 2, task)


def test_instances_need_exactly_the_raw_features() -> None:
    keys, first = features.RAW_FEATURE_KEYS, features.RAW_FEATURE_KEYS[0]
    assert instance_problems([INSTANCE], keys) == []
    missing = {key: value for key, value in INSTANCE.items() if key != first}
    assert instance_problems([missing], keys) == [f"instance 0: missing features [{first!r}], unknown features []"]
    assert instance_problems([INSTANCE | {NOT_SERVED: 1.0}], keys) == [
        f"instance 0: missing features [], unknown features [{NOT_SERVED!r}]"
    ]
    assert instance_problems([INSTANCE | {first: None}], keys) == [f"instance 0: {first} must be numbers or strings"]
    assert instance_problems([], keys) == ["no instances"]


def test_values_must_fit_their_columns_type_as_tf_serving_reads_json() -> None:
    types = {"trip_start_hour": "int", "fare": "float", "company": "string", "unknown_type": None}
    good = {"trip_start_hour": 23, "fare": 6, "company": "Flash Cab", "unknown_type": [1]}
    assert value_type_problems([good], types) == []
    assert value_type_problems([good | {"trip_start_hour": 23.0}], types) == [
        "instance 0: trip_start_hour must be an integer (the model reads int), got 23.0"
    ]
    assert value_type_problems([good | {"fare": "6.05"}], types) == [
        "instance 0: fare must be a number (the model reads float), got '6.05'"
    ]
    assert value_type_problems([good | {"company": 7}], types) == [
        "instance 0: company must be a string (the model reads string), got 7"
    ]


def test_tasks_check_their_classes_and_travel_as_json() -> None:
    for task in (BINARY, THREE_CLASSES, REGRESSION, label.TASK):
        assert Task.from_json(task.to_json()) == task
    assert (BINARY.output_key, BINARY.output_width) == ("probabilities", 1)
    assert (THREE_CLASSES.output_key, THREE_CLASSES.output_width) == ("probabilities", 3)
    assert (REGRESSION.output_key, REGRESSION.output_width) == ("predictions", 1)
    assert THREE_CLASSES.class_name(2) == "virginica" and THREE_CLASSES.class_name(7) == "class 7"
    with pytest.raises(ValueError, match="a binary task has 2 classes"):
        Task.binary(classes=("a", "b", "c"))
    with pytest.raises(ValueError, match="for 2 use Task.binary"):
        Task.multiclass(classes=("a", "b"))
    with pytest.raises(ValueError, match="class names must differ"):
        Task.multiclass(classes=("a", "b", "a"))
    with pytest.raises(ValueError, match="expected one of binary, multiclass, regression"):
        Task("ranking")


def test_the_committed_serving_instances_fit_the_model_and_the_schema() -> None:
    instances = load_instances(SmokeTestConfig().instances_path)
    assert instances
    assert instance_problems(instances, features.RAW_FEATURE_KEYS) == []
    columns, _ = tfx_pipeline.schema_columns(load_config())
    if columns is not None:  # a curated schema here: every value of its column's type
        assert value_type_problems(instances, columns) == []
    assert tfx_pipeline.check_model_fit(load_config()) == instances
