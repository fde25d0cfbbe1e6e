"""Run labels follow Google Cloud's label rules and say where the run came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.cloud_labels import sanitize_key, sanitize_labels, sanitize_value
from pipeline.config import BASE_CONFIG, load_config, vertex_config_path
from pipeline.paths import REPO_ROOT
from runners.vertex.labels import git_commit, run_labels


@pytest.mark.parametrize(
    ("key", "expected"),
    [("team", "team"), ("Team Name", "team-name"), ("1st", "x-1st"), ("a.b/c", "a-b-c"), ("k" * 80, "k" * 63)],
)
def test_keys(key: str, expected: str) -> None:
    assert sanitize_key(key) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("dev", "dev"), ("Feature/ABC-1", "feature-abc-1"), ("", ""), ("v" * 70, "v" * 63), ("a_b", "a_b")],
)
def test_values(value: str, expected: str) -> None:
    assert sanitize_value(value) == expected


def test_too_many_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 64 labels"):
        sanitize_labels({f"k{index}": "v" for index in range(65)})


def test_run_labels_add_config_image_and_commit() -> None:
    configured = load_config([BASE_CONFIG, vertex_config_path("dev")]).runner.labels  # configs/vertex-dev.yaml
    labels = run_labels(
        configured,
        config_name="vertex-dev",
        image="us-central1-docker.pkg.dev/p/r/n@sha256:" + "0123456789abcdef" * 4,
        commit="1a2b3c4d5e6f-dirty",
    )
    assert labels == {
        **configured,
        "config": "vertex-dev",
        "image_digest": "0123456789ab",
        "git_commit": "1a2b3c4d5e6f-dirty",
    }
    assert all(re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) for key in labels)
    assert all(re.fullmatch(r"[a-z0-9_-]{0,63}", value) for value in labels.values())


def test_commit_of_this_checkout() -> None:
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("this copy of the repository is not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{7,12}(-dirty)?", git_commit() or "")


def test_commit_outside_a_checkout_comes_from_github_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_SHA", "fedcba9876543210fedcba9876543210fedcba98")
    assert git_commit(tmp_path) == "fedcba987654"
    monkeypatch.delenv("GITHUB_SHA")
    assert git_commit(tmp_path) is None
