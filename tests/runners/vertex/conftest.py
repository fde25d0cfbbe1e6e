"""The offline compile of dev and prod, and the cloud stand-ins, for the submit and schedule tests."""

from tests.pipeline.vertex.conftest import compiled_specs, offline_attempts  # noqa: F401
from tools.standins.fixtures import storage_emulator, vertex_env  # noqa: F401
