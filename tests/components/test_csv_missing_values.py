"""Missing-value tokens (`data.missing_values`): both CsvExampleGen conversions, TFX's line-wise one
(on Dataflow, and with `fast_paths.csv_examples: false`) and the block-wise one, read a cell holding
one as an empty cell, before the column types are inferred."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to

from components import csv_examples
from components.fast import csv_examples as fast_csv_examples

CSV = "amount,city,count\n1.5,Berlin,3\nNA,null,NA\n2.5,N/A,7\n,Paris,\n"
TOKENS = ("", "NA", "N/A", "null")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "data.csv").write_text(CSV)
    return tmp_path


Row = tuple[tuple[str, str, tuple], ...]


def as_row(example: tf.train.Example | bytes) -> Row:
    """(feature, kind, values) sorted by feature: comparable whatever the order of the features."""
    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    row = []
    for name, feature in sorted(example.features.feature.items()):
        kind = feature.WhichOneof("kind")
        values = tuple(v.decode() if isinstance(v, bytes) else v for v in getattr(feature, kind).value)
        row.append((name, kind, values))
    return tuple(row)


EXPECTED = [
    (("amount", "float_list", (1.5,)), ("city", "bytes_list", ("Berlin",)), ("count", "int64_list", (3,))),
    (("amount", "float_list", ()), ("city", "bytes_list", ()), ("count", "int64_list", ())),
    (("amount", "float_list", (2.5,)), ("city", "bytes_list", ()), ("count", "int64_list", (7,))),
    (("amount", "float_list", ()), ("city", "bytes_list", ("Paris",)), ("count", "int64_list", ())),
]


def tfx_conversion(data: Path, tokens: tuple[str, ...], expected: list[Row]) -> None:
    """Runs the stock executor's conversion on `data` and checks it gives `expected`."""
    exec_properties = {"input_base": str(data)}
    config = csv_examples.missing_values_config(tokens)
    if config is not None:
        from tfx.utils import proto_utils

        exec_properties["custom_config"] = proto_utils.proto_to_json(config)
    with beam.Pipeline() as pipeline:
        examples = pipeline | csv_examples.Executor().GetInputSourceToExamplePTransform()(exec_properties, "*.csv")
        assert_that(examples | beam.Map(as_row), equal_to(expected))


def test_tfx_conversion_reads_the_tokens_as_empty_cells(data: Path) -> None:
    tfx_conversion(data, TOKENS, EXPECTED)


def test_without_tokens_tfx_conversion_is_tfxs_own(data: Path) -> None:
    # "NA" is a value: the numeric columns become text.
    as_text = [
        (("amount", "bytes_list", ("1.5",)), ("city", "bytes_list", ("Berlin",)), ("count", "bytes_list", ("3",))),
        (("amount", "bytes_list", ("NA",)), ("city", "bytes_list", ("null",)), ("count", "bytes_list", ("NA",))),
        (("amount", "bytes_list", ("2.5",)), ("city", "bytes_list", ("N/A",)), ("count", "bytes_list", ("7",))),
        (("amount", "bytes_list", ()), ("city", "bytes_list", ("Paris",)), ("count", "bytes_list", ())),
    ]
    tfx_conversion(data, ("",), as_text)
    assert csv_examples.missing_values({}) == ("",)


def test_the_block_wise_conversion_reads_them_the_same(data: Path) -> None:
    path = str(data / "data.csv")
    types = fast_csv_examples.infer_column_types(path, TOKENS)
    assert types == {"amount": "FLOAT", "city": "STRING", "count": "INT"}
    encoded = [as_row(record) for record in fast_csv_examples.encode_file(path, types, TOKENS)]
    assert sorted(encoded) == sorted(EXPECTED)


def test_the_tokens_travel_in_custom_config(data: Path) -> None:
    from tfx.utils import proto_utils

    config = csv_examples.missing_values_config(TOKENS)
    assert csv_examples.missing_values({"custom_config": proto_utils.proto_to_json(config)}) == TOKENS
    assert csv_examples.missing_values_config(("",)) is None
    with beam.Pipeline() as pipeline:
        cells = pipeline | beam.Create([[b"NA", b"x", b""]])
        blanked = cells | beam.Map(csv_examples.blank_missing_values, missing=frozenset({b"NA"}))
        assert_that(blanked, equal_to([[b"", b"x", b""]]))
