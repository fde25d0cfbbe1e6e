"""Checks made before the pipeline starts: cheap, and each failure is one line for the user.

- The schema file (`schema_path`) exists, parses, and holds every feature the model uses.
- Each `*.csv` entry of a local data folder is a readable file (not a folder, a dangling link or
  a link loop) of UTF-8 text (a byte-order mark is fine) with a header row, the same header in
  every file, every row as long as the header, well-formed quoting and no value longer than TFX's
  CSV reader takes; the folder holds rows of data.
- The columns are the schema's: none it requires is missing, none it lacks is extra.
- The label column has values, and both classes occur.
- The output folder is a folder (or can be created) that this process can write.

Content problems the schema describes (types, domains, ranges, presence) are left to the
validation gate inside the pipeline, which runs on every runner.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from models import features
from pipeline.config import ConfigError, PipelineConfig
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
    if "://" not in folder:
        check_csv_folder(Path(folder), schema)
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
    missing = [key for key in [*features.RAW_FEATURE_KEYS, features.LABEL_KEY] if key not in names]
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


@dataclass
class _LabelCount:
    """Rows with a label value, and the two classes where fare and tips are numbers."""

    filled: int = 0
    classes: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0})
    numeric: bool = True


def check_csv_folder(folder: Path, schema: schema_pb2.Schema | None) -> None:
    csv.field_size_limit(FIELD_SIZE_LIMIT)  # Python's default, as in TFX's reader on Dataflow
    files = csv_files(folder)
    first_header: list[str] | None = None
    rows = 0
    label = _LabelCount()
    for file in files:
        header = _read_header(file)
        if first_header is None:
            _check_columns(file, header, schema)
            first_header = header
        elif header != first_header:
            raise DataError(
                f"{file}: its header differs from that of {files[0].name} (every file needs the same columns)"
            )
        rows += _scan_rows(file, header, label)
    if rows == 0:
        raise DataError(f"data folder {folder} holds only header rows: no data")
    if label.filled == 0:
        raise DataError(f"data folder {folder}: the label column '{features.LABEL_KEY}' is empty in every row")
    if label.numeric and min(label.classes.values()) == 0:
        only = "big tips" if label.classes[1] else "not big tips"
        raise DataError(
            f"data folder {folder}: every labelled trip is one class ({only}: '{features.LABEL_KEY}' "
            f"{'>' if label.classes[1] else '<='} {features.BIG_TIP_SHARE:.0%} of '{features.FARE_KEY}'); "
            "the model needs both classes to learn"
        )


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
        required = [*features.RAW_FEATURE_KEYS, features.LABEL_KEY]
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


def _scan_rows(file: Path, header: list[str], label: _LabelCount) -> int:
    """Reads every row; returns how many hold data. Raises DataError at the first malformed one."""
    label_at = header.index(features.LABEL_KEY) if features.LABEL_KEY in header else None
    fare_at = header.index(features.FARE_KEY) if features.FARE_KEY in header else None
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
                if label_at is not None:
                    _count_label(row[label_at], row[fare_at] if fare_at is not None else "", label)
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


def _count_label(tips: str, fare: str, label: _LabelCount) -> None:
    if not tips.strip():
        return
    label.filled += 1
    try:
        tips_value, fare_value = float(tips), float(fare)
    except ValueError:
        label.numeric = False  # text in a numeric column: the validation gate reports it
        return
    if math.isnan(tips_value) or math.isnan(fare_value):
        return
    # The label of models/preprocessing.py: big_tip_label.
    label.classes[int(tips_value > fare_value * features.BIG_TIP_SHARE)] += 1


def _open_text(file: Path):
    # utf-8-sig: a byte-order mark (as Excel writes "CSV UTF-8") is skipped, as CsvExampleGen skips it.
    return file.open(encoding="utf-8-sig", newline="")
