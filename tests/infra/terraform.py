"""infra/*.tf parsed with python-hcl2, resources by type and name, locals resolved in strings."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from pipeline.paths import REPO_ROOT

INFRA = REPO_ROOT / "infra"


def tf_files() -> list[Path]:
    return sorted(INFRA.glob("*.tf"))


@cache
def parsed() -> dict[str, dict[str, Any]]:
    """{file name: python-hcl2 document}."""
    documents = {}
    for path in tf_files():
        with path.open() as source:
            documents[path.name] = hcl2.load(source)
    return documents


def blocks(kind: str) -> list[Any]:
    return [block for document in parsed().values() for block in document.get(kind, [])]


def resources(resource_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("resource"):
        for name, body in block.get(resource_type, {}).items():
            assert name not in found, f"{resource_type}.{name} twice"
            found[name] = body
    return found


def all_resources() -> dict[str, dict[str, dict[str, Any]]]:
    types: dict[str, dict[str, dict[str, Any]]] = {}
    for block in blocks("resource"):
        for resource_type, named in block.items():
            types.setdefault(resource_type, {}).update(named)
    return types


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks("variable") for name, body in block.items()}


def outputs() -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks("output") for name, body in block.items()}


def locals_() -> dict[str, Any]:
    return {name: value for block in blocks("locals") for name, value in block.items()}


def resolve_locals(text: str) -> str:
    """Replaces ${local.name} by the local's own text (repeatedly), for reading conditions."""
    values = locals_()
    for _ in range(5):
        text = re.sub(r"\$\{local\.(\w+)\}", lambda match: str(values[match.group(1)]), text)
    return text


def text_of_all_files() -> str:
    return "\n".join(path.read_text() for path in tf_files())


def scalar(value: Any) -> Any:
    """python-hcl2 returns nested blocks as one-element lists."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value
