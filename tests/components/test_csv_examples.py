"""CsvExampleGen's driver fingerprints the input by content, whichever executor converts it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from google.protobuf import json_format
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.components.example_gen.driver import FileBasedDriver
from tfx.proto import example_gen_pb2

from components import csv_examples
from components.fast import csv_examples as fast_csv_examples

HASHED_INPUT = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*.csv")])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.csv").write_text("id,amount\n1,2.5\n2,3.5\n")
    (folder / "b.csv").write_text("id,amount\n3,4.5\n")
    return folder


def test_stock_and_fast_components_share_the_driver_and_differ_in_the_executor() -> None:
    stock, fast = csv_examples.CsvExampleGen, fast_csv_examples.CsvExampleGen
    assert stock.DRIVER_CLASS is fast.DRIVER_CLASS is csv_examples.ContentFingerprintDriver
    assert issubclass(stock.EXECUTOR_SPEC.executor_class, tfx_csv_executor.Executor)  # TFX's conversion
    assert fast.EXECUTOR_SPEC.executor_class is fast_csv_examples.Executor


def input_fingerprint(driver_class: type, input_base: Path) -> str:
    """The `input_fingerprint` exec property the component's driver resolves (what TFX's cache keys on)."""
    properties = {"input_base": str(input_base), "input_config": json_format.MessageToJson(HASHED_INPUT)}
    resolved = driver_class(metadata_handle=None).resolve_exec_properties(properties, None, None)
    return resolved["input_fingerprint"]


def test_the_input_fingerprint_follows_the_content_not_size_and_time(data: Path) -> None:
    file = data / "a.csv"
    before = file.stat()
    ours, tfxs = (
        input_fingerprint(csv_examples.ContentFingerprintDriver, data),
        input_fingerprint(FileBasedDriver, data),
    )
    assert ours.startswith("split:all,num_files:2,total_bytes:") and ",sha256:" in ours

    # One digit changed in place, size and modification time put back (as `cp -p` or rsync -t keep them).
    edited = file.read_bytes().replace(b"2.5", b"2.6", 1)
    file.write_bytes(edited)
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file.stat().st_size == before.st_size and file.stat().st_mtime_ns == before.st_mtime_ns

    assert input_fingerprint(FileBasedDriver, data) == tfxs  # TFX's would reuse the old examples
    assert input_fingerprint(csv_examples.ContentFingerprintDriver, data) != ours
