"""The curated schema is read from the project folder, which the pipeline image holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.curated_schema import PROJECT_ROOT, Executor, resolve


def test_a_relative_path_is_read_from_the_project_folder(tmp_path: Path) -> None:
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    Executor().Do({}, {"schema": [schema]}, {"schema_file": "schema/schema.pbtxt"})

    imported = io_utils.read_string_file(str(tmp_path / "schema" / "schema.pbtxt"))
    assert imported == (PROJECT_ROOT / "schema" / "schema.pbtxt").read_text()


@pytest.mark.parametrize("path", ["gs://bucket/schema.pbtxt", "/abs/schema.pbtxt"])
def test_urls_and_absolute_paths_are_read_as_given(path: str) -> None:
    assert resolve(path) == path


def test_a_schema_missing_from_the_project_folder_says_where_it_was_looked_for(tmp_path: Path) -> None:
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    with pytest.raises(FileNotFoundError, match="holds it only when the Dockerfile copies schema/"):
        Executor().Do({}, {"schema": [schema]}, {"schema_file": "schema/not-there.pbtxt"})
