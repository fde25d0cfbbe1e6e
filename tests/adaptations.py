"""Two generated datasets, and the files a user writes to make the template theirs (README "Make it
yours"; tests/test_make_it_yours.py applies them).

- mobile-plans: the plan a customer chooses, one of three, from spending, usage, region and household.
- churn-risk: whether a subscriber cancels (a 0/1 column), from contract, payment, tickets and
  charges, with 5% of one column empty.

Each dataset is generated with a fixed seed, its class derived from the features with noise, so that
the template's small network reaches an AUC clearly above the blessing bar and clearly below its
"too good to be true" ceiling.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.serving_checks import Task

# CSV columns by name, the label's included; '' is an empty cell.
Columns = dict[str, list[Any]]


@dataclass(frozen=True)
class Adaptation:
    """One dataset and what a user writes for it."""

    pipeline_name: str
    generate: Callable[[np.random.Generator, int], Columns]
    task: Task
    label_py: str  # models/label.py
    label_column: str  # the column models/label.py computes the label from
    # models/features.py, by encoding (models/preprocessing.py):
    numeric: tuple[str, ...]  # non-negative amounts: log1p, then z-score
    buckets: tuple[str, ...]  # any numbers: quantile buckets
    vocabulary: tuple[str, ...]  # text categories: a vocabulary, with buckets for unseen values
    integer_ranges: Mapping[str, tuple[int, int]]  # integer codes with a known range
    evaluation: Mapping[str, Any]  # the `evaluation` section of configs/base.yaml
    smoke_instances_json: str  # configs/smoke_instances.json
    label_cases: tuple[tuple[Any, int], ...]  # (a value of the label column, its class index), for its example test
    # Text categories whose share of each value may move by at most this much (L-infinity) between
    # the data of the current model and new data (docs/data-validation.md).
    drift_thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def smoke_instances(self) -> list[dict[str, Any]]:
        return json.loads(self.smoke_instances_json)


def mobile_plans(rng: np.random.Generator, rows: int) -> Columns:
    spend = np.round(rng.lognormal(3.4, 0.5, rows), 2)
    data_gb = np.round(rng.gamma(2.0, 6.0, rows), 1)
    tenure = rng.integers(0, 120, rows)
    balance = np.round(rng.normal(0.0, 15.0, rows), 2)
    region = rng.choice(["north", "south", "east", "west", "central"], rows)
    household = rng.integers(1, 7, rows)
    region_effect = {"north": 0.3, "south": -0.2, "east": 0.0, "west": 0.4, "central": -0.5}
    score = (
        1.2 * _standard(np.log1p(spend))
        + 0.8 * _standard(np.log1p(data_gb))
        + 0.35 * (household - 3.5)
        + np.array([region_effect[name] for name in region])
        + 0.3 * _standard(balance)
        + 0.01 * tenure
        + rng.normal(0.0, 0.6, rows)
    )
    low, high = np.quantile(score, [0.4, 0.75])
    plan = np.where(score < low, "basic", np.where(score < high, "plus", "premium"))
    return {
        "monthly_spend": spend.tolist(),
        "data_gb": data_gb.tolist(),
        "tenure_months": tenure.tolist(),
        "balance_change": balance.tolist(),
        "region": region.tolist(),
        "household_size": household.tolist(),
        "plan": plan.tolist(),
    }


def churn_risk(rng: np.random.Generator, rows: int) -> Columns:
    age = rng.integers(18, 81, rows)
    charges = np.round(rng.uniform(20.0, 120.0, rows), 2)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.5, 0.3, 0.2])
    method = rng.choice(["card", "bank-transfer", "check", "wallet"], rows)
    tickets = rng.poisson(1.5, rows).clip(0, 9)
    login = np.round(rng.exponential(10.0, rows), 1)
    logit = (
        -1.8
        + 2.4 * (contract == "month-to-month")
        - 1.5 * (contract == "two-year")
        + 0.7 * tickets
        + 0.045 * (charges - 70.0)
        + 0.09 * (login - 10.0)
        - 0.045 * (age - 45)
        + 0.75 * (method == "check")
    )
    churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    unknown_login = rng.random(rows) < 0.05
    return {
        "age": age.tolist(),
        "monthly_charges": charges.tolist(),
        "contract": contract.tolist(),
        "payment_method": method.tolist(),
        "support_tickets": tickets.tolist(),
        "last_login_days": [
            "" if unknown else days for unknown, days in zip(unknown_login, login.tolist(), strict=True)
        ],
        "churned": churned.tolist(),
    }


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def label_module(doc: str, task: str, column: str, compute: str, imports: str = "Task") -> str:
    """models/label.py: the three declarations its docstring explains (TASK, COLUMNS, compute)."""
    return textwrap.dedent(
        f'''\
        """{doc}"""

        from __future__ import annotations

        from collections.abc import Mapping
        from typing import Any

        from models.task import {imports}

        TASK = {task}
        COLUMNS = ("{column}",)


        def compute(columns: Mapping[str, Any]) -> Any:
            return {compute}
        '''
    )


def example_test(adaptation: Adaptation) -> str:
    """tests/example/test_<name>.py: the dataset's own tests, in place of the taxi example's."""
    column = adaptation.label_column
    values = [value for value, _ in adaptation.label_cases]
    indices = [index for _, index in adaptation.label_cases]
    return textwrap.dedent(
        f'''\
        """The {adaptation.pipeline_name} example's own tests: its name and its label."""

        import numpy as np
        import pytest

        from models import label
        from pipeline.config import load_config

        pytestmark = pytest.mark.example


        def test_the_pipeline_is_{adaptation.pipeline_name.replace("-", "_")}() -> None:
            assert load_config().pipeline_name == "{adaptation.pipeline_name}"


        def test_the_label_is_the_class_of_the_{column}_column() -> None:
            assert label.compute({{"{column}": np.array({values!r})}}).tolist() == {indices!r}
        '''
    )


def features_module(adaptation: Adaptation) -> str:
    """models/features.py: the template's file with the dataset's columns in its four lists."""
    return textwrap.dedent(
        f'''\
        """The {adaptation.pipeline_name} features the model uses, and how each one is encoded."""

        # Non-negative amounts: log1p, then z-score.
        NUMERIC_FEATURE_KEYS: list[str] = {list(adaptation.numeric)!r}

        # Any numbers: quantile buckets.
        BUCKET_FEATURE_KEYS: list[str] = {list(adaptation.buckets)!r}
        BUCKET_COUNT = 10

        # Text categories: a vocabulary with out-of-vocabulary buckets.
        VOCABULARY_FEATURE_KEYS: list[str] = {list(adaptation.vocabulary)!r}
        VOCAB_TOP_K = 1000
        OOV_BUCKETS = 10

        # Integer codes with a fixed range (as in the curated schema's int_domain).
        INTEGER_CATEGORY_RANGES: dict[str, tuple[int, int]] = {dict(adaptation.integer_ranges)!r}

        CATEGORICAL_FEATURE_KEYS = VOCABULARY_FEATURE_KEYS + list(INTEGER_CATEGORY_RANGES)
        RAW_FEATURE_KEYS = NUMERIC_FEATURE_KEYS + BUCKET_FEATURE_KEYS + CATEGORICAL_FEATURE_KEYS


        def transformed_name(key: str) -> str:
            return f"{{key}}_xf"


        def integer_category_buckets(key: str) -> int:
            low, high = INTEGER_CATEGORY_RANGES[key]
            return high - low + 2
        '''
    )


def curated_schema(proposal: str, adaptation: Adaptation) -> str:
    """The README's curation of `make schema`'s proposal: the integer categories' ranges, no negative
    amounts, a tolerated share of unknown text categories, drift thresholds, and a header saying
    where it came from."""
    schema = text_format.Parse(proposal, schema_pb2.Schema())
    for feature in schema.feature:
        if feature.name in adaptation.integer_ranges:
            feature.int_domain.min, feature.int_domain.max = adaptation.integer_ranges[feature.name]
        elif feature.name in adaptation.numeric and feature.type == schema_pb2.FLOAT:
            feature.float_domain.min = 0.0
        elif feature.name in adaptation.numeric:
            feature.int_domain.min = 0
        if feature.name in adaptation.vocabulary:
            feature.distribution_constraints.min_domain_mass = 0.99
        if feature.name in adaptation.drift_thresholds:
            feature.drift_comparator.infinity_norm.threshold = adaptation.drift_thresholds[feature.name]
    header = f"# The curated schema of the {adaptation.pipeline_name} data: `make schema`'s proposal, reviewed.\n"
    return header + text_format.MessageToString(schema)


PLANS = Adaptation(
    pipeline_name="mobile-plans",
    generate=mobile_plans,
    task=Task.multiclass(("basic", "plus", "premium")),
    label_py=label_module(
        "What the model predicts: the plan a customer chooses.",
        'Task.multiclass(classes=("basic", "plus", "premium"))',
        "plan",
        'class_index(TASK, columns["plan"])',
        imports="Task, class_index",
    ),
    label_column="plan",
    label_cases=(("premium", 2), ("basic", 0), ("plus", 1)),
    numeric=("monthly_spend", "data_gb", "tenure_months"),
    buckets=("balance_change",),
    vocabulary=("region",),
    integer_ranges={"household_size": (1, 6)},
    evaluation={
        "metrics": ["accuracy"],
        "blessing": {"metric": "auc", "minimum": 0.85, "maximum": 0.995, "max_drop": 0.01},
        "slice_features": ["region"],
    },
    # The last one: a region never seen in training and a household size outside the range.
    smoke_instances_json="""\
[
  {"monthly_spend": 29.98, "data_gb": 12.3, "tenure_months": 80, "balance_change": -3.45, "region": "south", "household_size": 2},
  {"monthly_spend": 55.0, "data_gb": 40.5, "tenure_months": 3, "balance_change": 12.0, "region": "west", "household_size": 5},
  {"monthly_spend": 0.0, "data_gb": 0.0, "tenure_months": 0, "balance_change": 0.0, "region": "offshore", "household_size": 0}
]
""",  # noqa: E501
)

CHURN = Adaptation(
    pipeline_name="churn-risk",
    generate=churn_risk,
    task=Task.binary(("stayed", "churned")),
    label_py=label_module(
        "What the model predicts: whether a subscriber cancels (the 0/1 column `churned`).",
        'Task.binary(classes=("stayed", "churned"))',
        "churned",
        'columns["churned"]',
    ),
    label_column="churned",
    label_cases=((0, 0), (1, 1), (1, 1)),
    drift_thresholds={"contract": 0.1},
    numeric=("age", "monthly_charges", "last_login_days"),
    buckets=(),
    vocabulary=("contract", "payment_method"),
    integer_ranges={"support_tickets": (0, 9)},
    evaluation={
        "metrics": ["auc_precision_recall", "accuracy"],
        "blessing": {"metric": "auc", "minimum": 0.8, "maximum": 0.995, "max_drop": 0.01},
        "slice_features": ["contract"],
    },
    smoke_instances_json="""\
[
  {"age": 26, "monthly_charges": 86.77, "contract": "month-to-month", "payment_method": "check", "support_tickets": 4, "last_login_days": 17.3},
  {"age": 61, "monthly_charges": 25.5, "contract": "two-year", "payment_method": "card", "support_tickets": 0, "last_login_days": 0.5}
]
""",  # noqa: E501
)
