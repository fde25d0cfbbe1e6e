import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features, label, preprocessing
from models.task import LABEL_XF, Task, class_index, label_array, label_tensor
from pipeline.paths import REPO_ROOT
from tests.models.conftest import trips

CURATED_SCHEMA = REPO_ROOT / "schema" / "schema.pbtxt"


def test_every_model_feature_and_the_label_are_produced(transformed) -> None:
    rows, _ = transformed
    expected = {features.transformed_name(key) for key in features.RAW_FEATURE_KEYS} | {LABEL_XF}
    assert set(rows[0]) == expected


def test_label_is_a_big_tip_over_twenty_percent_of_the_fare(transformed) -> None:
    rows, _ = transformed
    raw = trips(len(rows))
    expected = [int(r["tips"][0] > 0.2 * r["fare"][0]) for r in raw]
    assert [row[LABEL_XF] for row in rows] == expected
    assert 0 < sum(expected) < len(expected)


def test_the_label_declaration_gives_the_same_labels_on_numpy_and_tensorflow() -> None:
    """Preflight computes the label on NumPy arrays of the CSV rows, Transform on tensors: the same function."""
    raw = trips(50)
    columns = {key: np.array([r[key][0] for r in raw], np.float32) for key in label.COLUMNS}
    from_numpy = label_array(label.TASK, label.compute(columns))
    tensors = {key: tf.constant(values) for key, values in columns.items()}
    from_tensors = label_tensor(label.TASK, label.compute(tensors)).numpy()
    assert from_numpy.tolist() == from_tensors.tolist() == [int(r["tips"][0] > 0.2 * r["fare"][0]) for r in raw]
    assert from_numpy.dtype == np.int64


@pytest.mark.parametrize("as_tensor", [False, True])
def test_class_index_maps_names_and_integer_codes(as_tensor: bool) -> None:
    def run(values, dtype):
        result = class_index(task, tf.constant(values, dtype) if as_tensor else np.array(values))
        return result.numpy().tolist() if as_tensor else result.tolist()

    task = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
    assert run(["virginica", "setosa", "rose"], tf.string) == [2, 0, -1]
    codes = Task.multiclass(classes=("1", "2", "3"))
    task = codes
    assert run([3, 1, 7], tf.int64) == [2, 0, -1]
    assert run([3.0, 1.5], tf.float32) == [2, -1]


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


def test_integer_codes_are_indexed_by_their_fixed_range(transformed) -> None:
    rows, _ = transformed
    raw = trips(len(rows))
    assert [row["trip_start_hour_xf"] for row in rows] == [r["trip_start_hour"][0] + 1 for r in raw]
    assert {row["trip_start_day_xf"] for row in rows} == set(range(1, 8))
    # A missing community area is out of range: index 0, apart from every real area.
    dropoff = [row["dropoff_community_area_xf"] for row in rows]
    assert dropoff == [0 if not r["dropoff_community_area"] else 8 for r in raw]
    for key in features.INTEGER_CATEGORY_RANGES:
        assert max(row[features.transformed_name(key)] for row in rows) < features.integer_category_buckets(key)


def test_integer_category_sends_values_outside_the_range_to_zero() -> None:
    values = tf.constant([-1, 0, 1, 7, 8], tf.int64)
    assert preprocessing.integer_category(values, 1, 7).numpy().tolist() == [0, 0, 1, 7, 0]


def test_integer_category_ranges_match_the_curated_schema() -> None:
    schema = schema_pb2.Schema()
    text_format.Parse(CURATED_SCHEMA.read_text(), schema)
    domains = {feature.name: feature.int_domain for feature in schema.feature}
    for key, (low, high) in features.INTEGER_CATEGORY_RANGES.items():
        assert (domains[key].min, domains[key].max) == (low, high), key


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
