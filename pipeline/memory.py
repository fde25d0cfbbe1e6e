"""Gives memory that a finished step freed back to the operating system."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


def release_freed_memory() -> None:
    """Collects garbage, then asks glibc to return free heap pages (malloc_trim).

    Every step runs in the same process. glibc keeps what a step freed (TensorFlow graphs, Beam
    bundles) in its arenas, so the process's resident size only grows from step to step; trimming
    between steps lowered the peak of a run on the taxi sample by about 100 MB, in milliseconds.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    return getattr(ctypes.CDLL(library), "malloc_trim", None)  # glibc only
