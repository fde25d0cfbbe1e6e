"""The promotion CLI runs against the fake Vertex AI server (tools/standins) through the real SDK."""

from tools.standins.fixtures import storage_emulator, vertex_env  # noqa: F401
