"""The preflight check computes the label as models/label.py declares it, for every task, and reads
the configured missing-value tokens as missing; the config is checked against the data's columns.
The taxi example's own label: tests/example/test_label.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.serving_checks import Task
from models import features, label
from models.task import class_index
from pipeline.config import BASE_CONFIG, LOCAL_CONFIG, ConfigError, load_config
from pipeline.data import DataError
from runners.local import preflight
from runners.local.preflight import LabelCheck, LabelDeclaration

SPECIES = Task.multiclass(classes=("setosa", "versicolor", "virginica"))
MISSING = ("", "NA", "N/A", "null")


def species(columns):
    return class_index(SPECIES, columns["species"])


def check_rows(tmp_path: Path, header: list[str], rows: list[list[str]], declaration: LabelDeclaration) -> None:
    """LabelCheck over rows, as check_csv_folder feeds it."""
    check = LabelCheck(header, {}, MISSING, declaration)
    for line, row in enumerate(rows, start=2):
        check.add(tmp_path / "data.csv", line, row)
    check.finish(tmp_path)


def test_missing_value_tokens_are_missing(tmp_path: Path) -> None:
    """The model's label (models/label.py) with its first column holding only missing values; its
    other columns, if any, a number ("10")."""
    header = list(label.COLUMNS)
    rows = [[token, *["10"] * (len(header) - 1)] for token in ("NA", "null", " ")]
    with pytest.raises(DataError, match=re.escape(f"the label column '{label.COLUMNS[0]}' is empty in every row")):
        check_rows(tmp_path, header, rows, LabelDeclaration.of_the_model())


def test_three_classes_from_a_column_of_class_names(tmp_path: Path) -> None:
    declaration = LabelDeclaration(SPECIES, ("species",), species)
    check_rows(tmp_path, ["species"], [["setosa"], ["virginica"], ["NA"]], declaration)
    with pytest.raises(DataError) as error:
        check_rows(tmp_path, ["species"], [["setosa"], ["rose"]], declaration)
    assert str(error.value) == (
        f"{tmp_path / 'data.csv'} line 3: the label of this row (species 'rose') is none of the classes of "
        "models/label.py: expected 0 to 2 (setosa, versicolor, virginica)"
    )
    with pytest.raises(DataError, match=r"every labelled row is one class \('virginica'; models/label.py computes"):
        check_rows(tmp_path, ["species"], [["virginica"], ["virginica"]], declaration)


def test_a_binary_label_outside_0_and_1_is_refused(tmp_path: Path) -> None:
    declaration = LabelDeclaration(Task.binary(), ("churned",), lambda columns: columns["churned"])
    check_rows(tmp_path, ["churned"], [["0"], ["1"]], declaration)
    with pytest.raises(DataError, match=r"line 3: the label of this row \(churned '2'\) is 2, not a class index"):
        check_rows(tmp_path, ["churned"], [["0"], ["2"]], declaration)


def test_regression_needs_numbers_that_vary(tmp_path: Path) -> None:
    declaration = LabelDeclaration(Task.regression(), ("price",), lambda columns: columns["price"])
    check_rows(tmp_path, ["price"], [["1.5"], ["2.5"], ["N/A"]], declaration)
    with pytest.raises(DataError, match=r"every labelled row has the same label \(3\.5\)"):
        check_rows(tmp_path, ["price"], [["3.5"], ["3.5"]], declaration)


def test_a_label_computed_with_tensorflow_functions_runs_with_tensorflow(tmp_path: Path) -> None:
    import tensorflow as tf

    def with_tensorflow(columns):
        return tf.math.greater(tf.math.log1p(columns["amount"]), 1.0)  # fails on NumPy arrays

    declaration = LabelDeclaration(Task.binary(), ("amount",), with_tensorflow)
    check_rows(tmp_path, ["amount"], [["0.5"], ["9"]], declaration)
    with pytest.raises(DataError, match="every labelled row is one class"):
        check_rows(tmp_path, ["amount"], [["0.5"], ["0.7"]], declaration)


def test_a_label_that_fails_names_the_declaration(tmp_path: Path) -> None:
    declaration = LabelDeclaration(Task.binary(), ("amount",), lambda columns: columns["no_such_column"])
    with pytest.raises(ConfigError, match=r"models/label.py: compute\(\) fails on the data's amount: KeyError"):
        check_rows(tmp_path, ["amount"], [["0.5"]], declaration)


def test_slice_features_are_checked_against_the_schema_or_the_header(small_data_dir: Path, tmp_path: Path) -> None:
    misspelt = f"{features.RAW_FEATURE_KEYS[0]}_typo"  # a column of neither
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"evaluation: {{slice_features: [{misspelt}]}}\n")
    overrides = {"data.path": str(small_data_dir), "runner.output_dir": str(tmp_path / "out")}
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, config_file], overrides)
    with pytest.raises(ConfigError) as error:
        preflight.check(config, [BASE_CONFIG, config_file])
    assert str(error.value).startswith(
        f"{config_file}: evaluation.slice_features: '{misspelt}' is not a column of the schema {config.schema_path}"
    )
    # Without a schema, the data's header gives the columns.
    config_file.write_text(f"schema_path: null\nevaluation: {{slice_features: [{misspelt}]}}\n")
    config = load_config([BASE_CONFIG, LOCAL_CONFIG, config_file], overrides)
    with pytest.raises(ConfigError, match=rf"is not a column of the data's header \({small_data_dir}\)"):
        preflight.check(config)
