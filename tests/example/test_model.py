"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

The taxi model (models/) on made-up trips whose answers are known: the label Transform computes,
the encodings of the taxi columns, and a model that learns them. What holds for any model, on the
configured data: tests/models/.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.fast import autograph
from models import features, preprocessing
from models.model import Hyperparameters, build_model
from models.task import LABEL_XF

pytestmark = pytest.mark.example

# Raw features as the taxi CSV gives them, all optional (sparse) like in the inferred schema.
RAW_FEATURE_SPEC = {
    **{key: tf.io.VarLenFeature(tf.float32) for key in ["fare", "trip_miles", "tips", *features.BUCKET_FEATURE_KEYS]},
    **{key: tf.io.VarLenFeature(tf.int64) for key in ["trip_seconds", "trip_start_hour", "trip_start_day"]},
    **{key: tf.io.VarLenFeature(tf.int64) for key in ["trip_start_month", "pickup_community_area"]},
    "dropoff_community_area": tf.io.VarLenFeature(tf.int64),
    "payment_type": tf.io.VarLenFeature(tf.string),
    "company": tf.io.VarLenFeature(tf.string),
}


def trip(index: int, *, cash: bool) -> dict:
    """A plausible trip; card payers tip about 20-25%, cash payers record no tip."""
    fare = 5.0 + index % 17
    return {
        "fare": [fare],
        "trip_miles": [0.5 + (index % 9)],
        "tips": [0.0 if cash else fare * (0.15 + 0.1 * (index % 2))],
        "pickup_latitude": [41.8 + (index % 10) / 100],
        "pickup_longitude": [-87.7 + (index % 7) / 100],
        "dropoff_latitude": [41.85 + (index % 5) / 100],
        "dropoff_longitude": [-87.65 + (index % 3) / 100],
        "trip_seconds": [300 + 60 * (index % 20)],
        "trip_start_hour": [index % 24],
        "trip_start_day": [1 + index % 7],
        "trip_start_month": [1 + index % 12],
        "pickup_community_area": [1 + index % 77],
        "dropoff_community_area": [] if index % 5 == 0 else [8],
        "payment_type": [b"Cash" if cash else b"Credit Card"],
        "company": [b"Flash Cab" if index % 3 else b"Taxi Affiliation Services"],
    }


def trips(count: int) -> list[dict]:
    return [trip(index, cash=index % 3 == 0) for index in range(count)]


@pytest.fixture(scope="module")
def transformed() -> list[dict]:
    """The real preprocessing_fn, analysed with TFT on 300 trips, and the trips transformed."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))
    with tft_beam.Context(
        temp_dir=tempfile.mkdtemp(prefix="tft-tmp-"), force_tf_compat_v1=preprocessing.FORCE_TF_COMPAT_V1
    ):
        (rows, _), transform_fn = (trips(300), metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing.preprocessing_fn
        )
        output_dir = tempfile.mkdtemp(prefix="tft-")
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return rows, tft.TFTransformOutput(output_dir)


def test_the_label_is_a_big_tip_over_twenty_percent_of_the_fare(transformed) -> None:
    rows, _ = transformed
    expected = [int(r["tips"][0] > 0.2 * r["fare"][0]) for r in trips(len(rows))]
    assert [row[LABEL_XF] for row in rows] == expected
    assert 0 < sum(expected) < len(expected)


def test_fares_are_log_scaled(transformed) -> None:
    rows, _ = transformed
    fares = np.array([row["fare_xf"] for row in rows])
    raw = np.log1p([r["fare"][0] for r in trips(len(rows))])
    assert np.corrcoef(raw, fares)[0, 1] == pytest.approx(1.0)


def test_the_two_payment_types_get_the_first_vocabulary_indices(transformed) -> None:
    rows, output = transformed
    assert {row["payment_type_xf"] for row in rows} == {0, 1}
    assert output.num_buckets_for_transformed_feature("payment_type_xf") == 2 + features.OOV_BUCKETS


def test_hours_days_and_a_missing_community_area_are_indexed_by_their_range(transformed) -> None:
    rows, _ = transformed
    raw = trips(len(rows))
    assert [row["trip_start_hour_xf"] for row in rows] == [r["trip_start_hour"][0] + 1 for r in raw]
    assert {row["trip_start_day_xf"] for row in rows} == set(range(1, 8))
    # A missing community area is out of range: index 0, apart from every real area.
    assert [row["dropoff_community_area_xf"] for row in rows] == [
        0 if not r["dropoff_community_area"] else 8 for r in raw
    ]


def test_the_model_learns_who_tips_big(transformed) -> None:
    autograph.skip_tf_keras()
    rows, output = transformed
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    labels = columns.pop(LABEL_XF)
    dataset = tf.data.Dataset.from_tensor_slices((columns, labels)).batch(32)
    model = build_model(output, Hyperparameters(learning_rate=0.01, hidden_units=(16,)))
    model.fit(dataset.repeat(), steps_per_epoch=60, verbose=0)
    assert model.evaluate(dataset, verbose=0, return_dict=True)["auc"] > 0.9
