"""ImportSchemaGen whose cache key follows the schema file's content, reading the schema that
travels with the code.

TFX caches a component on its inputs and parameters. ImportSchemaGen has no inputs and one
parameter, the file path, so after an edit of the curated schema a re-run would reuse the
schema imported before the edit. This subclass adds the file's content hash as a parameter: an
edited schema is imported again, and everything downstream re-runs against it.

A relative `schema_file` is read from the project folder this code is installed in (the
repository locally, the pipeline image's working directory on Vertex AI, which holds `schema/`):
the schema reviewed with the code is the one the run uses, with no upload step to forget.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tfx import types
from tfx.components.schema_gen.import_schema_gen import executor as import_schema_gen_executor
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

SCHEMA_FINGERPRINT_KEY = "schema_fingerprint"
# The folder that holds components/, models/ and schema/: the repository, or the image's WORKDIR.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class CuratedSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        SCHEMA_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }


def schema_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (first 16 hex digits)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def resolve(schema_file: str) -> str:
    """A URL or absolute path as given; a relative path from the project folder."""
    if "://" in schema_file or Path(schema_file).is_absolute():
        return schema_file
    return str(PROJECT_ROOT / schema_file)


class Executor(import_schema_gen_executor.Executor):
    """TFX's ImportSchemaGen executor, reading a relative schema path from the project folder."""

    def Do(self, input_dict: dict[str, Any], output_dict: dict[str, Any], exec_properties: dict[str, Any]) -> None:
        key = standard_component_specs.SCHEMA_FILE_KEY
        path = resolve(exec_properties[key])
        if not fileio.exists(path):
            raise FileNotFoundError(
                f"the curated schema {path} does not exist: a relative schema_path is read from the project "
                f"folder {PROJECT_ROOT}, which in the pipeline image holds it only when the Dockerfile copies schema/"
            )
        super().Do(input_dict, output_dict, {**exec_properties, key: path})


class CuratedSchemaGen(ImportSchemaGen):
    """ImportSchemaGen(schema_file), re-run whenever `fingerprint` (the content hash) changes."""

    SPEC_CLASS = CuratedSchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, schema_file: str, fingerprint: str | None = None) -> None:
        spec = CuratedSchemaGenSpec(
            schema_file=schema_file,
            schema_fingerprint=fingerprint,
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
