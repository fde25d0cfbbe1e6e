"""Labels on pipeline runs: the config's labels plus where the run came from
(Google Cloud's label rules: components/cloud_labels.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from components.cloud_labels import sanitize_labels
from pipeline.paths import REPO_ROOT


def run_labels(
    config_labels: Mapping[str, str], *, config_name: str, image: str | None, commit: str | None
) -> dict[str, str]:
    """Config labels + config name + image digest (first 12 hex digits) + git commit, sanitized."""
    labels = dict(config_labels)
    labels["config"] = config_name
    if image and "@sha256:" in image:
        labels["image_digest"] = image.rsplit("@sha256:", 1)[1][:12]
    if commit:
        labels["git_commit"] = commit
    return sanitize_labels(labels)


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """Short commit of the checkout ('-dirty' with uncommitted changes), else $GITHUB_SHA, else None."""
    try:
        commit = _git(repo, "rev-parse", "--short=12", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        sha = os.environ.get("GITHUB_SHA", "")
        return sha[:12] or None
    return f"{commit}-dirty" if dirty else commit


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10)
    return result.stdout.strip()
