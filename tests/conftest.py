import csv
import os
from pathlib import Path

import pytest

# Same Keras choice as the Makefile and the pipeline image, before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.config import load_config
from pipeline.data import csv_files, data_dir

# Rows of the small sample the tests of real runs share.
SMALL_SAMPLE_ROWS = 1500


def read_configured_data() -> tuple[list[str], list[list[str]]]:
    """The header and rows of the configured data (`data.path` of configs/base.yaml; the taxi sample
    when it is null), every CSV file of the folder in turn."""
    folder = data_dir(load_config())
    if "://" in folder:
        pytest.skip(f"the configured data is in the cloud ({folder}); these tests need a local folder")
    header: list[str] = []
    rows: list[list[str]] = []
    for file in csv_files(Path(folder)):
        with file.open(newline="", encoding="utf-8-sig") as source:
            reader = csv.reader(source)
            header = next(reader)
            rows.extend(row for row in reader if row)
    return header, rows


def write_data_sample(folder: Path, rows: int, offset: int = 0) -> Path:
    """Writes at most `rows` rows of the configured data, spread evenly over all of it, to
    folder/data.csv: every n-th row, n = (rows of the data) // `rows`, starting with row `offset` % n
    (another offset: other rows of the same data)."""
    header, all_rows = read_configured_data()
    every = max(1, len(all_rows) // rows)
    chosen = [row for index, row in enumerate(all_rows) if index % every == offset % every][:rows]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(header)
        writer.writerows(chosen)
    return folder


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,500 rows spread over the whole configured data (the taxi sample: 1,500 trips)."""
    return write_data_sample(tmp_path_factory.mktemp("data-small"), SMALL_SAMPLE_ROWS)
