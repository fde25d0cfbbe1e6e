"""Fixtures for the Vertex AI tests: one offline compile per session, and the cloud stand-ins."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tools.refresh_golden import ENVIRONMENTS, compile_env
from tools.standins.fixtures import storage_emulator, vertex_env  # noqa: F401

# No fast_vertex_polling: the CLI polls with its own --poll-interval, the SDK's wait() is not used.


@dataclass
class NetworkAttempts:
    """Connections and name lookups refused while the guard was on."""

    attempts: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def offline_attempts() -> NetworkAttempts:
    return NetworkAttempts()


def _refusing(attempts: NetworkAttempts, what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.attempts.append(f"{what}{args[1:] if what.startswith('socket') else args}")
        raise OSError(f"network access while compiling: {what}")

    return refuse


@pytest.fixture(scope="session")
def compiled_specs(tmp_path_factory: pytest.TempPathFactory, offline_attempts: NetworkAttempts) -> dict[str, Path]:
    """build/<env>/pipeline.json for dev and prod, compiled once through the CLI with the network
    cut off and no credentials: any connection or DNS lookup is refused and recorded."""
    build = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refusing(offline_attempts, "socket.connect"))
        patch.setattr(socket.socket, "connect_ex", _refusing(offline_attempts, "socket.connect_ex"))
        patch.setattr(socket, "getaddrinfo", _refusing(offline_attempts, "getaddrinfo"))
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(build / "no-such-credentials.json"))
        patch.setenv("NO_GCE_CHECK", "true")
        return {env: compile_env(env, build / env / "pipeline.json") for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def spec_documents(compiled_specs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {env: json.loads(path.read_text()) for env, path in compiled_specs.items()}
