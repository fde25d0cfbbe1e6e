"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

The example's label (models/label.py): a big tip is a tip of more than 20% of the fare, computed
before a run (the preflight check) as Transform computes it. Any label's check before a run:
tests/runners/local/test_preflight_label.py.
"""

from pathlib import Path

import pytest

from models import label
from pipeline.data import DataError
from runners.local.preflight import LabelCheck, LabelDeclaration

pytestmark = pytest.mark.example

MISSING = ("", "NA", "N/A", "null")


def check_rows(tmp_path: Path, header: list[str], rows: list[list[str]]) -> None:
    """LabelCheck of the example's label over rows, as check_csv_folder feeds it."""
    check = LabelCheck(header, {}, MISSING, LabelDeclaration.of_the_model())
    for line, row in enumerate(rows, start=2):
        check.add(tmp_path / "data.csv", line, row)
    check.finish(tmp_path)


def test_the_taxi_label_is_computed_as_transform_computes_it(tmp_path: Path) -> None:
    header = ["fare", "tips"]
    check_rows(tmp_path, header, [["10", "3"], ["10", "1"]])  # a big tip and a small one
    with pytest.raises(DataError) as error:
        check_rows(tmp_path, header, [["10", "1"], ["10", "2"], ["NA", "5"]])  # 2.0 is not > 0.2 * 10
    assert str(error.value) == (
        f"data folder {tmp_path}: every labelled row is one class ('{label.TASK.classes[0]}'; models/label.py "
        "computes the label from tips, fare); the model needs at least two classes to learn"
    )


def test_missing_tips_are_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the label column 'tips' is empty in every row"):
        check_rows(tmp_path, ["fare", "tips"], [["10", "NA"], ["12", "null"], ["8", " "]])
