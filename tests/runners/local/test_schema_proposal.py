"""`make schema`: a proposal from the current data, next to the curated schema, never over it.

The data is the session's sample of the configured data (tests/conftest.py), changed in a column
the declarations give a role (tests/runners/columns.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.config import load_config
from pipeline.paths import in_repository
from runners import errors
from tests.runners import columns
from tests.runners.conftest import run_cli, tree_hash

# Every n-th value of a numeric column replaced in the proposals below.
REPLACED_EVERY = 10


def curated_path() -> Path:
    return in_repository(str(load_config().schema_path))


def test_proposal_for_data_that_matches(small_data_dir: Path, tmp_path: Path) -> None:
    curated = curated_path()
    before = tree_hash(curated.parent)
    proposal = tmp_path / "proposed.pbtxt"
    status, stdout, stderr = run_cli(["schema", "--data", str(small_data_dir), "--output", str(proposal)])
    assert status == errors.EXIT_OK, stderr
    assert f"Proposed schema: {proposal}" in stdout
    assert f"{columns.schema_source()}: nothing to change." in stdout
    inferred = text_format.Parse(proposal.read_text(), schema_pb2.Schema())
    assert {feature.name for feature in inferred.feature} >= set(columns.model_columns())
    # NaN and infinity are refused in every FLOAT feature, as in the curated schema.
    floats = [feature for feature in inferred.feature if feature.type == schema_pb2.FLOAT]
    curated_floats = {feature.name for feature in columns.curated_schema().feature if feature.type == schema_pb2.FLOAT}
    assert {feature.name for feature in floats} >= curated_floats
    assert all(feature.float_domain.disallow_nan and feature.float_domain.disallow_inf for feature in floats)
    assert proposal.read_text().startswith("# Proposed by `make schema`")
    assert tree_hash(curated.parent) == before


def test_proposal_lists_what_breaks_the_curated_schema(small_data_dir: Path, tmp_path: Path) -> None:
    category = columns.text_category()
    every, unlisted = category.breaking_every, "Mobile"
    table = columns.with_column(
        columns.read_table(small_data_dir), category.name, lambda i, value: unlisted if i % every == 0 else value
    )
    data = columns.write_table(tmp_path / "data", *table)
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(tmp_path / "proposed.pbtxt")])
    assert status == errors.EXIT_OK
    assert f"{columns.schema_source()} in 1 place(s):" in stdout
    assert "  diff " in stdout and "the edited schema is imported anew" in stdout
    assert f"  {category.name}: expected {category.expected}; found " in stdout
    assert re.search(rf"found values not in the list: {unlisted} \(~\d+%\)", stdout), stdout
    assert f'value: "{unlisted}"' in (tmp_path / "proposed.pbtxt").read_text()


def test_the_curated_schema_is_never_overwritten(small_data_dir: Path) -> None:
    curated = curated_path()
    before = curated.read_bytes()
    status, _, stderr = run_cli(["schema", "--data", str(small_data_dir), "--output", str(curated)])
    assert status == errors.EXIT_BAD_INPUT
    assert stderr.strip() == f"error: --output {curated} is the curated schema itself; the proposal never overwrites it"
    assert curated.read_bytes() == before


def write_with_numeric(tmp_path: Path, small_data_dir: Path, column: str, token: str) -> Path:
    """The small data with `token` in place of every REPLACED_EVERY-th value of `column`."""
    table = columns.with_column(
        columns.read_table(small_data_dir), column, lambda i, value: token if i % REPLACED_EVERY == 0 else value
    )
    return columns.write_table(tmp_path / f"data-{token}", *table)


def feature(proposal: Path, name: str) -> schema_pb2.Feature:
    schema = text_format.Parse(proposal.read_text(), schema_pb2.Schema())
    return next(feature for feature in schema.feature if feature.name == name)


def test_a_numeric_column_proposed_as_text_is_warned_about(small_data_dir: Path, tmp_path: Path) -> None:
    numeric = columns.numeric_feature().name  # a number in every row
    data = write_with_numeric(tmp_path, small_data_dir, numeric, "unknown")
    proposal = tmp_path / "proposed.pbtxt"
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(proposal)])
    assert status == errors.EXIT_OK
    assert feature(proposal, numeric).type == schema_pb2.BYTES
    rows = len(columns.read_table(data)[1])
    replaced = len(range(0, rows, REPLACED_EVERY))
    numbers = f"{1 - replaced / rows:.0%}"
    warning = f"warning: column '{numeric}' is proposed as text (BYTES) although {numbers} of its values are numbers; "
    assert warning in stdout
    others = f"the others: 'unknown' ({replaced:,} rows). If they mean 'no value', add them to data.missing_values"
    assert others in stdout


def test_missing_value_tokens_are_read_as_missing(small_data_dir: Path, tmp_path: Path) -> None:
    token = columns.missing_token() or ""
    numeric = columns.numeric_feature()
    data = write_with_numeric(tmp_path, small_data_dir, numeric.name, token)
    proposal = tmp_path / "proposed.pbtxt"
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(proposal)])
    assert status == errors.EXIT_OK
    assert "warning" not in stdout
    proposed = feature(proposal, numeric.name)
    assert proposed.type == numeric.type and not proposed.shape.dim  # not in every row: the token is no value
    # The label's own columns are training data only, as in the curated schema; a feature is served.
    for column in columns.model_columns():
        served = [] if column not in columns.training_only_columns() else ["SERVING"]
        assert list(feature(proposal, column).not_in_environment) == served, column
    assert not proposed.not_in_environment
