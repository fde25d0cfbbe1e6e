"""The promotion CLI runs against the fake Vertex AI server (tests/standins) through the real SDK."""

from tests.standins.fixtures import storage_emulator, vertex_env  # noqa: F401
