"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

What the example's model learns from the taxi sample, in one short real local run: card payers tip,
and cash tips are not recorded in this data, so a card payer's trip gets the higher probability of
a big tip. The run itself, and what any model's signatures answer: tests/runners/local/.
"""

import json
from pathlib import Path

import pytest
import tensorflow as tf

from models import serving
from runners import errors
from tests.runners.conftest import lenient_run_config, run_cli

pytestmark = [pytest.mark.example, pytest.mark.e2e]

CARD, CASH = "Credit Card", "Cash"
TRIP = {
    "fare": 12.45, "trip_miles": 2.1, "trip_seconds": 600, "company": "Flash Cab", "trip_start_hour": 19,
    "trip_start_day": 6, "trip_start_month": 5, "pickup_community_area": 8, "dropoff_community_area": 32,
    "pickup_latitude": 41.89, "pickup_longitude": -87.63, "dropoff_latitude": 41.88, "dropoff_longitude": -87.62,
}  # fmt: skip


@pytest.fixture(scope="module")
def pushed_model(tmp_path_factory: pytest.TempPathFactory, small_data_dir: Path) -> Path:
    """The model a run of 150 steps on 1,500 trips of the taxi sample pushed."""
    work = tmp_path_factory.mktemp("example-run")
    config = work / "test.yaml"
    config.write_text(lenient_run_config(train_steps=150, eval_steps=10, minimum=0.75, slice_features=[]))
    summary = work / "summary.json"
    status, _, stderr = run_cli(
        ["run-local", "--config", str(config), "--data", str(small_data_dir), "--output-dir", str(work / "out"),
         "--summary-json", str(summary), "--require-blessing"]
    )  # fmt: skip
    assert status == errors.EXIT_OK, stderr
    return Path(json.loads(summary.read_text())["pushed_model"])


def test_a_card_payer_more_likely_tips_big_than_a_cash_payer(pushed_model: Path) -> None:
    raw = tf.saved_model.load(str(pushed_model)).signatures[serving.DEFAULT_SIGNATURE]
    specs = raw.structured_input_signature[1]
    trips = [{**TRIP, "payment_type": CARD}, {**TRIP, "payment_type": CASH}]
    columns = {key: tf.constant([trip[key] for trip in trips], spec.dtype) for key, spec in specs.items()}
    card, cash = raw(**columns)["probabilities"].numpy()[:, 0]
    assert card > cash
