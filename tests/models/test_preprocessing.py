import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.fast.csv_examples import FLOAT, INT
from models import features, label, preprocessing
from models.task import Task, class_index, label_array, label_tensor
from pipeline.paths import REPO_ROOT
from tests.components.conftest import ConfiguredData, Transformed

CURATED_SCHEMA = REPO_ROOT / "schema" / "schema.pbtxt"


def label_columns(data: ConfiguredData) -> dict[str, np.ndarray]:
    """The label's columns over the rows where each of them has a value, typed as CsvExampleGen types them."""
    indices = [data.header.index(column) for column in label.COLUMNS]
    rows = [row for row in data.rows if all(row[index].strip() not in data.missing for index in indices)]
    columns = {}
    for column, index in zip(label.COLUMNS, indices, strict=True):
        cells = [row[index] for row in rows]
        kind = data.column_types[column]
        if kind == INT:
            columns[column] = np.array([int(cell) for cell in cells], np.int64)
        elif kind == FLOAT:
            columns[column] = np.array([float(cell) for cell in cells], np.float32)
        else:
            columns[column] = np.array(cells, np.str_)
    return columns


def test_every_model_feature_and_the_label_are_produced(transformed: Transformed) -> None:
    expected = {features.transformed_name(key) for key in features.RAW_FEATURE_KEYS}
    assert set(transformed.features) == expected
    assert len(transformed.labels) == len(transformed.features[next(iter(expected))])


def test_the_label_declaration_gives_the_same_labels_on_numpy_and_tensorflow(configured_data: ConfiguredData) -> None:
    """Preflight computes the label on NumPy arrays of the CSV rows, Transform on tensors: the same function."""
    columns = label_columns(configured_data)
    from_numpy = label_array(label.TASK, label.compute(columns))
    tensors = {key: tf.constant(values) for key, values in columns.items()}
    from_tensors = label_tensor(label.TASK, label.compute(tensors)).numpy()
    np.testing.assert_allclose(from_numpy, from_tensors, rtol=1e-6)
    assert from_numpy.dtype == (np.int64 if label.TASK.is_classification else np.float32)
    if label.TASK.is_classification:
        assert set(from_numpy.tolist()) <= set(range(len(label.TASK.classes)))
        assert len(set(from_numpy.tolist())) >= 2


def test_transform_gives_labels_of_the_task(transformed: Transformed) -> None:
    if label.TASK.is_classification:
        assert transformed.labels.dtype == np.int64
        assert set(transformed.labels.tolist()) <= set(range(len(label.TASK.classes)))
    else:
        assert transformed.labels.dtype == np.float32
        assert np.isfinite(transformed.labels).all()


@pytest.mark.parametrize("as_tensor", [False, True])
def test_class_index_maps_names_and_integer_codes(as_tensor: bool) -> None:
    def run(values, dtype):
        result = class_index(task, tf.constant(values, dtype) if as_tensor else np.array(values))
        return result.numpy().tolist() if as_tensor else result.tolist()

    task = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
    assert run(["virginica", "setosa", "rose"], tf.string) == [2, 0, -1]
    task = Task.multiclass(classes=("1", "2", "3"))
    assert run([3, 1, 7], tf.int64) == [2, 0, -1]
    assert run([3.0, 1.5], tf.float32) == [2, -1]


@pytest.mark.parametrize("key", features.NUMERIC_FEATURE_KEYS)
def test_amounts_are_scaled_to_zero_mean_unit_variance(transformed: Transformed, key: str) -> None:
    values = transformed.features[features.transformed_name(key)]
    assert np.isfinite(values).all()
    assert values.mean() == pytest.approx(0, abs=1e-3)
    assert values.std() == pytest.approx(1, abs=1e-2) or values.std() == pytest.approx(0, abs=1e-6)  # constant


@pytest.mark.parametrize("key", features.VOCABULARY_FEATURE_KEYS)
def test_categories_get_vocabulary_indices_with_room_for_unseen_values(transformed: Transformed, key: str) -> None:
    name = features.transformed_name(key)
    values = set(transformed.features[name].tolist())
    buckets = transformed.output.num_buckets_for_transformed_feature(name)
    assert buckets > features.OOV_BUCKETS
    assert values <= set(range(buckets))
    # The most frequent value of the analysed rows is the vocabulary's first entry (the rest beyond
    # VOCAB_TOP_K shares the out-of-vocabulary buckets).
    counts = np.bincount(transformed.features[name], minlength=buckets)
    assert counts[: buckets - features.OOV_BUCKETS].argmax() == 0


@pytest.mark.parametrize("key", list(features.INTEGER_CATEGORY_RANGES))
def test_integer_codes_are_indexed_within_their_fixed_range(transformed: Transformed, key: str) -> None:
    values = transformed.features[features.transformed_name(key)]
    assert values.min() >= 0
    assert values.max() < features.integer_category_buckets(key)


def test_integer_category_sends_values_outside_the_range_to_zero() -> None:
    values = tf.constant([-1, 0, 1, 7, 8], tf.int64)
    assert preprocessing.integer_category(values, 1, 7).numpy().tolist() == [0, 0, 1, 7, 0]


def test_integer_category_ranges_match_the_curated_schema() -> None:
    schema = schema_pb2.Schema()
    text_format.Parse(CURATED_SCHEMA.read_text(), schema)
    domains = {feature.name: feature.int_domain for feature in schema.feature}
    for key, (low, high) in features.INTEGER_CATEGORY_RANGES.items():
        assert (domains[key].min, domains[key].max) == (low, high), key


@pytest.mark.parametrize("key", features.BUCKET_FEATURE_KEYS)
def test_bucket_features_are_bucketized(transformed: Transformed, key: str) -> None:
    name = features.transformed_name(key)
    assert set(transformed.features[name].tolist()) <= set(range(features.BUCKET_COUNT))
    assert transformed.output.num_buckets_for_transformed_feature(name) == features.BUCKET_COUNT


def test_fill_in_missing_uses_empty_string_and_zero() -> None:
    strings = tf.sparse.SparseTensor(indices=[[1, 0]], values=[b"x"], dense_shape=[2, 1])
    numbers = tf.sparse.SparseTensor(indices=[[0, 0]], values=[2.5], dense_shape=[2, 1])
    assert preprocessing.fill_in_missing(strings).numpy().tolist() == [b"", b"x"]
    assert preprocessing.fill_in_missing(numbers).numpy().tolist() == [2.5, 0.0]
