import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from models import features, label, preprocessing
from models.task import LABEL_XF

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


def serialized_example(trip: dict, *, with_label: bool = False) -> bytes:
    """A raw trip as CsvExampleGen writes it: empty features left out, the label only if asked."""
    feature = {}
    for key, values in trip.items():
        if not values or (key in set(label.COLUMNS) - set(features.RAW_FEATURE_KEYS) and not with_label):
            continue
        if isinstance(values[0], bytes):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif isinstance(values[0], int):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def dataset(rows: list[dict], batch_size: int = 32) -> tf.data.Dataset:
    """Transformed rows as (features, label) batches, as the Trainer's input gives them."""
    columns = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    labels = columns.pop(LABEL_XF)
    return tf.data.Dataset.from_tensor_slices((columns, labels)).batch(batch_size)


@pytest.fixture(scope="session")
def transformed() -> tuple[list[dict], tft.TFTransformOutput]:
    """Runs the real preprocessing_fn with TFT on a few hundred trips."""
    output_dir = tempfile.mkdtemp(prefix="tft-")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))
    temp_dir = tempfile.mkdtemp(prefix="tft-tmp-")
    with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=preprocessing.FORCE_TF_COMPAT_V1):
        (rows, transformed_metadata), transform_fn = (
            trips(300),
            metadata,
        ) | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(metadata, f"{output_dir}/{tft.TFTransformOutput.RAW_METADATA_DIR}")
    return rows, tft.TFTransformOutput(output_dir)
