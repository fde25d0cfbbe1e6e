"""A CsvExampleGen executor that converts CSV to tf.Examples a block of rows at a time.

TFX's own executor parses, type-checks and builds every row in Python: about 0.25 ms a row here,
most of a 150,000-row run. This one reads each file with Arrow's CSV reader and encodes whole
blocks with tfx_bsl's C++ `RecordBatchToExamplesEncoder`, and writes the same examples:

- a column's type follows TFX's rule over all files of the split: INT if every non-empty value is
  an int64, else FLOAT if every one is a float, else STRING;
- an empty cell is a feature with no values, as in TFX's output, and so is a cell holding one of
  the configured missing-value tokens (`data.missing_values`, read from custom_config as
  components/csv_examples.py reads them);
- each example goes to the split TFX's executor would put it in.

Unlike in TFX's executor, a file, not a line, is the unit of parallel work: this runs only on the
DirectRunner. On other runners (Dataflow, on Vertex AI) the executor runs TFX's own Do and
conversion unchanged, which spread the lines of every file over the workers. Stock behaviour:
`fast_paths.csv_examples: false` (components/csv_examples.py's CsvExampleGen with TFX's executor);
tests/components/fast/test_csv_examples.py checks that both write the same examples in the same splits.

Library internals it relies on (re-check on a TFX or tfx_bsl upgrade):
- `tfx.components.example_gen.base_example_gen_executor._PartitionFn` (private): the hash of the
  serialized example that picks its split; and that TFX's `Do` still writes what `Executor.Do`
  writes here (split folders, `data_tfrecord-*.gz` shards, payload and file format properties);
- `tfx.components.example_gen.csv_example_gen.executor`'s type rule (INT, FLOAT, STRING per column
  over all files) and how it writes empty cells;
- `tfx_bsl.coders.example_coder.RecordBatchToExamplesEncoder` (its feature order is not stable, so
  the examples are re-serialized with sorted keys).
A UTF-8 byte-order mark before the header is skipped.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from tensorflow.core.example.example_pb2 import Example
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor, _PartitionFn
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import Artifact, artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils
from tfx_bsl.coders import example_coder

from components import csv_examples

INT, FLOAT, STRING = "INT", "FLOAT", "STRING"
# Lowest to highest: a column takes the highest type any of its values needs.
_TYPE_ORDER = {None: 0, INT: 1, FLOAT: 2, STRING: 3}
_ARROW_TYPES = {INT: pa.int64(), FLOAT: pa.float64(), STRING: pa.binary()}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
BLOCK_BYTES = 16 << 20
INCOMPLETE_SUFFIX = ".incomplete"
BYTE_ORDER_MARK = "\ufeff"

ColumnTypes = Mapping[str, str | None]


class CsvTypeError(ValueError):
    """The CSV files cannot be turned into examples."""


def read_blocks(path: str, block_bytes: int = BLOCK_BYTES, missing: Sequence[str] = ("",)) -> Iterator[pa.RecordBatch]:
    """The file's rows as blocks of string columns; empty cells, and cells holding a `missing` token, are null."""
    with FileSystems.open(path) as stream:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(block_size=block_bytes),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=_all_strings(path),
                null_values=list(dict.fromkeys(["", *missing])),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        yield from reader


@functools.lru_cache(maxsize=64)
def _all_strings(path: str) -> dict[str, pa.DataType]:
    names = io_utils.load_csv_column_names(path)
    # Arrow's reader skips a UTF-8 byte-order mark; TFX's header reader keeps it in the first name.
    names[0] = names[0].removeprefix(BYTE_ORDER_MARK)
    return {name: pa.string() for name in names}


def infer_column_types(path: str, missing: Sequence[str] = ("",)) -> dict[str, str | None]:
    """Each column's type in one file; None for a column with no values."""
    types: dict[str, str | None] = {name: None for name in _all_strings(path)}
    for block in read_blocks(path, missing=missing):
        for name, column in zip(block.schema.names, block.columns, strict=True):
            types[name] = _wider(types[name], _column_type(column))
    return types


def merge_column_types(per_file: Iterable[ColumnTypes]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for types in per_file:
        if merged and set(types) != set(merged):
            raise CsvTypeError(f"CSV files have different headers: {sorted(merged)} and {sorted(types)}")
        for name, column_type in types.items():
            merged[name] = _wider(merged.get(name), column_type)
    return merged


def encode_file(path: str, column_types: ColumnTypes, missing: Sequence[str] = ("",)) -> Iterator[bytes]:
    """The file's rows as serialized tf.Examples, features in the columns' types."""
    # A column with no value in any file has no type: TFX writes it as a feature without values.
    untyped = [name for name, column_type in column_types.items() if column_type is None]
    encoder = example_coder.RecordBatchToExamplesEncoder()
    # Rows leave in a shuffled order within each block (seeded by the file name: the same on every
    # run), so training input is mixed even where the global shuffle is skipped (Executor.Do).
    shuffler = random.Random(path)
    for block in read_blocks(path, missing=missing):
        names = [name for name in block.schema.names if column_types[name] is not None]
        lists = [_as_lists(block.column(name), column_types[name]) for name in names]
        encoded_rows = encoder.encode(pa.RecordBatch.from_arrays(lists, names))
        shuffler.shuffle(encoded_rows)
        for encoded in encoded_rows:
            example = Example.FromString(encoded)
            for name in untyped:
                example.features.feature.get_or_create(name)
            # Sorted feature keys (about 30 us a row): TFX's ExampleGen hashes these bytes to choose
            # the split, and tfx_bsl's encoder orders the features differently in every process.
            # Sorted, every example lands where TFX's executor puts it, on every run.
            yield example.SerializeToString(deterministic=True)


def _column_type(column: pa.Array) -> str | None:
    values = column.drop_null()
    if len(values) == 0:
        return None
    # Arrow's number parsing accepts a subset of what Python's int() and float() accept, with the
    # same values; anything it refuses is decided value by value, by TFX's rule.
    if _casts(values, INT):
        return INT
    if _casts(values, FLOAT):
        # Arrow reads an integer beyond int64 as a float; by TFX's rule it makes the column STRING.
        whole_numbers = values.filter(pc.match_substring_regex(values, r"^\s*[+-]?[0-9_]+\s*$"))
        return _widest(whole_numbers, FLOAT)
    return _widest(values, None)


def _casts(values: pa.Array, column_type: str) -> bool:
    try:
        values.cast(_ARROW_TYPES[column_type])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _widest(values: pa.Array, start: str | None) -> str | None:
    return functools.reduce(_wider, (_value_type(value) for value in pc.unique(values).to_pylist()), start)


def _value_type(value: str) -> str:
    try:
        return INT if _INT64_MIN <= int(value) <= _INT64_MAX else STRING
    except ValueError:
        try:
            float(value)
        except ValueError:
            return STRING
        return FLOAT


def _wider(a: str | None, b: str | None) -> str | None:
    return a if _TYPE_ORDER[a] >= _TYPE_ORDER[b] else b


def _as_lists(column: pa.Array, column_type: str) -> pa.Array:
    """One list per row: the value converted to the column's type, or an empty list."""
    values = column.drop_null()
    try:
        converted = values.cast(_ARROW_TYPES[column_type])  # text to bytes (STRING) always casts
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Numbers Python's int() or float() reads but Arrow's parser does not (" 9").
        convert = int if column_type == INT else float
        converted = pa.array([convert(value) for value in values.to_pylist()], _ARROW_TYPES[column_type])
    if column_type == FLOAT:
        converted = converted.cast(pa.float32())  # tf.train.FloatList holds float32
    present = pc.cast(pc.is_valid(column), pa.int32())
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(present)])
    return pa.ListArray.from_arrays(offsets, converted)


class Shard(NamedTuple):
    """A CSV file and the files its examples go to, one per output split."""

    path: str
    split_files: Sequence[str]


def write_shards(
    shard: Shard,
    column_types: ColumnTypes,
    partition: Callable[[bytes], int] | None,
    missing: Sequence[str] = ("",),
) -> None:
    """Writes one CSV file's examples into its split files, each under a temporary name until done
    (and removed if the file fails).

    `partition` chooses each example's split (an index into `shard.split_files`); None puts all in
    the first.
    """
    writing = [f"{name}{INCOMPLETE_SUFFIX}" for name in shard.split_files]
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [tf.io.TFRecordWriter(name, options) for name in writing]
    try:
        try:
            for record in encode_file(shard.path, column_types, missing):
                writers[partition(record) if partition else 0].write(record)
        finally:
            for writer in writers:
                writer.close()
    except BaseException:
        for name in writing:
            fileio.remove(name)
        raise
    for temporary, final in zip(writing, shard.split_files, strict=True):
        fileio.rename(temporary, final, overwrite=True)


def _csv_files(exec_properties: dict[str, Any], split_pattern: str) -> list[str]:
    pattern = f"{exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip('/')}/{split_pattern}"
    files = sorted(fileio.glob(pattern))
    if not files:
        raise RuntimeError(f"Split pattern {pattern} does not match any files.")
    return files


def _column_types(paths: beam.PCollection, label: str, missing: Sequence[str]) -> beam.pvalue.AsSingleton:
    """The column types over all files (TFX's rule needs every value of a column before encoding)."""
    return beam.pvalue.AsSingleton(
        paths
        | f"InferColumnTypes{label}" >> beam.Map(infer_column_types, missing=missing)
        | f"MergeColumnTypes{label}" >> beam.CombineGlobally(merge_column_types)
    )


class Executor(BaseExampleGenExecutor):
    """CsvExampleGen's executor, with block-wise conversion (see the module docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """TFX's own conversion (reading the missing-value tokens), for TFX's Do on other runners: a
        line, not a file, is the unit of parallel work there, so one large CSV file is spread over
        Dataflow's workers."""
        return csv_examples.Executor().GetInputSourceToExamplePTransform()

    def Do(
        self,
        input_dict: dict[str, list[Artifact]],
        output_dict: dict[str, list[Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """TFX's ExampleGen Do, on the DirectRunner without its global shuffle and per-row Beam steps.

        TFX reshuffles every split before writing it, which on the DirectRunner holds every example
        in memory at once (4.8 GB at 1.5 million rows), then partitions and writes the examples one
        Beam element at a time. In this process each CSV file is instead encoded, partitioned by
        TFX's own partition function and written straight to one shard per split (`write_shards`),
        its rows shuffled within each block (`encode_file`). On other runners (Dataflow) TFX's own
        Do runs unchanged.
        """
        if not _runs_in_process(self._beam_pipeline_args):
            super().Do(input_dict, output_dict, exec_properties)
            return
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
        )
        output_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output()
        )
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        examples.split_names = artifact_utils.encode_split_names(split_names)
        folders = {split: artifact_utils.get_split_uri([examples], split) for split in split_names}
        for folder in folders.values():
            fileio.makedirs(folder)
        missing = csv_examples.missing_values(exec_properties)
        with self._make_beam_pipeline() as pipeline:
            for index, (pattern, outputs, partition) in enumerate(_split_plan(input_config, output_config)):
                files = _csv_files(exec_properties, pattern)
                shards = [
                    Shard(path, [_shard_name(folders[split], number, len(files)) for split in outputs])
                    for number, path in enumerate(files)
                ]
                csv_shards = pipeline | f"CsvFiles[{index}]" >> beam.Create(shards)
                paths = csv_shards | f"Paths[{index}]" >> beam.Keys()
                column_types = _column_types(paths, f"[{index}]", missing)
                _ = csv_shards | f"WriteShards[{index}]" >> beam.Map(
                    write_shards, column_types=column_types, partition=partition, missing=missing
                )
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))


def _split_plan(
    input_config: example_gen_pb2.Input, output_config: example_gen_pb2.Output
) -> list[tuple[str, list[str], Callable[[bytes], int] | None]]:
    """(input pattern, output split names, partition) per input split, as TFX's GenerateExamplesByBeam."""
    split_config = output_config.split_config
    if not split_config.splits:
        return [(split.pattern, [split.name], None) for split in input_config.splits]
    if len(input_config.splits) != 1:
        raise ValueError("input must have only one split when output split is specified.")
    if split_config.HasField("partition_feature_name"):
        raise ValueError("partition_feature_name is not supported: examples are split by the hash of their bytes")
    buckets = list(itertools.accumulate(split.hash_buckets for split in split_config.splits))
    partition = functools.partial(_PartitionFn, num_partitions=len(buckets), buckets=buckets, split_config=split_config)
    return [(input_config.splits[0].pattern, [split.name for split in split_config.splits], partition)]


def _shard_name(folder: str, number: int, count: int) -> str:
    return f"{folder}/{write_split.DEFAULT_FILE_NAME}-{number:05d}-of-{count:05d}.gz"


def _runs_in_process(beam_pipeline_args: list[str] | None) -> bool:
    runner = PipelineOptions(beam_pipeline_args or []).view_as(StandardOptions).runner
    return runner in (None, "DirectRunner", "direct")


class CsvExampleGen(csv_examples.CsvExampleGen):
    """components/csv_examples.py's CsvExampleGen (TFX's, with a driver that fingerprints the input by
    content) with the block-wise executor above."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
