"""Content hashes of model code, so a code change invalidates exactly the cached steps using it.

Transform and Trainer name their functions by module path, which TFX's cache does not look
into; the hash of the source goes into each component's `custom_config` instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path


def source_fingerprint(*module_names: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(module_names):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"cannot find module {name}")
        digest.update(name.encode())
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]
