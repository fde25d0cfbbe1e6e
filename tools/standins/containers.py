"""Runs container commands the way Vertex AI and Dataflow run them in an image, on this machine.

There is no Docker daemon here, so an image is emulated by a `LocalImage`: a folder standing for
the image's working directory, the environment its Dockerfile sets, the programs first on PATH and
an optional entrypoint. `pipeline_image()` builds the pipeline image's stand-in from this
repository's Dockerfile read as data: only what its COPY lines copy, its WORKDIR, its ENV, and the
locked `.venv` (the packages the image installs from the lock) first on PATH. A file the Dockerfile
does not copy is missing in the rehearsal exactly as in the cloud.

A `ContainerRuntime` knows images by reference (REGISTRY/REPO/NAME@sha256:...); a reference it
does not know fails like an image pull. Every container gets the environment of the identity it
runs as (`cloud_env(service_account)`: the proxy and metadata settings that route Google API calls
to the stand-ins), then the image's ENV, then the container spec's env, as a container runtime
layers them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Not pipeline.paths.REPO_ROOT: stand-in programs (model server, Dataflow worker) import this module
# inside containers that hold only the `tools` package, as the real images hold no pipeline code.
REPO_ROOT = Path(__file__).resolve().parents[2]

VENV_BIN = Path(sys.executable).parent


class ImageNotFound(Exception):
    """The runtime knows no image by that reference (a failed pull on the real service)."""


@dataclass(frozen=True)
class LocalImage:
    """What a container of an image sees: working directory, environment, PATH, entrypoint."""

    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    path_prefix: Sequence[Path] = (VENV_BIN,)
    entrypoint: Sequence[str] = ()


@dataclass(frozen=True)
class ContainerSpec:
    """A container as Vertex AI's worker pool and pipeline task specs describe one."""

    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunningContainer:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Sends `signum` to the container's processes (its process group), as `docker stop` does."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, grace_seconds: float = 5.0) -> None:
        self.signal()
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the container wrote (stdout and stderr together)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


class ContainerRuntime:
    """Starts containers of known images as local processes, one log file each."""

    def __init__(
        self,
        log_dir: Path,
        cloud_env: Callable[[str | None], Mapping[str, str]] = lambda _account: {},
    ) -> None:
        self.log_dir = log_dir
        self._cloud_env = cloud_env
        self._images: dict[str, LocalImage] = {}
        self._lock = threading.Lock()
        self._count = 0
        log_dir.mkdir(parents=True, exist_ok=True)

    def add_image(self, reference: str, image: LocalImage) -> None:
        with self._lock:
            self._images[reference] = image

    def image(self, reference: str) -> LocalImage:
        with self._lock:
            image = self._images.get(reference)
        if image is None:
            raise ImageNotFound(
                f"failed to pull image {reference}: not found (the rehearsal knows only {sorted(self._images)})"
            )
        return image

    def environment(self, spec: ContainerSpec, service_account: str | None) -> dict[str, str]:
        image = self.image(spec.image)
        env = {key: value for key, value in os.environ.items() if key in _INHERITED}
        env.update(self._cloud_env(service_account))
        env.update(image.env)
        env.update(spec.env)
        path = [str(entry) for entry in image.path_prefix] + [env.get("PATH", os.defpath)]
        env["PATH"] = os.pathsep.join(path)
        return env

    def start(self, spec: ContainerSpec, *, name: str, service_account: str | None = None) -> RunningContainer:
        """Starts `spec` (command and args replace the entrypoint when a command is given)."""
        image = self.image(spec.image)
        argv = [*(spec.command or image.entrypoint), *spec.args]
        if not argv:
            raise ValueError(f"container {name}: image {spec.image} has no entrypoint and the spec no command")
        env = self.environment(spec, service_account)
        with self._lock:
            self._count += 1
            log_path = self.log_dir / f"{self._count:03d}-{_safe(name)}.log"
        executable = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        with log_path.open("wb") as log:
            log.write(f"$ {shlex.join(argv)[:2000]}\n".encode())
            log.flush()
            process = subprocess.Popen(
                [executable, *argv[1:]],
                cwd=image.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return RunningContainer(name, process, log_path)

    def run(
        self, spec: ContainerSpec, *, name: str, service_account: str | None = None, timeout: float | None = None
    ) -> tuple[int, RunningContainer]:
        container = self.start(spec, name=name, service_account=service_account)
        try:
            return container.wait(timeout), container
        except subprocess.TimeoutExpired:
            container.stop()
            return -9, container


# What a container inherits from this machine: nothing that routes traffic or picks credentials.
_INHERITED = frozenset({"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "TF_CPP_MIN_LOG_LEVEL"})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


# -- the pipeline image, read from the Dockerfile -------------------------------------------------


@dataclass(frozen=True)
class Dockerfile:
    workdir: str
    copies: tuple[tuple[str, str], ...]
    env: dict[str, str]


def read_dockerfile(path: Path) -> Dockerfile:
    """WORKDIR, COPY (from the build context) and ENV of the final stage, in order."""
    workdir = "/"
    copies: list[tuple[str, str]] = []
    env: dict[str, str] = {}
    for instruction, value in _instructions(path.read_text()):
        if instruction == "FROM":
            workdir, copies, env = "/", [], {}
        elif instruction == "WORKDIR":
            workdir = value if value.startswith("/") else f"{workdir.rstrip('/')}/{value}"
        elif instruction == "COPY":
            parts = [part for part in shlex.split(value) if not part.startswith("--")]
            if any(part.startswith("--from") for part in shlex.split(value)):
                continue
            *sources, target = parts
            copies.extend((source, target) for source in sources)
        elif instruction == "ENV":
            env.update(_env_pairs(value))
    return Dockerfile(workdir, tuple(copies), env)


def _instructions(text: str) -> list[tuple[str, str]]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    result = []
    for line in lines:
        instruction, _, value = line.partition(" ")
        result.append((instruction.upper(), value.strip()))
    return result


def _env_pairs(value: str) -> dict[str, str]:
    parts = shlex.split(value)
    if len(parts) >= 2 and "=" not in parts[0]:  # legacy form: ENV KEY value with spaces
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


def pipeline_image(state_dir: Path, repo_root: Path = REPO_ROOT) -> tuple[str, LocalImage]:
    """Stages the image's working directory from the Dockerfile; returns (digest, image).

    The digest is the sha256 of what the image would hold from this repository (the files the
    COPY lines name and the Dockerfile itself): a changed file gives another digest, as a rebuilt
    image would.
    """
    dockerfile = read_dockerfile(repo_root / "Dockerfile")
    digest = hashlib.sha256((repo_root / "Dockerfile").read_bytes())
    root = state_dir / "image-root"
    if root.exists():
        shutil.rmtree(root)
    workdir = root / dockerfile.workdir.lstrip("/")
    workdir.mkdir(parents=True)
    for source, target in dockerfile.copies:
        source_path = repo_root / source
        destination = _in_image(root, target, dockerfile.workdir)
        if source.endswith("/") or source_path.is_dir():
            if not source_path.is_dir():
                raise FileNotFoundError(f"Dockerfile: COPY {source}: no such folder in the build context")
            shutil.copytree(source_path, destination, dirs_exist_ok=True, ignore=_IGNORED)
        else:
            if target.endswith("/"):
                destination = destination / source_path.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_path, destination)
    for file in sorted(path for path in root.rglob("*") if path.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    env = {key: _rebase(value, dockerfile.workdir, root) for key, value in dockerfile.env.items()}
    return f"sha256:{digest.hexdigest()}", LocalImage(workdir=workdir, env=env)


_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def _in_image(root: Path, target: str, workdir: str) -> Path:
    absolute = target if target.startswith("/") else f"{workdir.rstrip('/')}/{target}"
    return root / absolute.lstrip("/")


def _rebase(value: str, workdir: str, root: Path) -> str:
    """An ENV value with paths inside the image mapped into the staged folder (PYTHONPATH=/pipeline)."""
    parts = value.split(os.pathsep)
    return os.pathsep.join(str(root / part.lstrip("/")) if part.startswith("/") else part for part in parts)


def stand_in_programs(state_dir: Path) -> Path:
    """A folder holding only this repository's `tools` package, for PYTHONPATH.

    Programs that stand in for what a real image or service brings (Beam's worker boot, the
    serving container's server) live in `tools/standins`. A container that runs one gets this
    folder after the image's own PYTHONPATH, so it can import them and nothing else of the
    repository that the image does not hold.
    """
    folder = state_dir / "stand-in-programs"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "tools"
    if not link.exists():
        link.symlink_to(REPO_ROOT / "tools", target_is_directory=True)
    return folder
