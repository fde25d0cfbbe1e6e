"""Container image references: Vertex AI and Dataflow run the pipeline image pinned by digest.

A tag (`:latest`, `:v1`, ...) can move between compiling and running, and a forgotten image
silently falls back to the public TFX image without the project's code. Only
`REGISTRY/REPO/NAME@sha256:<64 hex>` is accepted.
"""

from __future__ import annotations

import re

EXPECTED = "REGISTRY/REPO/NAME@sha256:<64 hex digits>"
HINT = f"pin it by digest: {EXPECTED} (`make image` prints it)"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A registry host: a dotted name or localhost, with an optional port.
_REGISTRY = re.compile(r"(localhost|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+)(:[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*")


class ImageError(ValueError):
    """An image reference that is not pinned by digest; the message is one line."""


def require_digest(image: str) -> str:
    """Returns `image` unchanged when it is REGISTRY/REPO/NAME@sha256:<64 hex>, else raises ImageError."""
    name, at, digest = image.strip().partition("@")
    last_component = name.rsplit("/", 1)[-1]
    if ":" in last_component:
        tag = last_component.split(":", 1)[1]
        raise ImageError(f"image {image!r} is given by tag ':{tag}', which can move; {HINT}")
    if not at:
        raise ImageError(f"image {image!r} has no digest; {HINT}")
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"image {image!r} has no valid sha256 digest; {HINT}")
    registry, _, path = name.partition("/")
    if not path or not _REGISTRY.fullmatch(registry):
        raise ImageError(f"image {image!r} does not start with a registry host; expected {EXPECTED}")
    if not all(_PATH_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise ImageError(f"image {image!r} has an invalid repository path; expected {EXPECTED}")
    return image


def digest_of(image: str) -> str:
    """`sha256:<hex>` of a reference accepted by require_digest."""
    return require_digest(image).rsplit("@", 1)[1]
