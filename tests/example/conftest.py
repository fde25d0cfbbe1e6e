"""The taxi example's compiled Vertex AI specs, for its golden tests (see __init__.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.refresh_golden import ENVIRONMENTS, compile_env


@pytest.fixture(scope="session")
def example_specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """dev and prod compiled as `make golden` compiles them (the offline compile itself:
    tests/pipeline/vertex/test_compile.py)."""
    build = tmp_path_factory.mktemp("example-build")
    return {env: json.loads(compile_env(env, build / env / "pipeline.json").read_text()) for env in ENVIRONMENTS}
