"""The configured data and the declared model, built once per session, so that the tests here hold
in a fork as they are (README "Make it yours"): rows spread over the data `data.path` names (the taxi
sample by default), converted to tf.Examples as CsvExampleGen converts them; the configured schema;
the real Transform graph (models/preprocessing.py) analysed on those rows; a model of
models/model.py trained briefly on them and exported by models/serving.py; and an Examples artifact
holding some of them (gzipped TFRecords under Split-eval, as CsvExampleGen writes them).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.public import tfxio

from components.fast import autograph, transform_export
from components.fast.csv_examples import encode_file
from models import features, label, preprocessing, serving
from models.model import Hyperparameters, build_model
from models.task import LABEL_XF
from pipeline.config import PipelineConfig, load_config
from pipeline.data import csv_files, data_dir
from runners.local.schema_proposal import csv_column_types, example_statistics
from tests.pipeline.expected import curated_schema
from tools.standins.fixtures import storage_emulator, vertex_env  # noqa: F401 (the registration uploads)

# Rows taken from the configured data, spread over all of it.
SAMPLE_ROWS = 1500
# Rows in the Split-eval of `examples_uri`, and of `evaluation_examples_uri`.
EVAL_ROWS = 12
EVALUATION_ROWS = 240
# Enough for the trained model to score clearly apart from an untrained one (test_baseline_evaluator).
TRAIN_STEPS = 30
SEED = 20261130


@dataclass(frozen=True)
class ConfiguredData:
    """Up to SAMPLE_ROWS rows of the configured data: as CSV (folder/data.csv) and as tf.Examples."""

    config: PipelineConfig
    folder: Path
    header: list[str]
    rows: list[list[str]]
    column_types: dict[str, str | None]  # as CsvExampleGen infers them over all of the configured data
    schema: schema_pb2.Schema  # the curated schema; inferred from the rows when none is configured here
    examples: list[bytes]  # the rows as serialized tf.Examples (the label's columns included), shuffled

    @property
    def missing(self) -> tuple[str, ...]:
        return self.config.data.missing_tokens


@dataclass(frozen=True)
class Transformed:
    """The Transform output of the configured rows, and the rows transformed, as the Trainer reads them."""

    output: tft.TFTransformOutput
    features: dict[str, np.ndarray]
    labels: np.ndarray

    def dataset(self, batch_size: int = 32) -> tf.data.Dataset:
        """(transformed features, label) batches."""
        return tf.data.Dataset.from_tensor_slices((self.features, self.labels)).batch(batch_size)


def read_rows(files: list[Path], limit: int) -> tuple[list[str], list[list[str]]]:
    """The first file's header and up to `limit` rows taken at even steps over all the files."""
    header: list[str] = []
    rows: list[list[str]] = []
    for file in files:
        with file.open(newline="", encoding="utf-8") as stream:
            reader = csv.reader(stream)
            first = next(reader, [])
            header = header or first
            rows.extend(row for row in reader if row)
    return header, rows[:: max(1, len(rows) // limit)][:limit]


def write_csv(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows([header, *rows])
    return folder


def schema_of(config: PipelineConfig, folder: Path) -> schema_pb2.Schema:
    """The curated schema the config names; without one here, TFDV's inference from the data in `folder`."""
    schema = curated_schema(config)
    if schema is not None:
        return schema
    import tensorflow_data_validation as tfdv

    statistics, _ = example_statistics(str(folder), config.data.missing_tokens)
    return tfdv.infer_schema(statistics, infer_feature_shape=True)


@pytest.fixture(scope="session")
def configured_data(tmp_path_factory: pytest.TempPathFactory) -> ConfiguredData:
    config = load_config()
    files = csv_files(Path(data_dir(config)))
    header, rows = read_rows(files, SAMPLE_ROWS)
    folder = write_csv(tmp_path_factory.mktemp("configured-data"), header, rows)
    column_types = csv_column_types([str(file) for file in files], config.data.missing_tokens)
    examples = sorted(encode_file(str(folder / "data.csv"), column_types, config.data.missing_tokens))
    random.Random(SEED).shuffle(examples)  # the same order on every run, wherever the sample is written
    schema = schema_of(config, folder)
    return ConfiguredData(config, folder, header, rows, column_types, schema, examples)


@pytest.fixture(scope="session")
def transformed(configured_data: ConfiguredData, tmp_path_factory: pytest.TempPathFactory) -> Transformed:
    """The real preprocessing_fn analysed with TFT on the configured rows, read as TFX's Transform
    reads them (the schema's feature spec), and the rows transformed by the resulting graph."""
    output_dir = str(tmp_path_factory.mktemp("transform"))
    schema = configured_data.schema
    source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["tests"], schema=schema)
    temp_dir = str(tmp_path_factory.mktemp("transform-tmp"))
    context = tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=preprocessing.FORCE_TF_COMPAT_V1)
    with context, beam.Pipeline() as pipeline:  # the pipeline runs on leaving, inside the context
        batches = pipeline | beam.Create(configured_data.examples, reshuffle=False) | source.BeamSource()
        transform_fn = (batches, source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema), f"{output_dir}/{tft.TFTransformOutput.RAW_METADATA_DIR}"
    )
    output = tft.TFTransformOutput(output_dir)
    raw = tf.io.parse_example(tf.constant(configured_data.examples), output.raw_feature_spec())
    transformed = {key: value.numpy() for key, value in output.transform_features_layer()(raw).items()}
    labels = transformed.pop(LABEL_XF)
    return Transformed(output, transformed, labels)


def export_as_the_trainer(model: tf.keras.Model, output: tft.TFTransformOutput, uri: Path) -> Path:
    """`uri` as a Model artifact folder: the SavedModel in <uri>/Format-Serving, exported as the Trainer
    exports it with its fast paths on (the default: components/fast/)."""
    with transform_export.loader_export(True):
        serving.export(model, output, str(uri / "Format-Serving"))
    return uri


@pytest.fixture(scope="session")
def model_uri(transformed: Transformed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Model artifact folder of the model trained briefly on the configured rows."""
    autograph.skip_tf_keras()  # as the Trainer trains: about 30 s less here
    model = build_model(transformed.output, Hyperparameters(hidden_units=(8,)))
    model.fit(transformed.dataset().repeat(), steps_per_epoch=TRAIN_STEPS, verbose=0)
    return export_as_the_trainer(model, transformed.output, tmp_path_factory.mktemp("model"))


def write_examples(uri: Path, eval_rows: list[bytes]) -> Path:
    """An Examples artifact folder with `eval_rows` in Split-eval (and an empty Split-train)."""
    for split in ("Split-train", "Split-eval"):
        (uri / split).mkdir(parents=True)
    with tf.io.TFRecordWriter(str(uri / "Split-eval" / "data_tfrecord-00000-of-00001.gz"), "GZIP") as writer:
        for row in eval_rows:
            writer.write(row)
    return uri


@pytest.fixture(scope="session")
def examples_uri(configured_data: ConfiguredData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Examples artifact folder with EVAL_ROWS configured rows in Split-eval (and an empty Split-train)."""
    return write_examples(tmp_path_factory.mktemp("examples"), configured_data.examples[:EVAL_ROWS])


@pytest.fixture(scope="session")
def evaluation_examples_uri(configured_data: ConfiguredData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Examples artifact folder with EVALUATION_ROWS configured rows in Split-eval: enough for the
    Evaluator's metrics to tell models apart."""
    return write_examples(tmp_path_factory.mktemp("evaluation"), configured_data.examples[:EVALUATION_ROWS])


def without_label_columns(serialized: bytes) -> bytes:
    """The row as a serving request carries it: without the label's own columns (models/label.py)."""
    example = tf.train.Example.FromString(serialized)
    for column in set(label.COLUMNS) - set(features.RAW_FEATURE_KEYS):
        if column in example.features.feature:
            del example.features.feature[column]
    return example.SerializeToString()


def dense_feature(output: tft.TFTransformOutput) -> tuple[str, tf.DType]:
    """A feature of the model with a value in every row (dense in the schema), and its type."""
    spec = output.raw_feature_spec()
    dense = [key for key in features.RAW_FEATURE_KEYS if isinstance(spec.get(key), tf.io.FixedLenFeature)]
    assert dense, "the schema makes none of the model's features required in every row"
    return dense[0], spec[dense[0]].dtype


def unbounded_blessing(config: PipelineConfig) -> dict[str, Any]:
    """Overrides that let the blessing metric take any value: only the baseline comparison decides."""
    if config.evaluation.blessing.higher_is_better:
        return {"evaluation.blessing.minimum": 0.0, "evaluation.blessing.maximum": None}
    return {"evaluation.blessing.minimum": None, "evaluation.blessing.maximum": 1e30}
