"""Scales the taxi sample to any number of rows, to measure the pipeline on more data.

`python -m tools.bench.data --rows N --out DIR [--seed S] [--shard-rows R]` writes CSV shards
DIR/data-00000.csv, ... with the sample's exact header. Rows are the sample's, taken in seeded
shuffled passes (each sample row once per pass), each with small perturbations:

- fare and tips are scaled by one factor within +-3%, so whether the tip is more than 20% of the
  fare (the label) is kept;
- trip_miles and trip_seconds are jittered within +-3%; coordinates move by at most 0.0005 degrees;
- categories, timestamps, zeros and empty values are kept as they are.

The output is the same for the same seed, rows and shard size. Rows are streamed: memory stays that
of the 15k-row sample whatever N is.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.data import example_data_dir

AMOUNT_JITTER = 0.03
COORDINATE_JITTER = 0.0005
BIG_TIP_SHARE = 0.2
DEFAULT_SHARD_ROWS = 250_000
SHARD_PATTERN = "data-{:05d}.csv"
_COORDINATES = ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude")


def read_sample(path: Path | None = None) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the taxi sample (or of the CSV file at `path`)."""
    with (path or example_data_dir() / "data.csv").open(newline="") as source:
        reader = csv.reader(source)
        return next(reader), list(reader)


class Perturber:
    """Perturbs rows of the taxi sample's columns (see the module docstring)."""

    def __init__(self, header: Sequence[str], rng: random.Random) -> None:
        column = {name: index for index, name in enumerate(header)}
        self._fare, self._tips = column["fare"], column["tips"]
        self._miles, self._seconds = column["trip_miles"], column["trip_seconds"]
        self._coordinates = [column[name] for name in _COORDINATES]
        self._rng = rng

    def __call__(self, row: Sequence[str]) -> list[str]:
        out = list(row)
        factor = self._jitter()
        fare, tips = _scaled(row[self._fare], factor), _scaled(row[self._tips], factor)
        if _big_tip(row[self._fare], row[self._tips]) == _big_tip(fare, tips):  # rounding may flip it
            out[self._fare], out[self._tips] = fare, tips
        out[self._miles] = _scaled(row[self._miles], self._jitter())
        out[self._seconds] = _scaled(row[self._seconds], self._jitter(), digits=0)
        for index in self._coordinates:
            if row[index]:
                shift = self._rng.uniform(-COORDINATE_JITTER, COORDINATE_JITTER)
                out[index] = f"{float(row[index]) + shift:.6f}"
        return out

    def _jitter(self) -> float:
        return 1 + self._rng.uniform(-AMOUNT_JITTER, AMOUNT_JITTER)


def _scaled(value: str, factor: float, digits: int = 2) -> str:
    """`value` times `factor`; empty values and zeros are kept as written."""
    if not value or float(value) == 0:
        return value
    return f"{float(value) * factor:.{digits}f}"


def _big_tip(fare: str, tips: str) -> bool:
    return bool(fare and tips) and float(tips) > BIG_TIP_SHARE * float(fare)


def scaled_rows(header: Sequence[str], rows: Sequence[Sequence[str]], count: int, seed: int) -> Iterator[list[str]]:
    """`count` perturbed rows drawn from `rows` in shuffled passes, deterministic for `seed`."""
    rng = random.Random(seed)
    perturb = Perturber(header, rng)
    order = list(range(len(rows)))
    produced = 0
    while produced < count:
        rng.shuffle(order)
        for index in order[: count - produced]:
            yield perturb(rows[index])
        produced += min(len(order), count - produced)


def write_shards(header: Sequence[str], rows: Iterator[list[str]], out: Path, shard_rows: int) -> list[Path]:
    """Writes `rows` into CSV shards of at most `shard_rows` rows, each with `header`."""
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    writer = None
    handle = None
    try:
        for written, row in enumerate(rows):
            if written % shard_rows == 0:
                if handle:
                    handle.close()
                shards.append(out / SHARD_PATTERN.format(len(shards)))
                handle = shards[-1].open("w", newline="")
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(header)
            assert writer is not None
            writer.writerow(row)
    finally:
        if handle:
            handle.close()
    return shards


def generate(rows: int, out: Path, seed: int = 0, shard_rows: int = DEFAULT_SHARD_ROWS) -> list[Path]:
    header, sample = read_sample()
    return write_shards(header, scaled_rows(header, sample, rows, seed), out, shard_rows)


def cached_dataset(rows: int, root: Path, seed: int = 0) -> Path:
    """A folder of `rows` scaled rows under `root`, generated on first use and reused after."""
    folder = root / f"taxi-rows-{rows}-seed-{seed}"
    if not folder.is_dir():
        partial = root / f".{folder.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        generate(rows, partial, seed)
        partial.rename(folder)  # only complete folders get the final name
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.data", description=__doc__)
    parser.add_argument("--rows", type=int, required=True, help="number of data rows to write")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV shards (new or empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-rows", type=int, default=DEFAULT_SHARD_ROWS, help="rows per CSV file")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.shard_rows < 1:
        parser.error("--rows and --shard-rows must be at least 1")
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: {args.out} is not empty", file=sys.stderr)
        return 2
    shards = generate(args.rows, args.out, args.seed, args.shard_rows)
    print(f"{args.rows:,} rows in {len(shards)} file(s) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
