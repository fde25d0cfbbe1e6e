import numpy as np
import pytest
import tensorflow as tf

from models import features, preprocessing
from tests.models.conftest import trips


def test_every_model_feature_and_the_label_are_produced(transformed) -> None:
    rows, _ = transformed
    expected = {features.transformed_name(key) for key in features.RAW_FEATURE_KEYS} | {features.LABEL_XF}
    assert set(rows[0]) == expected


def test_label_is_a_big_tip_over_twenty_percent_of_the_fare(transformed) -> None:
    rows, _ = transformed
    raw = trips(len(rows))
    expected = [int(r["tips"][0] > 0.2 * r["fare"][0]) for r in raw]
    assert [row[features.LABEL_XF] for row in rows] == expected
    assert 0 < sum(expected) < len(expected)


def test_amounts_are_log_scaled_to_zero_mean_unit_variance(transformed) -> None:
    rows, _ = transformed
    fares = np.array([row["fare_xf"] for row in rows])
    assert fares.mean() == pytest.approx(0, abs=1e-4)
    assert fares.std() == pytest.approx(1, abs=1e-3)
    raw = np.log1p([r["fare"][0] for r in trips(len(rows))])
    assert np.corrcoef(raw, fares)[0, 1] == pytest.approx(1.0)


def test_categories_get_vocabulary_indices_with_room_for_unseen_values(transformed) -> None:
    rows, output = transformed
    payment = {row["payment_type_xf"] for row in rows}
    assert payment == {0, 1}
    buckets = output.num_buckets_for_transformed_feature("payment_type_xf")
    assert buckets == 2 + features.OOV_BUCKETS
    # A missing community area becomes its own category (''-like default 0 is a vocabulary entry).
    assert len({row["dropoff_community_area_xf"] for row in rows}) == 2


def test_coordinates_are_bucketized(transformed) -> None:
    rows, output = transformed
    values = {row["pickup_latitude_xf"] for row in rows}
    assert values <= set(range(features.BUCKET_COUNT))
    assert len(values) > 5
    assert output.num_buckets_for_transformed_feature("pickup_latitude_xf") == features.BUCKET_COUNT


def test_fill_in_missing_uses_empty_string_and_zero() -> None:
    strings = tf.sparse.SparseTensor(indices=[[1, 0]], values=[b"x"], dense_shape=[2, 1])
    numbers = tf.sparse.SparseTensor(indices=[[0, 0]], values=[2.5], dense_shape=[2, 1])
    assert preprocessing.fill_in_missing(strings).numpy().tolist() == [b"", b"x"]
    assert preprocessing.fill_in_missing(numbers).numpy().tolist() == [2.5, 0.0]
