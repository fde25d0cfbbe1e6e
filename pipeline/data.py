"""Where the training data comes from: the folder, its CSV files, and a fingerprint of their content."""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import PipelineConfig

# The example's data, inside the installed tfx package: about 15k Chicago taxi trips with a header row.
_EXAMPLE_DATA = Path("examples", "chicago_taxi_pipeline", "data", "simple")
# The files CsvExampleGen reads from the data folder (its input split pattern in pipeline/pipeline.py).
CSV_PATTERN = "*.csv"
_READ_CHUNK_BYTES = 1 << 20


class DataError(Exception):
    """Training data that cannot be used; the message is one line meant for the user."""


def example_data_dir() -> Path:
    """The example's data folder (the taxi sample), found through the installed tfx package without importing it."""
    spec = importlib.util.find_spec("tfx")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the tfx package is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / _EXAMPLE_DATA


def data_dir(config: PipelineConfig) -> str:
    """The configured CSV folder (or the example's data, the taxi sample), checked to hold readable CSV files."""
    if config.data.path is None:
        return str(example_data_dir())
    if "://" in config.data.path:
        return config.data.path
    folder = Path(os.path.abspath(Path(config.data.path).expanduser()))
    if folder.is_file():
        raise DataError(
            f"data folder {folder} is a file, not a folder: give the folder that holds the CSV files ({folder.parent})"
        )
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    folder = folder.resolve()
    if not csv_files(folder):
        raise DataError(f"data folder {folder} holds no .csv file")
    return str(folder)


def csv_files(folder: Path) -> list[Path]:
    """The folder's `*.csv` entries, sorted, each checked to be a CSV file that can be opened.

    Every entry the pattern matches is read as data by CsvExampleGen, so an entry that is not a
    readable file (a folder named *.csv, a dangling symbolic link, a link loop) is refused here in
    one line rather than deep inside a component.
    """
    files = sorted(folder.glob(CSV_PATTERN))
    for file in files:
        _check_readable_file(file)
    return files


def _check_readable_file(file: Path) -> None:
    hint = f"every {CSV_PATTERN} entry of the data folder is read as data: remove or rename it"
    try:
        mode = file.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError(f"{file}: a symbolic link loop, not a CSV file ({hint})") from None
        if file.is_symlink():
            target = os.readlink(file)
            raise DataError(f"{file}: a symbolic link to {target}, which does not exist ({hint})") from None
        raise DataError(f"{file}: cannot read it ({error.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{file}: a folder, not a CSV file ({hint})")
    if not stat.S_ISREG(mode):
        raise DataError(f"{file}: not a regular file, so not a CSV file ({hint})")
    if not os.access(file, os.R_OK):
        raise DataError(f"{file}: cannot read it (permission denied)")


def content_fingerprint(files: Iterable[Path]) -> str:
    """sha256 over each file's name, size and bytes: equal only for the same content.

    Sizes and modification times (what TFX's ExampleGen compares) stay the same when a value is
    edited in place and the time is put back, as copies and syncs that preserve times do. sha256
    runs at about 0.7 GB/s on the 2-core machine of docs/performance.md: 3 ms for the taxi
    sample, 0.2-0.3 s for the 1.5 million rows (177 MB) of `make bench-data ROWS=1500000`.
    """
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as stream:
            while chunk := stream.read(_READ_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()
