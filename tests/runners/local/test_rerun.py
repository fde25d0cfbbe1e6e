"""The unchanged-inputs shortcut compares the data by content, not by size and modification time."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import load_config
from runners.local import rerun
from tests.conftest import write_data_sample
from tests.runners import columns

ROWS = 300


def test_data_edited_in_place_with_its_time_put_back_counts_as_changed(tmp_path: Path) -> None:
    data = write_data_sample(tmp_path / "data", ROWS)
    config = load_config(overrides={"data.path": str(data), "runner.output_dir": str(tmp_path / "out")})
    file = data / "data.csv"
    before = file.stat()
    fingerprint = rerun.inputs_fingerprint(config, str(data))
    assert rerun.inputs_fingerprint(config, str(data)) == fingerprint

    # A value of the last row edited to one of the same size ("Cash" -> "Cas$"); the time put back as
    # `cp -p`, `rsync -t` or `touch -r` do.
    header, rows = columns.read_table(data)
    at = next(index for index, cell in enumerate(rows[-1]) if cell)
    rows[-1][at] = columns.same_size_edit(rows[-1][at])
    columns.write_table(data, header, rows)
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (file.stat().st_size, file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    assert rerun.inputs_fingerprint(config, str(data)) != fingerprint


def test_a_renamed_data_file_counts_as_changed(tmp_path: Path) -> None:
    data = write_data_sample(tmp_path / "data", ROWS)
    config = load_config(overrides={"data.path": str(data), "runner.output_dir": str(tmp_path / "out")})
    fingerprint = rerun.inputs_fingerprint(config, str(data))
    (data / "data.csv").rename(data / "renamed.csv")
    assert rerun.inputs_fingerprint(config, str(data)) != fingerprint
