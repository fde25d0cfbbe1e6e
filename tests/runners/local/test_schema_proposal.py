"""`make schema`: a proposal from the current data, next to the curated schema, never over it."""

from __future__ import annotations

import csv
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.paths import REPO_ROOT
from runners import errors
from tests.runners.conftest import run_cli, tree_hash

CURATED = REPO_ROOT / "schema" / "schema.pbtxt"


def test_proposal_for_data_that_matches(small_taxi_dir: Path, tmp_path: Path) -> None:
    before = tree_hash(CURATED.parent)
    proposal = tmp_path / "proposed.pbtxt"
    status, stdout, stderr = run_cli(["schema", "--data", str(small_taxi_dir), "--output", str(proposal)])
    assert status == errors.EXIT_OK, stderr
    assert f"Proposed schema: {proposal}" in stdout
    assert "schema/schema.pbtxt: nothing to change." in stdout
    inferred = text_format.Parse(proposal.read_text(), schema_pb2.Schema())
    assert {feature.name for feature in inferred.feature} >= {"fare", "payment_type", "tips"}
    # NaN and infinity are refused in every FLOAT feature, as in the curated schema.
    floats = [feature for feature in inferred.feature if feature.type == schema_pb2.FLOAT]
    assert {feature.name for feature in floats} >= {"fare", "tips", "trip_miles", "pickup_latitude"}
    assert all(feature.float_domain.disallow_nan and feature.float_domain.disallow_inf for feature in floats)
    assert proposal.read_text().startswith("# Proposed by `make schema`")
    assert tree_hash(CURATED.parent) == before


def test_proposal_lists_what_breaks_the_curated_schema(small_taxi_dir: Path, tmp_path: Path) -> None:
    with (small_taxi_dir / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    at = header.index("payment_type")
    for index, row in enumerate(rows):
        if index % 10 == 0:
            row[at] = "Mobile"
    data = tmp_path / "data"
    data.mkdir()
    with (data / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(tmp_path / "proposed.pbtxt")])
    assert status == errors.EXIT_OK
    assert "schema/schema.pbtxt in 1 place(s):" in stdout
    assert "  diff " in stdout and "the edited schema is imported anew" in stdout
    assert "  payment_type: expected at least 99% of the values from the schema's list (" in stdout
    assert "found values not in the list: Mobile (~10%)" in stdout
    assert 'value: "Mobile"' in (tmp_path / "proposed.pbtxt").read_text()


def test_the_curated_schema_is_never_overwritten(small_taxi_dir: Path) -> None:
    before = CURATED.read_bytes()
    status, _, stderr = run_cli(["schema", "--data", str(small_taxi_dir), "--output", str(CURATED)])
    assert status == errors.EXIT_BAD_INPUT
    assert stderr.strip() == f"error: --output {CURATED} is the curated schema itself; the proposal never overwrites it"
    assert CURATED.read_bytes() == before


def write_with_fare(tmp_path: Path, small_taxi_dir: Path, token: str) -> Path:
    """The small taxi data with `token` in place of every tenth fare."""
    with (small_taxi_dir / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    at = header.index("fare")
    for index, row in enumerate(rows):
        if index % 10 == 0:
            row[at] = token
    data = tmp_path / f"data-{token}"
    data.mkdir()
    with (data / "data.csv").open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])
    return data


def feature(proposal: Path, name: str) -> schema_pb2.Feature:
    schema = text_format.Parse(proposal.read_text(), schema_pb2.Schema())
    return next(feature for feature in schema.feature if feature.name == name)


def test_a_numeric_column_proposed_as_text_is_warned_about(small_taxi_dir: Path, tmp_path: Path) -> None:
    data, proposal = write_with_fare(tmp_path, small_taxi_dir, "unknown"), tmp_path / "proposed.pbtxt"
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(proposal)])
    assert status == errors.EXIT_OK
    assert feature(proposal, "fare").type == schema_pb2.BYTES
    assert "warning: column 'fare' is proposed as text (BYTES) although 90% of its values are numbers; the " in stdout
    assert "the others: 'unknown' (150 rows). If they mean 'no value', add them to data.missing_values" in stdout


def test_missing_value_tokens_are_read_as_missing(small_taxi_dir: Path, tmp_path: Path) -> None:
    data, proposal = write_with_fare(tmp_path, small_taxi_dir, "NA"), tmp_path / "proposed.pbtxt"
    status, stdout, _ = run_cli(["schema", "--data", str(data), "--output", str(proposal)])
    assert status == errors.EXIT_OK
    assert "warning" not in stdout
    fare = feature(proposal, "fare")
    assert fare.type == schema_pb2.FLOAT and not fare.shape.dim  # not in every row: NA is no value
    # The label's own column is training data only, as in the curated schema.
    assert list(feature(proposal, "tips").not_in_environment) == ["SERVING"]
    assert not feature(proposal, "fare").not_in_environment  # a feature, and one the label reads
