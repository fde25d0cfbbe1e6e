"""Bad input stops the run with one clear line first, and the model pushed before stays as it was.

A good run pushed a model (the session's `good_run`); this module works on a copy of its output
folder. Problems with the files' shape, the columns, the label or the schema file are refused
before the pipeline starts (pipeline/preflight.py: nothing is written at all). Problems with the
content the schema describes reach the validation gate, which stops the run before Transform.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.config import BASE_CONFIG, load_config
from pipeline.report.collect import collect
from tests.pipeline.conftest import LocalRun, run_cli, tree_hash

Table = tuple[list[str], list[list[str]]]


@pytest.fixture(scope="module")
def workspace(good_run: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("bad-input") / "out"
    shutil.copytree(good_run.output, output)
    serving = output / "serving_model" / "taxi-tips"
    assert any(serving.iterdir()), "the good run pushed a model"
    return {"output": output, "serving": serving, "serving_hash": tree_hash(serving)}


@pytest.fixture(scope="module")
def taxi_table(small_taxi_dir: Path) -> Table:
    with (small_taxi_dir / "data.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def write_csv(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return folder


def with_column(table: Table, column: str, value: Callable[[int, str], str]) -> Table:
    header, rows = table
    at = header.index(column)
    return header, [[*row[:at], value(index, row[at]), *row[at + 1 :]] for index, row in enumerate(rows)]


def without_column(table: Table, column: str) -> Table:
    header, rows = table
    at = header.index(column)
    return [name for name in header if name != column], [row[:at] + row[at + 1 :] for row in rows]


# Each builder makes a data folder under `base` and returns it.
def _missing_folder(base: Path, table: Table) -> Path:
    return base / "nowhere"


def _no_csv(base: Path, table: Table) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "trips.txt").write_text("not a csv\n")
    return base


def _only_header(base: Path, table: Table) -> Path:
    return write_csv(base, table[0], [])


def _empty_file(base: Path, table: Table) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "data.csv").write_bytes(b"")
    return base


def _ragged_row(base: Path, table: Table) -> Path:
    header, rows = table
    return write_csv(base, header, [*rows[:40], rows[40][:-3], *rows[41:]])


def _broken_quoting(base: Path, table: Table) -> Path:
    marker = "@BROKEN@"
    folder = write_csv(base, *with_column(table, "payment_type", lambda i, value: marker if i == 29 else value))
    text = (folder / "data.csv").read_text()
    (folder / "data.csv").write_text(text.replace(marker, '"Cash"x'))  # text after a closing quote, line 31
    return folder


def _binary_file(base: Path, table: Table) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "data.csv").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)  # gzip header, then bytes
    return base


def _missing_column(base: Path, table: Table) -> Path:
    return write_csv(base, *without_column(table, "company"))


def _extra_column(base: Path, table: Table) -> Path:
    header, rows = table
    return write_csv(base, [*header, "driver_rating"], [[*row, "5"] for row in rows])


def _empty_label(base: Path, table: Table) -> Path:
    return write_csv(base, *with_column(table, "tips", lambda index, value: ""))


def _one_class(base: Path, table: Table) -> Path:
    return write_csv(base, *with_column(table, "tips", lambda index, value: "0"))


PREFLIGHT_CASES = {
    "missing-folder": (_missing_folder, "error: data folder {data} does not exist"),
    "no-csv": (_no_csv, "error: data folder {data} holds no .csv file"),
    "only-header": (_only_header, "error: data folder {data} holds only header rows: no data"),
    "empty-file": (_empty_file, "error: {data}/data.csv: the file is empty (expected a header row, then rows"),
    "ragged-row": (_ragged_row, "error: {data}/data.csv line 42: 15 values, but the header has 18 columns"),
    "broken-quoting": (_broken_quoting, "error: {data}/data.csv line 31: broken CSV quoting ("),
    "binary": (_binary_file, "error: {data}/data.csv: not a CSV text file (binary data: a NUL byte at offset"),
    "missing-column": (_missing_column, "error: {data}/data.csv: missing column(s) company (the header has:"),
    "extra-column": (_extra_column, "error: {data}/data.csv: unexpected column(s) driver_rating, not in the schema"),
    "empty-label": (_empty_label, "error: data folder {data}: the label column 'tips' is empty in every row"),
    "one-class": (_one_class, "error: data folder {data}: every labelled trip is one class (not big tips:"),
}


@pytest.mark.parametrize("case", list(PREFLIGHT_CASES))
def test_bad_files_are_refused_before_anything_runs(
    case: str, workspace: dict, taxi_table: Table, good_run: LocalRun, tmp_path: Path
) -> None:
    build, expected = PREFLIGHT_CASES[case]
    data = build(tmp_path / case, taxi_table)
    before = tree_hash(workspace["output"])
    status, stdout, stderr = run_cli(good_run.args(data=str(data), output=str(workspace["output"])))
    assert status == cli.EXIT_BAD_INPUT
    assert stderr.startswith(expected.format(data=data)), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Running pipeline" not in stdout
    assert tree_hash(workspace["output"]) == before  # nothing written: no run, no model


@pytest.mark.parametrize(
    ("case", "schema_text", "expected"),
    [
        ("missing", None, "schema_path: {schema} does not exist (expected a schema.pbtxt, or null to infer one)"),
        ("unparsable", 'feature { name: "fare" typ: FLOAT }\n', "schema_path: {schema} is not a valid schema"),
        ("incomplete", 'feature { name: "fare" type: FLOAT }\n', "schema_path: {schema} lacks features the model"),
    ],
)
def test_a_schema_file_that_is_missing_or_broken_is_refused(
    case: str, schema_text: str | None, expected: str, workspace: dict, good_run: LocalRun, tmp_path: Path
) -> None:
    schema = tmp_path / f"{case}.pbtxt"
    if schema_text is not None:
        schema.write_text(schema_text)
    config = tmp_path / "config.yaml"
    config.write_text(good_run.config.read_text() + f"schema_path: {schema}\n")
    before = tree_hash(workspace["output"])
    status, _, stderr = run_cli(good_run.args(config=str(config), output=str(workspace["output"])))
    assert status == cli.EXIT_BAD_INPUT
    assert stderr.startswith(f"error: {config}: " + expected.format(schema=schema)), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert tree_hash(workspace["output"]) == before


def _text_in_fare(table: Table) -> Table:
    return with_column(table, "fare", lambda index, value: "twelve" if index % 100 == 7 else value)


def _unknown_payment_types(table: Table) -> Table:
    # 5% of the trips paid with a type the schema does not list; it tolerates 1%.
    return with_column(table, "payment_type", lambda index, value: "Bitcoin" if index % 20 == 3 else value)


# (change, feature, the start of its line, what the line also names)
GATE_CASES = {
    "text-in-numeric-column": (
        _text_in_fare,
        "fare",
        "fare [train, eval]: expected numbers (FLOAT); found ",
        "twelve",
    ),
    "values-outside-the-domain": (
        _unknown_payment_types,
        "payment_type",
        "payment_type [train, eval]: expected at least 99% of the values from the schema's list (Cash, "
        "Credit Card, Dispute, No Charge, Pcard, Prcard, Unknown); found ",
        "values not in the list: Bitcoin (~",
    ),
}


@pytest.mark.parametrize("case", list(GATE_CASES))
def test_data_breaking_the_schema_stops_the_run_at_the_gate(
    case: str, workspace: dict, taxi_table: Table, good_run: LocalRun, tmp_path: Path
) -> None:
    change, feature, line_start, named = GATE_CASES[case]
    data = write_csv(tmp_path / case, *change(taxi_table))
    status, stdout, stderr = run_cli(good_run.args(data=str(data), output=str(workspace["output"])))

    assert status == cli.EXIT_BAD_INPUT
    lines = stderr.strip().splitlines()
    first = next(index for index, line in enumerate(lines) if line.startswith("error: "))
    assert lines[first] == (
        f"error: the data does not match the schema schema/schema.pbtxt: 1 feature breaks it ({feature}); "
        "the run stopped before Transform"
    )
    anomaly = lines[first + 1].strip()
    assert anomaly.startswith(line_start) and named in anomaly, stderr
    assert lines[first + 2].startswith("to accept a legitimate change in the data: `make schema`")

    # Nothing after the gate ran in this run; the pushed model is untouched.
    config = load_config([BASE_CONFIG, good_run.config], {"runner.output_dir": str(workspace["output"])})
    run = collect(config)
    assert run.executions["ValidationGate"] == "FAILED"
    assert not {"Transform", "Trainer", "Evaluator", "Pusher"} & set(run.executions)
    assert tree_hash(workspace["serving"]) == workspace["serving_hash"]

    # The report of the stopped run lists the anomaly.
    report = Path(stdout.split("Report:", 1)[1].split()[0])
    html = report.read_text()
    assert "stopped at ValidationGate" in html and f"<b>{feature}</b>" in html
