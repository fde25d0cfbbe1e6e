import csv
import os
from pathlib import Path

import pytest

# Same Keras choice as the Makefile and the pipeline image, before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.data import taxi_sample_dir


def write_taxi_sample(folder: Path, every: int, limit: int) -> Path:
    """Writes every `every`-th row of the taxi sample (at most `limit` rows) to folder/data.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    with (taxi_sample_dir() / "data.csv").open(newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        rows = [row for index, row in enumerate(reader) if index % every == 0][:limit]
    with (folder / "data.csv").open("w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="session")
def small_taxi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1,500 taxi trips spread over the whole sample."""
    return write_taxi_sample(tmp_path_factory.mktemp("taxi-small"), every=10, limit=1500)
