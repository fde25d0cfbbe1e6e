"""Bytecode for the benchmark: neither side may pay for compiling sources that could be compiled once.

This machine sets PYTHONDONTWRITEBYTECODE=1, so a process never caches what it compiles: a module
without a `.pyc` next to it is compiled again by every run. `make setup` compiles the venv's
bytecode at install; the benchmark compiles the rest before timing (our packages, each fresh copy
of the template) and keeps PYTHONDONTWRITEBYTECODE as it is for the timed runs, which then only
read bytecode. `imports_compiled_from_source` reads a `python -v` log (what the warm-up writes) to
check that: every module compiled from source at import is listed there.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import re
import struct
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# `python -v` prints "# code object from '<...>.pyc'" for bytecode read from a cache and
# "# code object from <...>.py" for a module compiled from its source.
_FROM_SOURCE = re.compile(r"^# code object from (?P<path>[^'\n]+\.py)$", re.MULTILINE)


def compile_sources(folders: Iterable[Path]) -> int:
    """Compiles every source under `folders` whose `.pyc` is missing or stale (whatever
    PYTHONDONTWRITEBYTECODE says); returns how many sources the folders hold.

    The `.pyc` files are timestamp-checked, as the import system writes them (compileall would
    make hash-checked ones if SOURCE_DATE_EPOCH is set: every import would hash its source), and
    staleness is judged as the import system does, by the source's mtime and size (compileall
    looks at the mtime only, so it misses an edit made within the second of its compilation). A
    source that does not compile is left to fail in the run that imports it.
    """
    sources = 0
    for folder in folders:
        for path in _sources(folder):
            sources += 1
            if not has_current_bytecode(path):
                py_compile.compile(str(path), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    return sources


def has_current_bytecode(source: Path) -> bool:
    """Whether the import system would use `source`'s cached `.pyc` (PEP 552 header checks)."""
    try:
        with open(importlib.util.cache_from_source(str(source)), "rb") as pyc:
            header = pyc.read(16)
        stat = source.stat()
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    (flags,) = struct.unpack("<I", header[4:8])
    if flags == 0:  # timestamp-checked: the source's mtime and size
        mtime, size = struct.unpack("<II", header[8:16])
        return mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF
    if flags & 0b10:  # hash-checked
        return header[8:16] == importlib.util.source_hash(source.read_bytes())
    return True  # unchecked hash


def sources_without_bytecode(folder: Path) -> list[Path]:
    """The `.py` files under `folder` whose `.pyc` is missing or stale."""
    return [path for path in _sources(folder) if not has_current_bytecode(path)]


def _sources(folder: Path) -> list[Path]:
    return [Path(root, name) for root, _, files in os.walk(folder) for name in files if name.endswith(".py")]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def imports_compiled_from_source(verbose_log: str) -> list[str]:
    """The source files a `python -v` log shows compiled at import (no usable `.pyc`)."""
    return [match["path"] for match in _FROM_SOURCE.finditer(verbose_log)]


def venv_status(packages: Path | None = None, examples: int = 5) -> dict[str, Any]:
    """How many of the venv's sources lack bytecode (0 after `make setup`), with a few of them."""
    packages = packages or site_packages()
    missing = sources_without_bytecode(packages)
    return {
        "site_packages": str(packages),
        "sources_without_pyc": len(missing),
        "examples": [str(path.relative_to(packages)) for path in missing[:examples]],
    }
