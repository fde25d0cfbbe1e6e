import csv
import random
from collections import Counter
from pathlib import Path

import pytest

from pipeline.data import example_data_dir
from tools.bench import data as bench_data

KEPT_COLUMNS = [
    "pickup_community_area",
    "trip_start_month",
    "trip_start_hour",
    "trip_start_day",
    "trip_start_timestamp",
    "pickup_census_tract",
    "dropoff_census_tract",
    "payment_type",
    "company",
    "dropoff_community_area",
]


@pytest.fixture(scope="module")
def sample() -> tuple[list[str], list[list[str]]]:
    return bench_data.read_sample()


def read_rows(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    headers, rows = [], []
    for shard in sorted(folder.glob("*.csv")):
        with shard.open(newline="") as source:
            headers.append(source.readline())
            source.seek(0)
            rows += list(csv.DictReader(source))
    return headers, rows


def big_tip(row: dict[str, str]) -> bool:
    return bool(row["fare"] and row["tips"]) and float(row["tips"]) > 0.2 * float(row["fare"])


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    first = bench_data.generate(3000, tmp_path / "a", seed=7, shard_rows=1000)
    again = bench_data.generate(3000, tmp_path / "b", seed=7, shard_rows=1000)
    other = bench_data.generate(3000, tmp_path / "c", seed=8, shard_rows=1000)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]


def test_row_count_split_into_shards_with_the_exact_header(tmp_path: Path) -> None:
    shards = bench_data.generate(2500, tmp_path, seed=1, shard_rows=1000)
    assert [p.name for p in shards] == ["data-00000.csv", "data-00001.csv", "data-00002.csv"]
    with (example_data_dir() / "data.csv").open(newline="") as source:
        sample_header = source.readline()
    for shard, expected_rows in zip(shards, [1000, 1000, 500], strict=True):
        lines = shard.read_text().splitlines(keepends=True)
        assert lines[0] == sample_header
        assert len(lines) - 1 == expected_rows


def test_one_pass_keeps_every_category_and_label_of_the_sample(tmp_path: Path, sample) -> None:
    header, rows = sample
    bench_data.generate(len(rows), tmp_path, seed=3)
    _, generated = read_rows(tmp_path)
    original = [dict(zip(header, row, strict=True)) for row in rows]
    assert len(generated) == len(original)
    for column in KEPT_COLUMNS:
        assert Counter(r[column] for r in generated) == Counter(r[column] for r in original), column
    assert Counter(map(big_tip, generated)) == Counter(map(big_tip, original))


def test_more_rows_than_the_sample_repeats_it(tmp_path: Path, sample) -> None:
    _, rows = sample
    count = 2 * len(rows) + 11
    bench_data.generate(count, tmp_path, seed=4, shard_rows=10_000)
    _, generated = read_rows(tmp_path)
    assert len(generated) == count
    companies = Counter(r["company"] for r in generated)
    assert set(companies) == {row[14] for row in rows}


def test_perturbations_stay_small_and_keep_tips_proportional_to_fare(sample) -> None:
    header, rows = sample
    perturb = bench_data.Perturber(header, random.Random(5))
    jitter = bench_data.AMOUNT_JITTER
    changed = eligible = 0
    for row in rows:
        before = dict(zip(header, row, strict=True))
        after = dict(zip(header, perturb(row), strict=True))
        for column in KEPT_COLUMNS:
            assert after[column] == before[column]
        for column, slack in (("fare", 0.005), ("tips", 0.005), ("trip_miles", 0.005), ("trip_seconds", 0.5)):
            if not before[column] or float(before[column]) == 0:
                assert after[column] == before[column]
                continue
            value = float(before[column])
            assert value * (1 - jitter) - slack <= float(after[column]) <= value * (1 + jitter) + slack
        if before["fare"] and float(before["fare"]) > 1 and float(before["tips"]) > 1:
            eligible += 1
            changed += after["fare"] != before["fare"]
            factor = float(after["fare"]) / float(before["fare"])
            assert float(after["tips"]) / float(before["tips"]) == pytest.approx(factor, abs=0.01)
        assert big_tip(after) == big_tip(before)
        for column in ("pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"):
            if before[column]:
                assert abs(float(after[column]) - float(before[column])) <= bench_data.COORDINATE_JITTER + 1e-6
            else:
                assert after[column] == ""
    assert eligible > 1000
    assert changed > 0.9 * eligible


def test_cli_writes_rows_and_refuses_a_folder_with_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "scaled"
    assert bench_data.main(["--rows", "120", "--out", str(out), "--shard-rows", "50"]) == 0
    assert len(read_rows(out)[1]) == 120
    assert len(list(out.glob("*.csv"))) == 3
    assert bench_data.main(["--rows", "10", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_cached_dataset_is_generated_once(tmp_path: Path) -> None:
    folder = bench_data.cached_dataset(40, tmp_path, seed=2)
    shard = folder / "data-00000.csv"
    written = shard.stat().st_mtime_ns
    assert bench_data.cached_dataset(40, tmp_path, seed=2) == folder
    assert shard.stat().st_mtime_ns == written
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]
