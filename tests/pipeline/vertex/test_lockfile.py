"""requirements.lock as pip constraints, and the image's TFX family check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.vertex import lockfile

REPO = Path(__file__).resolve().parents[3]
LOCK = REPO / "requirements.lock"


def test_constraints_keep_every_pin_and_drop_hashes() -> None:
    lock_text = LOCK.read_text()
    constraints = lockfile.constraints(lock_text).splitlines()
    assert "--hash" not in "\n".join(constraints)
    assert "tfx==1.16.0" in constraints and "apache-beam==2.59.0" in constraints
    assert any(line.startswith("pydantic==2.") for line in constraints)
    pinned_lines = [line for line in lock_text.splitlines() if "==" in line and not line.startswith((" ", "#"))]
    assert len(constraints) == len(pinned_lines)


def test_markers_and_extras_survive_as_constraints() -> None:
    text = 'foo[bar]==1.0 \\\n    --hash=sha256:ab\nbaz==2.0 ; python_version >= "3.10" \\\n    --hash=sha256:cd\n'
    assert lockfile.constraints(text) == 'baz==2.0 ; python_version >= "3.10"\nfoo==1.0\n'


def test_installed_tfx_family_matches_the_lock() -> None:
    assert lockfile.mismatches(LOCK.read_text(), lockfile.TFX_FAMILY) == []


def test_a_different_or_missing_version_is_reported() -> None:
    text = "tfx==0.0.1 \\\n    --hash=sha256:00\nno-such-package-xyz==1.0\n"
    assert lockfile.mismatches(text, ["tfx", "no-such-package-xyz", "numpy"]) == [
        "tfx 1.16.0 is installed, the lock has 0.0.1",
        "no-such-package-xyz is not installed (lock: 1.0)",
        "numpy is not in the lock",
    ]


def test_runs_as_a_standalone_script(tmp_path: Path) -> None:
    script = REPO / "pipeline" / "vertex" / "lockfile.py"
    ok = subprocess.run([sys.executable, str(script), "check", str(LOCK), "tfx"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad_lock = tmp_path / "requirements.lock"
    bad_lock.write_text("tfx==9.9.9\n")
    bad = subprocess.run([sys.executable, str(script), "check", str(bad_lock)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "error: tfx 1.16.0 is installed, the lock has 9.9.9" in bad.stderr
