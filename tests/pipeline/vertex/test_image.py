"""Image references: pinned by digest or refused with one line."""

from __future__ import annotations

import pytest

from pipeline.image import ImageError, digest_of, require_digest

DIGEST = "sha256:" + "a1" * 32


@pytest.mark.parametrize(
    "image",
    [
        f"us-central1-docker.pkg.dev/my-project/pipelines/my-pipeline@{DIGEST}",
        f"gcr.io/my-project/my-pipeline@{DIGEST}",
        f"localhost:5000/team/my_pipeline@{DIGEST}",
        f"europe-docker.pkg.dev/p/repo/group/sub.name@{DIGEST}",
    ],
)
def test_digest_references_are_accepted(image: str) -> None:
    assert require_digest(image) == image
    assert digest_of(image) == DIGEST


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("us-central1-docker.pkg.dev/p/r/n:latest", "is given by tag ':latest'"),
        (f"us-central1-docker.pkg.dev/p/r/n:1.0@{DIGEST}", "is given by tag ':1.0"),
        ("localhost:5000/r/n", "has no digest"),
        ("us-central1-docker.pkg.dev/p/r/n", "has no digest"),
        ("us-central1-docker.pkg.dev/p/r/n@sha256:" + "a" * 63, "has no valid sha256 digest"),
        ("us-central1-docker.pkg.dev/p/r/n@sha256:" + "A" * 64, "has no valid sha256 digest"),
        ("us-central1-docker.pkg.dev/p/r/n@md5:" + "a" * 32, "has no valid sha256 digest"),
        (f"my-pipeline@{DIGEST}", "does not start with a registry host"),
        (f"library/my-pipeline@{DIGEST}", "does not start with a registry host"),
        (f"gcr.io/Project/Name@{DIGEST}", "invalid repository path"),
    ],
)
def test_other_references_are_refused_in_one_line(image: str, message: str) -> None:
    with pytest.raises(ImageError) as error:
        require_digest(image)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert "REGISTRY/REPO/NAME@sha256:" in str(error.value)
