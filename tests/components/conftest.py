"""A real exported SavedModel (models/serving.py on a real TFT output) and eval examples as the
Examples artifact stores them (gzipped TFRecords under Split-eval), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from models import serving
from models.model import Hyperparameters, build_model
from tests.models.conftest import transformed, trips  # noqa: F401 (session fixture: real TFT output)
from tests.models.test_model import dataset
from tests.standins.fixtures import storage_emulator, vertex_env  # noqa: F401 (the registration uploads)

EVAL_ROWS = 12


def example_of(trip: dict) -> bytes:
    """A raw trip (label included) as CsvExampleGen writes it; empty features are left out."""
    feature = {}
    for key, values in trip.items():
        if not values:
            continue
        if isinstance(values[0], bytes):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif isinstance(values[0], int):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="session")
def model_uri(transformed, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A Model artifact folder: the SavedModel is in <uri>/Format-Serving, as the Trainer writes it."""
    rows, output = transformed
    model = build_model(output, Hyperparameters(hidden_units=(8,)))
    model.fit(dataset(rows).repeat(), steps_per_epoch=5, verbose=0)
    uri = tmp_path_factory.mktemp("model")
    serving.export(model, output, str(uri / "Format-Serving"))
    return uri


@pytest.fixture(scope="session")
def examples_uri(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Examples artifact folder with EVAL_ROWS trips in Split-eval (and an empty Split-train)."""
    uri = tmp_path_factory.mktemp("examples")
    for split in ("Split-train", "Split-eval"):
        (uri / split).mkdir()
    with tf.io.TFRecordWriter(str(uri / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for trip in trips(EVAL_ROWS):
            writer.write(example_of(trip))
    return uri
