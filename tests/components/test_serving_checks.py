import math

import pytest

from components.serving_checks import instance_problems, prediction_problems
from models import features
from pipeline.deploy_config import SmokeTestConfig
from runners.promotion.smoke import load_instances

INSTANCE = dict.fromkeys(features.RAW_FEATURE_KEYS, 1) | {"payment_type": "Cash", "company": ""}


def test_one_probability_per_instance_passes() -> None:
    assert prediction_problems([[0.0], [0.5], [1.0]], 3) == []


@pytest.mark.parametrize(
    ("predictions", "problem"),
    [
        ([[0.5]], "1 predictions for 2 instances"),
        ([[0.5], [1.5]], "prediction 1: outside [0, 1]: 1.5"),
        ([[0.5], [math.nan]], "prediction 1: not finite: nan"),
        ([[0.5], [0.1, 0.9]], "prediction 1: expected [probability], got [0.1, 0.9]"),
        ([[0.5], 0.5], "prediction 1: expected [probability], got 0.5"),
        ([[0.5], ["NaN"]], "prediction 1: expected a number, got 'NaN'"),
        ([[0.5], [True]], "prediction 1: expected a number, got True"),
    ],
)
def test_what_breaks_the_response_schema(predictions: list, problem: str) -> None:
    assert problem in prediction_problems(predictions, 2)


def test_instances_need_exactly_the_raw_features() -> None:
    assert instance_problems([INSTANCE]) == []
    missing = {key: value for key, value in INSTANCE.items() if key != "fare"}
    assert instance_problems([missing]) == ["instance 0: missing features ['fare'], unknown features []"]
    assert instance_problems([INSTANCE | {"tips": 1.0}]) == [
        "instance 0: missing features [], unknown features ['tips']"
    ]
    assert instance_problems([INSTANCE | {"fare": None}]) == ["instance 0: fare must be numbers or strings"]
    assert instance_problems([]) == ["no instances"]


def test_the_committed_sample_instances_are_valid() -> None:
    instances = load_instances(SmokeTestConfig().instances_path)
    assert len(instances) == 8
    assert instance_problems(instances) == []
    assert {type(instances[0][key]) for key in ("payment_type", "company")} == {str}
