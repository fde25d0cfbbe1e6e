"""ImportSchemaGen whose cache key follows the schema file's content.

TFX caches a component on its inputs and parameters. ImportSchemaGen has no inputs and one
parameter, the file path, so after an edit of the curated schema a re-run would reuse the
schema imported before the edit. This subclass adds the file's content hash as a parameter: an
edited schema is imported again, and everything downstream re-runs against it. The executor is
TFX's own (it ignores the extra parameter).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tfx import types
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_component
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

SCHEMA_FINGERPRINT_KEY = "schema_fingerprint"


class CuratedSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        SCHEMA_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }


def schema_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (first 16 hex digits)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class CuratedSchemaGen(ImportSchemaGen):
    """ImportSchemaGen(schema_file), re-run whenever `fingerprint` (the content hash) changes."""

    SPEC_CLASS = CuratedSchemaGenSpec

    def __init__(self, schema_file: str, fingerprint: str | None = None) -> None:
        spec = CuratedSchemaGenSpec(
            schema_file=schema_file,
            schema_fingerprint=fingerprint,
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
