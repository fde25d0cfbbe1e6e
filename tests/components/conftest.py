"""A real exported SavedModel (models/serving.py on a real TFT output) and eval examples as the
Examples artifact stores them (gzipped TFRecords under Split-eval), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from models import serving
from models.model import Hyperparameters, build_model
from tests.models.conftest import (  # noqa: F401 (transformed: session fixture)
    dataset,
    serialized_example,
    transformed,
    trips,
)
from tools.standins.fixtures import storage_emulator, vertex_env  # noqa: F401 (the registration uploads)

EVAL_ROWS = 12


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
            writer.write(serialized_example(trip, with_label=True))
    return uri
