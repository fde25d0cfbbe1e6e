"""Where the training data comes from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline.config import PipelineConfig

# Inside the installed tfx package: about 15k Chicago taxi trips with a header row.
_TAXI_SAMPLE = Path("examples", "chicago_taxi_pipeline", "data", "simple")


class DataError(Exception):
    """Training data that cannot be used; the message is one line meant for the user."""


def taxi_sample_dir() -> Path:
    """The taxi sample's folder, found through the installed tfx package without importing it."""
    spec = importlib.util.find_spec("tfx")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the tfx package is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / _TAXI_SAMPLE


def data_dir(config: PipelineConfig) -> str:
    """The configured CSV folder (or the taxi sample), checked to hold CSV files."""
    if config.data.path is None:
        return str(taxi_sample_dir())
    if "://" in config.data.path:
        return config.data.path
    folder = Path(config.data.path).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    if not any(folder.glob("*.csv")):
        raise DataError(f"data folder {folder} holds no .csv file")
    return str(folder)
