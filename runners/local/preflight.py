"""Checks made before the pipeline starts: cheap, and each failure is one line for the user.

- The schema file (`schema_path`) exists, parses, and holds every feature the model uses.
- Each `*.csv` entry of a local data folder is a readable file (not a folder, a dangling link or
  a link loop) of UTF-8 text (a byte-order mark is fine) with a header row, the same header in
  every file, every row as long as the header, well-formed quoting and no value longer than TFX's
  CSV reader takes; the folder holds rows of data.
- The columns are the schema's: none it requires is missing, none it lacks is extra.
- The label, computed from each row as Transform computes it (models/label.py), has at least two
  classes, each a class of the task (for regression: numbers that are not all the same). Values of
  `data.missing_values` are missing, as CsvExampleGen reads them.
- The config fits the model and the data: the evaluation metrics apply to the task, every slice
  feature is a column, the serving instances carry the model's features with their columns' types.
- The output folder is a folder (or can be created) that this process can write.

Content problems the schema describes (types, domains, ranges, presence) are left to the
validation gate inside the pipeline, which runs on every runner.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features, label
from models.task import UNKNOWN_CLASS, Task, label_array
from pipeline.config import ConfigError, PipelineConfig, check_against_model, schema_column_types
from pipeline.data import DataError, csv_files, data_dir
from pipeline.paths import in_repository

BINARY_PROBE_BYTES = 8192
# The longest value TFX's CSV reader takes: tfx_bsl parses lines with Python's csv module, at its
# default limit, in every Dataflow worker (this pipeline's reader takes more, Dataflow's does not).
FIELD_SIZE_LIMIT = 131072
# What a local run writes under the output folder (pipeline/pipeline.py, runners/report), and the lock.
_WRITTEN_UNDER_OUTPUT = (
    "run.lock",
    "metadata/{name}",
    "metadata/{name}/metadata.sqlite",
    "pipelines/{name}",
    "serving_model/{name}",
    "reports/{name}",
)
_CHOOSE_ANOTHER = "give another folder with --output-dir (OUT= with make)"
# The label is computed on this many rows at a time.
LABEL_CHUNK_ROWS = 65536


def schema_file(config: PipelineConfig) -> str | None:
    """`schema_path` as the pipeline reads it: a URL as given, a relative path from the repository root."""
    path = config.schema_path
    if path is None or "://" in path:
        return path
    return str(in_repository(path))


def check(config: PipelineConfig, config_files: Sequence[Path | str] = ()) -> None:
    """Raises ConfigError or DataError, with one line, when the run cannot succeed."""
    schema = load_schema(config, config_files)
    folder = data_dir(config)
    columns: Mapping[str, str | None] | None = None
    columns_from = ""
    if schema is not None:
        columns, columns_from = schema_column_types(schema), f"the schema {config.schema_path}"
    if "://" not in folder:
        header = check_csv_folder(Path(folder), schema, config.data.missing_tokens)
        if columns is None:
            columns, columns_from = dict.fromkeys(header), f"the data's header ({folder})"
    check_against_model(
        config, task=label.TASK, features=features.RAW_FEATURE_KEYS, columns=columns, columns_from=columns_from
    )
    output_dir = getattr(config.runner, "output_dir", None)
    if output_dir is not None:
        check_output_dir(Path(output_dir), config.pipeline_name)


def check_output_dir(output_dir: Path, pipeline_name: str) -> None:
    """The output folder is a folder, or can be created, and what a run writes in it is writable."""
    output = Path(os.path.abspath(output_dir.expanduser()))
    if output.is_symlink() and not output.exists():
        raise ConfigError(f"output folder {output} is a symbolic link to a missing folder; {_CHOOSE_ANOTHER}")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output folder {output} is a file, not a folder; {_CHOOSE_ANOTHER}")
    existing = output
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"output folder {output} cannot be created: {existing} is a file; {_CHOOSE_ANOTHER}")
    if existing != output:
        if not _writable(existing):
            raise ConfigError(f"output folder {output} cannot be created: {existing} is read-only; {_CHOOSE_ANOTHER}")
        return
    written = [output, *(output / entry.format(name=pipeline_name) for entry in _WRITTEN_UNDER_OUTPUT)]
    read_only = next((path for path in written if path.exists() and not _writable(path)), None)
    if read_only is not None:
        which = "" if read_only == output else f" ({read_only} cannot be written)"
        raise ConfigError(f"output folder {output} is read-only{which}: make it writable, or {_CHOOSE_ANOTHER}")


def _writable(path: Path) -> bool:
    """os.access: the real permissions, a read-only filesystem included (for root too)."""
    return os.access(path, (os.W_OK | os.X_OK) if path.is_dir() else os.W_OK)


def load_schema(config: PipelineConfig, config_files: Sequence[Path | str] = ()) -> schema_pb2.Schema | None:
    """The configured schema (None when a schema is inferred or lives in the cloud), checked to parse."""
    path = schema_file(config)
    if path is None or "://" in path:
        return None
    where = f"{_file_setting_schema_path(config_files)}: schema_path"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path} does not exist (expected a schema.pbtxt, or null to infer one)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: cannot read {path} ({error})") from None
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as error:
        raise ConfigError(f"{where}: {path} is not a valid schema in text format: {error}") from None
    names = {feature.name for feature in schema.feature}
    missing = [key for key in model_columns() if key not in names]
    if missing:
        raise ConfigError(f"{where}: {path} lacks features the model uses: {', '.join(missing)}")
    return schema


def _file_setting_schema_path(config_files: Sequence[Path | str]) -> str:
    """The last config file that sets schema_path (the one to fix), else 'config'."""
    for file in reversed(config_files):
        try:
            content = yaml.safe_load(Path(file).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(content, dict) and "schema_path" in content:
            return str(file)
    return "config"


def model_columns() -> list[str]:
    """The columns the model reads: its features, then the label's (models/features.py, models/label.py)."""
    return list(dict.fromkeys([*features.RAW_FEATURE_KEYS, *label.COLUMNS]))


def check_csv_folder(folder: Path, schema: schema_pb2.Schema | None, missing: Collection[str] = ("",)) -> list[str]:
    """Checks every CSV file of `folder` (see the module docstring); returns the header. Cells in
    `missing` have no value."""
    csv.field_size_limit(FIELD_SIZE_LIMIT)  # Python's default, as in TFX's reader on Dataflow
    files = csv_files(folder)
    first_header: list[str] | None = None
    rows = 0
    labels: LabelCheck | None = None
    for file in files:
        header = _read_header(file)
        if first_header is None:
            _check_columns(file, header, schema)
            first_header = header
            labels = LabelCheck(header, _column_kinds(schema), missing)
        elif header != first_header:
            raise DataError(
                f"{file}: its header differs from that of {files[0].name} (every file needs the same columns)"
            )
        rows += _scan_rows(file, header, labels.add if labels else None)
    if rows == 0:
        raise DataError(f"data folder {folder} holds only header rows: no data")
    if labels is not None:
        labels.finish(folder)
    return first_header or []


def _column_kinds(schema: schema_pb2.Schema | None) -> dict[str, str]:
    return schema_column_types(schema) if schema is not None else {}


@dataclass(frozen=True)
class LabelDeclaration:
    """What models/label.py declares: the task, the label's columns, and `compute`."""

    task: Task
    columns: tuple[str, ...]
    compute: Callable[[Mapping[str, Any]], Any]

    @classmethod
    def of_the_model(cls) -> LabelDeclaration:
        return cls(label.TASK, tuple(label.COLUMNS), label.compute)


class LabelCheck:
    """Computes the label of every row with models/label.py, as Transform does, and checks that it
    can be learnt: at least two classes, each one of the task's (regression: varying numbers)."""

    def __init__(
        self,
        header: list[str],
        kinds: Mapping[str, str],
        missing: Collection[str],
        declaration: LabelDeclaration | None = None,
    ) -> None:
        self.declaration = declaration or LabelDeclaration.of_the_model()
        self.columns = [column for column in self.declaration.columns if column in header]
        self.at = [header.index(column) for column in self.columns]
        self.kinds = kinds
        self.missing = frozenset(missing)
        self.filled = Counter[str]()  # rows with a value, per label column
        self.chunk: list[tuple[Path, int, list[str]]] = []
        self.classes = Counter[int]()
        self.values: set[float] = set()  # regression: up to two distinct values are enough
        self.unreadable = False  # text in a numeric column: the validation gate reports it

    def add(self, file: Path, line: int, row: list[str]) -> None:
        if not self.columns:
            return
        cells = [row[at] for at in self.at]
        present = [not self._is_missing(cell) for cell in cells]
        for column, has_value in zip(self.columns, present, strict=True):
            self.filled[column] += has_value
        if all(present):
            self.chunk.append((file, line, cells))
            if len(self.chunk) >= LABEL_CHUNK_ROWS:
                self._compute()

    def _is_missing(self, cell: str) -> bool:
        return cell in self.missing or not cell.strip()

    def finish(self, folder: Path) -> None:
        if len(self.columns) != len(self.declaration.columns):
            return  # a missing column: refused with the header check (no schema: by the pipeline)
        self._compute()
        empty = [column for column in self.columns if self.filled[column] == 0]
        if len(empty) == 1:
            raise DataError(f"data folder {folder}: the label column '{empty[0]}' is empty in every row")
        if empty:
            raise DataError(f"data folder {folder}: the label columns {', '.join(empty)} are empty in every row")
        if self.unreadable:
            return
        task = self.declaration.task
        source = f"models/label.py computes the label from {', '.join(self.declaration.columns)}"
        if task.is_classification and len(self.classes) < 2:
            (only,) = self.classes or {0: 0}
            raise DataError(
                f"data folder {folder}: every labelled row is one class ('{task.class_name(only)}'; {source}); "
                "the model needs at least two classes to learn"
            )
        if not task.is_classification and len(self.values) < 2:
            shown = f" ({next(iter(self.values)):g})" if self.values else ""
            raise DataError(
                f"data folder {folder}: every labelled row has the same label{shown} ({source}); the model needs "
                "labels that vary to learn"
            )

    def _compute(self) -> None:
        if not self.chunk or self.unreadable:
            self.chunk.clear()
            return
        columns = self._arrays()
        if columns is not None:
            labels = compute_labels(columns, self.declaration)
            self._count(labels)
        self.chunk.clear()

    def _arrays(self) -> dict[str, Any] | None:
        import numpy as np

        arrays = {}
        for index, column in enumerate(self.columns):
            cells = [cells[index] for _, _, cells in self.chunk]
            kind = self.kinds.get(column) or _inferred_kind(cells)
            try:
                if kind == "int":
                    arrays[column] = np.array([int(cell) for cell in cells], np.int64)
                elif kind == "float":
                    arrays[column] = np.array([float(cell) for cell in cells], np.float32)
                else:
                    arrays[column] = np.array(cells, np.str_)
            except (ValueError, OverflowError):
                self.unreadable = True
                return None
        return arrays

    def _count(self, labels: Any) -> None:
        import numpy as np

        task = self.declaration.task
        if task.is_classification:
            bad = np.flatnonzero((labels < 0) | (labels >= len(task.classes)))
            if bad.size:
                file, line, cells = self.chunk[int(bad[0])]
                values = ", ".join(f"{column} {cell!r}" for column, cell in zip(self.columns, cells, strict=True))
                found = int(labels[bad[0]])
                what = "none of the classes" if found == UNKNOWN_CLASS else f"{found}, not a class index"
                raise DataError(
                    f"{file} line {line}: the label of this row ({values}) is {what} of models/label.py: expected "
                    f"0 to {len(task.classes) - 1} ({', '.join(task.classes)})"
                )
            self.classes.update(int(value) for value in np.unique(labels))
        else:
            finite = labels[np.isfinite(labels)]
            for value in np.unique(finite)[:2]:
                if len(self.values) < 2:
                    self.values.add(float(value))


def compute_labels(columns: Mapping[str, Any], declaration: LabelDeclaration) -> Any:
    """models/label.py's label of every row, on NumPy arrays, or with TensorFlow when `compute` needs it."""
    try:
        return label_array(declaration.task, declaration.compute(columns))
    except Exception:
        import tensorflow as tf

        tensors = {column: tf.constant(values) for column, values in columns.items()}
        try:
            return label_array(declaration.task, declaration.compute(tensors))
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ConfigError(
                f"models/label.py: compute() fails on the data's {', '.join(columns)}: {type(error).__name__}: {first}"
            ) from None


def _inferred_kind(cells: list[str]) -> str:
    """TFX's rule for a column without a schema: int if every value is one, else float, else string."""
    for kind, parse in (("int", int), ("float", float)):
        try:
            for cell in cells:
                parse(cell)
        except ValueError:
            continue
        return kind
    return "string"


def _read_header(file: Path) -> list[str]:
    with file.open("rb") as raw:
        probe = raw.read(BINARY_PROBE_BYTES)
    if not probe.strip():
        raise DataError(f"{file}: the file is empty (expected a header row, then rows of data)")
    nul = probe.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{file}: not a CSV text file (binary data: a NUL byte at offset {nul})")
    with _open_text(file) as text:
        try:
            header = next(csv.reader(text, strict=True))
        except UnicodeDecodeError:
            raise _not_utf8(file) from None
        except csv.Error as error:
            raise DataError(f"{file} line 1: the header row cannot be read as CSV ({error})") from None
    names = [name.strip() for name in header]
    if not all(names):
        raise DataError(f"{file} line 1: the header has an empty column name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{file} line 1: the header repeats column(s) {', '.join(duplicates)}")
    return names


def _check_columns(file: Path, header: list[str], schema: schema_pb2.Schema | None) -> None:
    if schema is None:
        required = model_columns()
        known = set(header)
    else:
        required = [f.name for f in schema.feature if f.presence.min_fraction > 0 or f.presence.min_count > 0]
        known = {f.name for f in schema.feature}
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{file}: missing column(s) {', '.join(missing)} (the header has: {', '.join(header)})")
    extra = [name for name in header if name not in known]
    if extra:
        raise DataError(
            f"{file}: unexpected column(s) {', '.join(extra)}, not in the schema "
            "(remove them, or add them to the schema: see docs/data-validation.md)"
        )


def _scan_rows(file: Path, header: list[str], on_row: Callable[[Path, int, list[str]], None] | None) -> int:
    """Reads every row, passing each to `on_row` with its line; returns how many hold data. Raises
    DataError at the first malformed one."""
    rows = 0
    with _open_text(file) as text:
        reader = csv.reader(text, strict=True)
        previous = 0  # the last line of the last row read
        try:
            next(reader)
            previous = reader.line_num
            for row in reader:
                start, previous = previous + 1, reader.line_num  # a quoted value may span lines
                if not row:
                    continue  # CsvExampleGen skips empty lines
                if len(row) != len(header):
                    raise DataError(f"{file} line {start}: {len(row)} values, but the header has {len(header)} columns")
                rows += 1
                if on_row is not None:
                    on_row(file, start, row)
        except csv.Error as error:
            if str(error).startswith("field larger than field limit"):
                raise _field_too_long(file, previous + 1, reader.line_num) from None
            if str(error) == "unexpected end of data" and reader.line_num > previous + 1:
                raise DataError(
                    f"{file} line {previous + 1}: a quoted value starting on this line is never closed (the file "
                    'ends inside it; a quote inside a value is written twice: "")'
                ) from None
            raise DataError(f"{file} line {reader.line_num}: broken CSV quoting ({error})") from None
        except UnicodeDecodeError:
            raise _not_utf8(file) from None
    return rows


def _field_too_long(file: Path, start: int, line: int) -> DataError:
    if line > start:
        return DataError(
            f"{file} line {start}: a quoted value starting on this line is still open {line - start} lines later, "
            f'past {FIELD_SIZE_LIMIT:,} characters: most likely a quote (") that is never closed '
            '(a quote inside a value is written twice: "")'
        )
    return DataError(
        f"{file} line {start}: a value longer than {FIELD_SIZE_LIMIT:,} characters (128 KiB), the most TFX's CSV "
        "reader takes in one field (Python's csv module, on Dataflow too); the limit cannot be raised, "
        "so shorten the value or leave the column out"
    )


def _not_utf8(file: Path) -> DataError:
    """Where the first byte that is not UTF-8 is: a text stream's error gives only its offset in a buffer."""
    with file.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = line[error.start]
                column = len(line[: error.start].decode("utf-8")) + 1
                legacy = bytes([byte]).decode("cp1252", errors="replace")
                meaning = f", '{legacy}' in Latin-1/Windows-1252" if legacy.isprintable() and legacy != "\ufffd" else ""
                return DataError(
                    f"{file} line {number}: not UTF-8 text (byte {byte:#04x}{meaning}, at character {column}); "
                    "save the file as UTF-8"
                )
    return DataError(f"{file}: not UTF-8 text; save the file as UTF-8")


def _open_text(file: Path):
    # utf-8-sig: a byte-order mark (as Excel writes "CSV UTF-8") is skipped, as CsvExampleGen skips it.
    return file.open(encoding="utf-8-sig", newline="")
