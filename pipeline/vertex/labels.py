"""Labels on pipeline runs: the config's labels plus where the run came from.

Google Cloud label rules: keys start with a lowercase letter; keys and values use lowercase
letters, digits, '_' and '-', at most 63 characters; at most 64 labels.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pipeline.config import MAX_LABELS

_INVALID = re.compile(r"[^a-z0-9_-]+")
_MAX_LENGTH = 63
REPO_ROOT = Path(__file__).resolve().parents[2]


def sanitize_key(key: str) -> str:
    cleaned = _INVALID.sub("-", key.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"x-{cleaned}"
    return cleaned[:_MAX_LENGTH]


def sanitize_value(value: str) -> str:
    return _INVALID.sub("-", value.lower())[:_MAX_LENGTH]


def sanitize_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels rewritten to the rules above; raises ValueError beyond 64 labels."""
    cleaned = {sanitize_key(key): sanitize_value(value) for key, value in labels.items()}
    if len(cleaned) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels are allowed, got {len(cleaned)}")
    return cleaned


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
