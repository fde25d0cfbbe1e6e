"""Expose the stand-in fixtures to the tests in this folder."""

from tools.standins.fixtures import (  # noqa: F401
    fast_vertex_polling,
    storage_emulator,
    vertex_env,
)
