"""The example's compiled specs, pinned: a fork keeps this file and rewrites golden/ with `make golden`
(README "Make it yours").

The compiled specs of the configs equal the committed goldens in golden/ (normalized, see
tools/refresh_golden.py); after an intended change, `make golden` rewrites them.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest

from tools.refresh_golden import ENVIRONMENTS, GOLDEN_DIR, golden_path, render

pytestmark = pytest.mark.example


def test_make_golden_writes_the_goldens_of_this_folder() -> None:
    assert Path(__file__).resolve().parent / "golden" == GOLDEN_DIR
    assert all(golden_path(env).is_file() for env in ENVIRONMENTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_compiled_spec_matches_golden(env: str, example_specs: dict[str, dict[str, Any]]) -> None:
    expected = golden_path(env).read_text()
    actual = render(example_specs[env])
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), f"golden/{env}.json", "compiled", lineterm="", n=2
        )
        pytest.fail(
            f"compiled {env} spec differs from golden/{env}.json; if intended, run `make golden` and review:\n"
            + "\n".join(list(diff)[:80])
        )
