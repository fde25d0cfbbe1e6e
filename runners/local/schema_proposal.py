"""`python -m pipeline schema` (`make schema`): a schema proposal from the current data, for review.

Statistics are computed on the CSV files converted exactly as CsvExampleGen converts them (an
empty cell is a feature without a value), so the proposal is what SchemaGen would infer inside the
pipeline (`data.missing_values` are missing too). The proposal is TFDV's `infer_schema` on those
statistics, with NaN and infinity disallowed in every FLOAT feature (`infer_schema` never proposes
that, and a NaN in the data makes the model predict NaN) and the label's own columns
(models/label.py) marked as absent from serving requests, written next to the curated schema (never
over it). A column that is mostly numbers but is proposed as text because of a few other values
("NA", "-", "unknown") gets a warning naming them: most often they mean "no value" and belong in
`data.missing_values`. The command also
validates the same statistics against the curated schema and prints what the validation gate
would say, which is the list of changes to review. Accepting a change stays a reviewed edit of the
curated file (docs/data-validation.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, PipelineConfig, load_config
from pipeline.data import DataError
from pipeline.paths import REPO_ROOT
from runners.errors import EXIT_BAD_INPUT, EXIT_OK
from runners.local.progress import quietly

PROPOSAL_NAME = "schema.proposed.pbtxt"
# A text column with at most this share of values that are not numbers looks numeric.
NUMERIC_LOOKING_MAX_TEXT = 0.2


def add_schema_parser(commands: argparse._SubParsersAction) -> None:
    schema = commands.add_parser("schema", help="propose a schema from the current data (never overwrites it)")
    schema.add_argument("--config", type=Path, default=LOCAL_CONFIG, help="environment config (for data.path)")
    schema.add_argument("--data", help="folder of CSV files (overrides data.path)")
    schema.add_argument("--output", type=Path, help=f"proposal file (default: {PROPOSAL_NAME} beside the schema)")
    schema.set_defaults(handler=quietly(run_schema_command))


def run_schema_command(args: argparse.Namespace) -> int:
    from pipeline.data import data_dir

    try:
        config = load_config([BASE_CONFIG, args.config], {"data.path": args.data} if args.data else {})
        curated, output = _paths(config, args.output)
        folder = data_dir(config)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"Computing statistics of {folder} as CsvExampleGen reads it ...")
    proposal, differences, warnings = propose(folder, curated, config.data.missing_tokens)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(proposal)
    print(f"Proposed schema: {output}")
    for warning in warnings:
        print(f"warning: {warning}")
    if curated is None:
        print("No curated schema is configured (schema_path: null); the pipeline infers one with SchemaGen.")
    elif differences:
        print(f"The data breaks the curated schema {_shown(curated)} in {len(differences)} place(s):")
        for line in differences:
            print(f"  {line}")
        print(
            "If the change is legitimate, accept it: compare the two files\n"
            f"  diff {_shown(curated)} {_shown(output)}\n"
            f"then edit {_shown(curated)} for the features above (for new values: add them to the domain),\n"
            "keeping its comments and curated limits (the proposal has none), have the edit reviewed, and\n"
            "run again: the edited schema is imported anew."
        )
    else:
        print(f"The data matches the curated schema {_shown(curated)}: nothing to change.")
    return EXIT_OK


def _shown(path: Path) -> str:
    """The path relative to the current folder when it is under it (shorter to read and to paste)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _paths(config: PipelineConfig, output: Path | None) -> tuple[Path | None, Path]:
    from runners.local import preflight

    curated_file = preflight.schema_file(config)
    if curated_file and "://" in curated_file:
        raise ConfigError(f"schema_path {curated_file} is in the cloud; run this with a local config")
    curated = Path(curated_file) if curated_file else None
    if output is None:
        output = (curated.parent if curated else REPO_ROOT / "schema") / PROPOSAL_NAME
    if curated is not None and output.resolve() == curated.resolve():
        raise ConfigError(f"--output {output} is the curated schema itself; the proposal never overwrites it")
    return curated, output


def propose(folder: str, curated: Path | None, missing: Sequence[str] = ("",)) -> tuple[str, list[str], list[str]]:
    """(the inferred schema as text, the curated schema's anomalies in plain words, warnings about
    numeric-looking columns proposed as text)."""
    import tensorflow_data_validation as tfdv

    from components import anomaly_text

    statistics, warnings = example_statistics(folder, missing)
    inferred = training_only_label(finite_floats(tfdv.infer_schema(statistics, infer_feature_shape=True)))
    header = (
        f"# Proposed by `make schema` from {folder} (TFDV infer_schema on CsvExampleGen's view of the data).\n"
        "# Review it against the curated schema; never use it as is: it has none of the curated limits.\n"
    )
    if curated is None:
        return header + str(inferred), [], warnings
    schema = tfdv.load_schema_text(str(curated))
    anomalies = anomaly_text.describe(tfdv.validate_statistics(statistics, schema), schema)
    return header + str(inferred), [anomaly.line() for anomaly in anomalies], warnings


def training_only_label(schema):  # schema_pb2.Schema -> the same, changed
    """The label's own columns (models/label.py, not features) are in TRAINING data, not in SERVING
    requests: the environments the curated schema declares."""
    from models import features, label

    own = set(label.COLUMNS) - set(features.RAW_FEATURE_KEYS)
    for environment in ("TRAINING", "SERVING"):
        if environment not in schema.default_environment:
            schema.default_environment.append(environment)
    for feature in schema.feature:
        if feature.name in own and "SERVING" not in feature.not_in_environment:
            feature.not_in_environment.append("SERVING")
    return schema


def finite_floats(schema):  # schema_pb2.Schema -> the same, changed
    """Disallows NaN and infinity in every FLOAT feature whose domain is its own float_domain or none."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    for feature in schema.feature:
        if feature.type == schema_pb2.FLOAT and feature.WhichOneof("domain_info") in (None, "float_domain"):
            feature.float_domain.disallow_nan = True
            feature.float_domain.disallow_inf = True
    return schema


def example_statistics(folder: str, missing: Sequence[str] = ("",)):  # -> (DatasetFeatureStatisticsList, warnings)
    """TFDV statistics of the CSV files of `folder` after CsvExampleGen's conversion to tf.Examples,
    cells in `missing` read as empty; and warnings about numeric-looking columns read as text
    (numeric_looking_text)."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    # The local CsvExampleGen's conversion: the same types, empty values and byte-order mark handling.
    from components.fast.csv_examples import encode_file

    files = folder_files(folder)
    column_types = csv_column_types(files, missing)
    warnings = numeric_looking_text(files, column_types, missing)
    with tempfile.TemporaryDirectory() as work:
        examples = str(Path(work) / "examples.tfrecord")
        with tf.io.TFRecordWriter(examples) as writer:
            for file in files:
                for record in encode_file(file, column_types, missing):
                    writer.write(record)
        return tfdv.generate_statistics_from_tfrecord(data_location=examples), warnings


def folder_files(folder: str) -> list[str]:
    from pipeline.data import csv_files

    return [str(file) for file in csv_files(Path(folder))]


def csv_column_types(files: Sequence[str], missing: Sequence[str]) -> dict[str, str | None]:
    """Each column's type as CsvExampleGen infers it over all files."""
    from components.fast.csv_examples import infer_column_types, merge_column_types

    return merge_column_types(infer_column_types(file, missing) for file in files)


def numeric_looking_text(
    files: Sequence[str], column_types: Mapping[str, str | None], missing: Sequence[str]
) -> list[str]:
    """A warning for each text column most of whose values are numbers, naming the other values."""
    import pyarrow.compute as pc

    from components.fast.csv_examples import STRING, read_blocks

    text_columns = [name for name, kind in column_types.items() if kind == STRING]
    counts: dict[str, Counter[str]] = {name: Counter() for name in text_columns}
    for file in files:
        for block in read_blocks(file, missing=missing):
            for name in text_columns:
                for entry in pc.value_counts(block.column(name).drop_null()).to_pylist():
                    counts[name][entry["values"]] += entry["counts"]
    warnings = []
    for name, values in counts.items():
        others = Counter({value: count for value, count in values.items() if not _is_number(value)})
        total, other_rows = sum(values.values()), sum(others.values())
        if total and other_rows / total <= NUMERIC_LOOKING_MAX_TEXT:
            shown = ", ".join(f"{value!r} ({count:,} rows)" for value, count in others.most_common(3))
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            warnings.append(
                f"column '{name}' is proposed as text (BYTES) although {1 - other_rows / total:.0%} of its values "
                f"are numbers; the others: {shown}{more}. If they mean 'no value', add them to data.missing_values "
                "(configs/base.yaml) and run `make schema` again; otherwise correct them in the data"
            )
    return warnings


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
