"""Where the project's files are: the one definition of the repository root and its folders.

In the pipeline image the repository root is the image's working directory, which holds the same
folders (the Dockerfile copies them).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
LOCK_FILE = REPO_ROOT / "requirements.lock"


def in_repository(path: str | Path) -> Path:
    """A path as given when absolute (`~` expanded), else taken from the repository root."""
    return (REPO_ROOT / Path(path).expanduser()).resolve()
