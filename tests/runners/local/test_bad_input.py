"""Bad input stops the run with one clear line first, and the model pushed before stays as it was.

A good run pushed a model (the session's `good_run`); this module works on a copy of its output
folder, with bad variants of the good run's data built from the roles the declarations give its
columns (tests/runners/columns.py). Problems with the files' shape, the columns, the label, the
schema file or the output folder are refused before the pipeline starts (runners/local/preflight.py:
nothing is written at all).
Problems with the content the schema describes (NaN included) reach the validation gate, which
stops the run before Transform, also when the changed files keep their size and modification time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.paths import REPO_ROOT
from runners import errors
from runners.local import preflight
from runners.local.preflight import FIELD_SIZE_LIMIT
from runners.report.collect import collect
from tests.runners import columns
from tests.runners.columns import Table, with_column, without_column
from tests.runners.columns import write_table as write_csv
from tests.runners.conftest import LocalRun, run_cli, tree_hash


@pytest.fixture(scope="module")
def workspace(good_run: LocalRun, tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("bad-input") / "out"
    shutil.copytree(good_run.output, output)
    serving = output / "serving_model" / good_run.pipeline_name
    assert any(serving.iterdir()), "the good run pushed a model"
    return {"output": output, "serving": serving, "serving_hash": tree_hash(serving)}


@pytest.fixture(scope="module")
def table(small_data_dir: Path) -> Table:
    """The rows of the good run's data (tests/conftest.py)."""
    return columns.read_table(small_data_dir)


def any_column(table: Table) -> str:
    """A column whose content does not matter to the check: the file's shape is what is broken."""
    return table[0][0]


# Each builder makes a data folder under `base` and returns it; a case expects the start of the one
# line the run says, {data} the data folder. Builders that depend on a role of the columns find it
# when called, so a role the data does not have skips its cases only.
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
    return write_csv(base, header, [*rows[:40], rows[40][:-RAGGED_MISSING], *rows[41:]])


RAGGED_MISSING = 3  # values missing from line 42


def _broken_quoting(base: Path, table: Table) -> Path:
    marker = "@BROKEN@"
    folder = write_csv(base, *with_column(table, any_column(table), lambda i, value: marker if i == 29 else value))
    text = (folder / "data.csv").read_text()
    (folder / "data.csv").write_text(text.replace(marker, '"Cash"x'))  # text after a closing quote, line 31
    return folder


def _binary_file(base: Path, table: Table) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "data.csv").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)  # gzip header, then bytes
    return base


def _missing_column(base: Path, table: Table) -> Path:
    return write_csv(base, *without_column(table, columns.required_column()))


def _extra_column(base: Path, table: Table) -> Path:
    header, rows = table
    return write_csv(base, [*header, columns.UNLISTED_COLUMN], [[*row, "5"] for row in rows])


def _empty_label(base: Path, table: Table) -> Path:
    return write_csv(base, *with_column(table, columns.label_source(), lambda index, value: ""))


def _one_label(base: Path, table: Table) -> Path:
    return write_csv(base, *columns.with_one_label(table)[0])


def _missing_token_label(base: Path, table: Table) -> Path:
    # A value of data.missing_values ("NA" in the template): as empty as an empty cell.
    token = columns.missing_token()
    if token is None:
        pytest.skip("data.missing_values holds no value besides the empty cell")
    return write_csv(base, *with_column(table, columns.label_source(), lambda i, value: token if i % 2 else ""))


def _symlink_loop(base: Path, table: Table) -> Path:
    folder = write_csv(base, *table)
    (folder / "a.csv").symlink_to(folder / "b.csv")
    (folder / "b.csv").symlink_to(folder / "a.csv")
    return folder


def _dangling_symlink(base: Path, table: Table) -> Path:
    folder = write_csv(base, *table)
    (folder / "old.csv").symlink_to(base.parent / "moved-away.csv")
    return folder


def _folder_named_csv(base: Path, table: Table) -> Path:
    folder = write_csv(base, *table)
    (folder / "archive.csv").mkdir()
    return folder


def _latin1_byte_on_line_2(base: Path, table: Table) -> Path:
    marker = "@CAFE@"
    folder = write_csv(base, *with_column(table, any_column(table), lambda i, value: marker if i == 0 else value))
    data = (folder / "data.csv").read_bytes()
    (folder / "data.csv").write_bytes(data.replace(marker.encode(), "Café Cab".encode("latin-1")))  # é: 0xe9
    return folder


def _field_over_128_kib(base: Path, table: Table) -> Path:
    return write_csv(base, *with_column(table, any_column(table), lambda i, value: "x" * 140_000 if i == 10 else value))


def _quote_never_closed(base: Path, table: Table) -> Path:
    marker = "@OPEN@"
    header, rows = table
    # The rows again until more than the longest value TFX's reader takes follows the open quote.
    repeats = 2 + FIELD_SIZE_LIMIT // max(1, len("".join(",".join(row) for row in rows)))
    longer = (header, rows * repeats)
    folder = write_csv(base, *with_column(longer, any_column(table), lambda i, value: marker if i == 4 else value))
    text = (folder / "data.csv").read_text()
    (folder / "data.csv").write_text(text.replace(marker, '"Cash'))  # the rest of the file is one value
    return folder


def _data_path_is_a_file(base: Path, table: Table) -> Path:
    return write_csv(base, *table) / "data.csv"


def _missing_column_said(table: Table) -> str:
    return f"error: {{data}}/data.csv: missing column(s) {columns.required_column()} (the header has:"


def _ragged_row_said(table: Table) -> str:
    width = len(table[0])
    return f"error: {{data}}/data.csv line 42: {width - RAGGED_MISSING} values, but the header has {width} columns"


def _empty_label_said(table: Table) -> str:
    return f"error: data folder {{data}}: the label column '{columns.label_source()}' is empty in every row"


def _one_label_said(table: Table) -> str:
    return "error: data folder {data}: " + columns.with_one_label(table)[1]


# case -> (builder, the start of the line: a text, or a function of the table giving it)
PREFLIGHT_CASES: dict[str, tuple[Callable[[Path, Table], Path], str | Callable[[Table], str]]] = {
    "missing-folder": (_missing_folder, "error: data folder {data} does not exist"),
    "no-csv": (_no_csv, "error: data folder {data} holds no .csv file"),
    "only-header": (_only_header, "error: data folder {data} holds only header rows: no data"),
    "empty-file": (_empty_file, "error: {data}/data.csv: the file is empty (expected a header row, then rows"),
    "ragged-row": (_ragged_row, _ragged_row_said),
    "broken-quoting": (_broken_quoting, "error: {data}/data.csv line 31: broken CSV quoting ("),
    "binary": (_binary_file, "error: {data}/data.csv: not a CSV text file (binary data: a NUL byte at offset"),
    "missing-column": (_missing_column, _missing_column_said),
    "extra-column": (
        _extra_column,
        f"error: {{data}}/data.csv: unexpected column(s) {columns.UNLISTED_COLUMN}, not in the schema",
    ),
    "empty-label": (_empty_label, _empty_label_said),
    "one-label": (_one_label, _one_label_said),
    "missing-token-label": (_missing_token_label, _empty_label_said),
    "symlink-loop": (
        _symlink_loop,
        "error: {data}/a.csv: a symbolic link loop, not a CSV file (every *.csv entry of the data folder is read "
        "as data: remove or rename it)",
    ),
    "dangling-symlink": (
        _dangling_symlink,
        "error: {data}/old.csv: a symbolic link to {data}/../moved-away.csv, which does not exist (every *.csv",
    ),
    "folder-named-csv": (_folder_named_csv, "error: {data}/archive.csv: a folder, not a CSV file (every *.csv"),
    "latin-1": (
        _latin1_byte_on_line_2,
        "error: {data}/data.csv line 2: not UTF-8 text (byte 0xe9, 'é' in Latin-1/Windows-1252, at character ",
    ),
    "field-over-128-kib": (
        _field_over_128_kib,
        "error: {data}/data.csv line 12: a value longer than 131,072 characters (128 KiB), the most TFX's CSV "
        "reader takes in one field (Python's csv module, on Dataflow too); the limit cannot be raised",
    ),
    "quote-never-closed": (
        _quote_never_closed,
        "error: {data}/data.csv line 6: a quoted value starting on this line is still open ",
    ),
    "data-path-is-a-file": (
        _data_path_is_a_file,
        "error: data folder {data} is a file, not a folder: give the folder that holds the CSV files ({data}/..)",
    ),
}


@pytest.mark.parametrize("case", list(PREFLIGHT_CASES))
def test_bad_files_are_refused_before_anything_runs(
    case: str, workspace: dict, table: Table, good_run: LocalRun, tmp_path: Path
) -> None:
    build, said = PREFLIGHT_CASES[case]
    data = build(tmp_path / case, table)
    expected = said if isinstance(said, str) else said(table)
    before = tree_hash(workspace["output"])
    status, stdout, stderr = run_cli(good_run.args(data=str(data), output=str(workspace["output"])))
    assert status == errors.EXIT_BAD_INPUT
    assert stderr.startswith(expected.format(data=data).replace(f"{data}/..", str(data.parent))), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Running pipeline" not in stdout
    assert tree_hash(workspace["output"]) == before  # nothing written: no run, no model


FEATURE = columns.model_columns()[0]


@pytest.mark.parametrize(
    ("case", "schema_text", "expected"),
    [
        ("missing", None, "schema_path: {schema} does not exist (expected a schema.pbtxt, or null to infer one)"),
        ("unparsable", f'feature {{ name: "{FEATURE}" typ: FLOAT }}\n', "schema_path: {schema} is not a valid schema"),
        ("incomplete", f'feature {{ name: "{FEATURE}" type: FLOAT }}\n', "schema_path: {schema} lacks features the"),
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
    assert status == errors.EXIT_BAD_INPUT
    assert stderr.startswith(f"error: {config}: " + expected.format(schema=schema)), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert tree_hash(workspace["output"]) == before


def test_a_byte_order_mark_before_the_header_is_accepted(table: Table, tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" starts with one; CsvExampleGen skips it (tests/components/test_csv_examples.py).
    data = write_csv(tmp_path / "data", *table)
    (data / "data.csv").write_bytes(b"\xef\xbb\xbf" + (data / "data.csv").read_bytes())
    config = load_config(overrides={"data.path": str(data), "runner.output_dir": str(tmp_path / "out")})
    preflight.check(config)
    assert preflight._read_header(data / "data.csv") == table[0]


def test_an_output_folder_that_is_a_file_is_refused(workspace: dict, good_run: LocalRun, tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.write_text("not a folder\n")
    status, stdout, stderr = run_cli(good_run.args(output=str(output)))
    assert status == errors.EXIT_BAD_INPUT
    assert stderr == (
        f"error: output folder {output} is a file, not a folder; give another folder with --output-dir "
        "(OUT= with make)\n"
    )
    assert output.read_text() == "not a folder\n" and "Running pipeline" not in stdout


def run_on_read_only(folder: Path, args: list[str]) -> tuple[int, str, str]:
    """The CLI with `folder` read-only: for root, a read-only bind mount in a mount namespace of its
    own (root may write anywhere else); for other users, write permissions taken away."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [folder, *folder.rglob("*")]}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            return run_cli(args)
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to make a folder read-only for root")
    remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    command = ["unshare", "--mount", "sh", "-c", remount, str(folder), sys.executable, "-m", "pipeline", *args]
    process = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    if "mount:" in process.stderr or "unshare:" in process.stderr:
        pytest.skip(f"cannot make a read-only mount here: {process.stderr.strip()}")
    return process.returncode, process.stdout, process.stderr


def test_a_read_only_output_folder_holding_an_earlier_run_is_refused(
    good_run: LocalRun, table: Table, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    shutil.copytree(good_run.output, output)
    before = tree_hash(output)
    data = write_csv(tmp_path / "new-data", *table)
    status, stdout, stderr = run_on_read_only(output, good_run.args(data=str(data), output=str(output)))
    assert status == errors.EXIT_BAD_INPUT, stderr
    assert stderr == (
        f"error: output folder {output} is read-only: make it writable, or give another folder with --output-dir "
        "(OUT= with make)\n"
    )
    assert "Running pipeline" not in stdout
    assert tree_hash(output) == before


# A gate case changes the table and expects, per feature the gate names (sorted by name), the start
# of its line and a text the line also holds.
Expected = list[tuple[str, str, str]]


def _text_in_a_numeric_column(table: Table) -> tuple[Table, Expected]:
    feature = columns.numeric_feature()
    said = f"{feature.name} [train, eval]: expected {columns.NUMBER_TYPE_NAMES[feature.type]}; found "
    changed = with_column(table, feature.name, lambda index, value: "twelve" if index % 100 == 7 else value)
    return changed, [(feature.name, said, "twelve")]


def _unlisted_text_categories(table: Table) -> tuple[Table, Expected]:
    # Several times the share of values outside the schema's list that it tolerates.
    category = columns.text_category()
    every, unlisted = category.breaking_every, columns.UNLISTED_VALUE
    changed = with_column(table, category.name, lambda index, value: unlisted if index % every == 3 else value)
    said = f"{category.name} [train, eval]: expected {category.expected}; found "
    return changed, [(category.name, said, f"values not in the list: {unlisted} (~")]


def _nan_and_infinity(table: Table) -> tuple[Table, Expected]:
    # Python's float() reads both, so they reach the examples as float values.
    floats = columns.finite_float_features()
    if not floats:
        pytest.skip("no feature of the model is a FLOAT whose schema refuses NaN and infinity")
    nan, infinity = floats[0], floats[1 % len(floats)]
    table = with_column(table, nan, lambda index, value: "nan" if index % 50 == 3 else value)
    table = with_column(table, infinity, lambda index, value: "inf" if index % 50 == 7 else value)
    expected = "expected numbers that are neither NaN nor infinite; found "
    if nan == infinity:
        return table, [(nan, f"{nan} [train, eval]: {expected}", "NaN values (not a number")]
    lines = [
        (nan, f"{nan} [train, eval]: {expected}", "NaN values (not a number"),
        (infinity, f"{infinity} [train, eval]: {expected}", "infinite values"),
    ]
    return table, sorted(lines)


GATE_CASES: dict[str, Callable[[Table], tuple[Table, Expected]]] = {
    "text-in-numeric-column": _text_in_a_numeric_column,
    "values-outside-the-domain": _unlisted_text_categories,
    "nan-and-infinity": _nan_and_infinity,
}


@pytest.mark.parametrize("case", list(GATE_CASES))
def test_data_breaking_the_schema_stops_the_run_at_the_gate(
    case: str, workspace: dict, table: Table, good_run: LocalRun, tmp_path: Path
) -> None:
    changed, expected = GATE_CASES[case](table)
    data = write_csv(tmp_path / case, *changed)
    status, stdout, stderr = run_cli(good_run.args(data=str(data), output=str(workspace["output"])))

    assert status == errors.EXIT_BAD_INPUT
    assert_stopped_at_the_gate(stderr, expected)

    # Nothing after the gate ran in this run; the pushed model is untouched.
    run = collect(good_run.pipeline_config(workspace["output"]))
    assert run.executions["ValidationGate"] == "FAILED"
    assert not {"Transform", "Trainer", "Evaluator", "Pusher"} & set(run.executions)
    assert tree_hash(workspace["serving"]) == workspace["serving_hash"]

    # The report of the stopped run lists the anomalies.
    report = Path(stdout.split("Report:", 1)[1].split()[0])
    html = report.read_text()
    assert "stopped at ValidationGate" in html
    assert all(f"<b>{feature}</b>" in html for feature, _, _ in expected)


def assert_stopped_at_the_gate(stderr: str, expected: Expected) -> None:
    """The gate's message: a summary line naming the features, one line per feature, the hint."""
    lines = stderr.strip().splitlines()
    first = next(index for index, line in enumerate(lines) if line.startswith("error: "))
    features = [feature for feature, _, _ in expected]
    noun = "1 feature breaks" if len(features) == 1 else f"{len(features)} features break"
    assert lines[first] == (
        f"error: the data does not match the schema {columns.schema_source()}: {noun} it ({', '.join(features)}); "
        "the run stopped before Transform"
    )
    for offset, (_, line_start, named) in enumerate(expected, start=1):
        anomaly = lines[first + offset].strip()
        assert anomaly.startswith(line_start) and named in anomaly, stderr
    assert lines[first + len(expected) + 1].startswith("to accept a legitimate change in the data: `make schema`")
    assert not [line for line in lines[:first] if line.strip()], stderr  # nothing from the libraries before it


def test_content_changed_in_place_is_validated_although_size_and_time_are_the_same(
    good_run: LocalRun, table: Table, tmp_path: Path
) -> None:
    """A copy of the good run's outputs first re-runs on the good run's data (from TFX's cache), then on
    the same file edited in place with its size and time kept: the re-run shortcut must not reuse the
    last run and TFX's cache must not reuse CsvExampleGen's examples, so the gate sees the new values.

    The edit (the most frequent value of a text category made one its schema does not list, in every
    row) is made to the session's data file itself (ExampleGen's cache key holds the folder's path)
    and undone, bytes and time, before the test ends.
    """
    category = columns.text_category()
    at = table[0].index(category.name)
    most_frequent = Counter(row[at] for row in table[1]).most_common(1)[0][0]
    unlisted = columns.same_size_edit(most_frequent)
    assert unlisted not in category.values
    edited = with_column(table, category.name, lambda index, value: unlisted if value == most_frequent else value)
    output = tmp_path / "out"
    shutil.copytree(good_run.output, output)
    status, _, stderr = run_cli(good_run.args(output=str(output)))
    assert status == errors.EXIT_OK, stderr  # a completed run on this output folder, on this data
    serving = output / "serving_model" / good_run.pipeline_name
    serving_before = tree_hash(serving)

    file = good_run.data / "data.csv"
    original, before = file.read_bytes(), file.stat()
    try:
        write_csv(good_run.data, *edited)  # same size
        os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (file.stat().st_size, file.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        status, stdout, stderr = run_cli(good_run.args(output=str(output)))
    finally:
        file.write_bytes(original)
        os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert status == errors.EXIT_BAD_INPUT, stderr
    assert "Nothing changed since the last completed run" not in stdout
    said = f"{category.name} [train, eval]: expected at least {category.min_domain_mass:.0%} of the values"
    assert_stopped_at_the_gate(stderr, [(category.name, said, f"{unlisted} (~")])
    run = collect(good_run.pipeline_config(output))
    assert run.executions["CsvExampleGen"] == "COMPLETE"  # read again, not from the cache
    assert run.executions["ValidationGate"] == "FAILED"
    assert tree_hash(serving) == serving_before
