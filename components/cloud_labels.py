"""Google Cloud's label rules (Vertex AI, Dataflow, Cloud Storage): keys start with a lowercase
letter; keys and values use lowercase letters, digits, '_' and '-', at most 63 characters; at most
64 labels on a resource."""

from __future__ import annotations

import re
from collections.abc import Mapping

LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64

_INVALID = re.compile(r"[^a-z0-9_-]+")
_MAX_LENGTH = 63


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
