"""The serving containers behind deployed models: started, health-checked, called, stopped.

Vertex AI runs a deployed model as replicas of its serving container: it starts the container,
sends GETs to its health route until one answers 200 (the deployment then succeeds) and forwards
predict requests to its predict route. A :class:`ReplicaPool` does that with a
``ContainerRuntime``: one local process per replica, listening on a free loopback port given as
``AIP_HTTP_PORT`` (:func:`serving_container` describes the container for a deployment).

``keep_warm=True`` trades fidelity for speed, for test sessions that deploy the same models many
times: a replica is shared by every deployment whose container would be identical (image,
command, args, environment apart from the per-deployment ``AIP_*`` IDs, port, routes and storage
URI, also where ``$(VAR)`` put them into the command or args, service account) and whose
``AIP_STORAGE_URI`` holds the same files (same names, sizes and checksums, see
:func:`artifact_fingerprint`), wherever they are; and it keeps running after its
last deployment is undeployed, until the pool is closed. The container then still sees the IDs,
routes and storage URI of the deployment that started it; requests go to its own routes.
Without ``keep_warm`` every deployment gets its own container, stopped when the deployment goes.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tools.standins.containers import ContainerRuntime, ContainerSpec, RunningContainer

# Environment variables that differ between deployments of the same model, not between the
# containers that serve them (the files under AIP_STORAGE_URI count, through their fingerprint).
PER_DEPLOYMENT_ENV = frozenset(
    {
        "AIP_DEPLOYED_MODEL_ID",
        "AIP_ENDPOINT_ID",
        "AIP_HTTP_PORT",
        "AIP_HEALTH_ROUTE",
        "AIP_PREDICT_ROUTE",
        "AIP_STORAGE_URI",
    }
)


class ReplicaFailed(Exception):
    """The replica exited (``exit_code``) or never became healthy; ``log_tail``: its last log lines."""

    def __init__(self, message: str, log_tail: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.log_tail = log_tail
        self.exit_code = exit_code


class ReplicaUnreachable(Exception):
    """A request to the replica got no HTTP answer."""


@dataclass
class Replica:
    """One running serving container and the routes Vertex AI calls on it."""

    container: RunningContainer
    port: int
    health_route: str
    predict_route: str
    key: tuple[object, ...] | None = None
    users: int = 0
    ready: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def exit_code(self) -> int | None:
        return self.container.process.poll()

    def healthy(self, timeout: float = 2.0) -> bool:
        """One health check: GET on the health route answered 200."""
        try:
            status, _ = self._call("GET", self.health_route, None, timeout)
        except ReplicaUnreachable:
            return False
        return status == 200

    def predict(self, body: bytes, timeout: float) -> tuple[int, bytes]:
        """POST ``body`` to the predict route; returns the HTTP status and body."""
        return self._call("POST", self.predict_route, body, timeout)

    def _call(self, method: str, route: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, route, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ReplicaUnreachable(f"{method} {route} on port {self.port}: {error}") from error
        finally:
            connection.close()


class ReplicaPool:
    """Starts and stops serving replicas through a container runtime (see the module doc)."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        *,
        keep_warm: bool = False,
        ready_timeout: float = 180.0,
        probe_interval: float = 0.1,
        fingerprint: Callable[[str], str | None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.keep_warm = keep_warm
        self.ready_timeout = ready_timeout
        self.probe_interval = probe_interval
        self._fingerprint = fingerprint or artifact_fingerprint
        self._lock = threading.Lock()
        self._replicas: list[Replica] = []
        # Stops the containers if the pool is dropped or the interpreter exits without close().
        weakref.finalize(self, _stop_all, self._replicas)

    def launch(
        self,
        spec: ContainerSpec,
        *,
        name: str,
        health_route: str,
        predict_route: str,
        service_account: str | None = None,
    ) -> Replica:
        """A replica for ``spec``: a warm one that matches, or a new container listening on
        ``AIP_HTTP_PORT`` (from ``spec.env``).

        Raises ``containers.ImageNotFound`` when the runtime does not know the image.
        """
        key = self._reuse_key(spec, service_account) if self.keep_warm else None
        with self._lock:
            self._replicas[:] = [r for r in self._replicas if r.users or r.exit_code is None]  # drop dead warm ones
            for replica in self._replicas:
                if key is not None and replica.key == key and replica.exit_code is None:
                    replica.users += 1
                    return replica
        container = self.runtime.start(spec, name=name, service_account=service_account)
        replica = Replica(container, int(spec.env["AIP_HTTP_PORT"]), health_route, predict_route, key, users=1)
        with self._lock:
            self._replicas.append(replica)
        return replica

    def wait_ready(self, replica: Replica, timeout: float | None = None) -> None:
        """Health-checks ``replica`` until it answers 200; raises :class:`ReplicaFailed` when it
        exits first or ``timeout`` (default ``ready_timeout``) passes (the replica is stopped)."""
        limit = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with replica._lock:  # one prober per replica; later waiters see `ready`
            while not replica.ready:
                code = replica.exit_code
                if code is not None:
                    raise ReplicaFailed(f"the container exited with status {code}", replica.container.log_tail(), code)
                if replica.healthy():
                    replica.ready = True
                    return
                if time.monotonic() > deadline:
                    replica.container.stop()
                    raise ReplicaFailed(
                        f"no 200 from GET {replica.health_route} within {limit:.0f} s",
                        replica.container.log_tail(),
                    )
                time.sleep(self.probe_interval)

    def release(self, replica: Replica) -> None:
        """The deployment using ``replica`` is gone: stop it, unless warm replicas are kept."""
        with self._lock:
            replica.users = max(0, replica.users - 1)
            keep = self.keep_warm and replica.key is not None and replica.ready and replica.exit_code is None
            if replica.users or keep:
                return
            if replica in self._replicas:
                self._replicas.remove(replica)
        replica.container.stop()

    @property
    def replicas(self) -> list[Replica]:
        with self._lock:
            return list(self._replicas)

    def close(self) -> None:
        """Stops every replica (warm or in use)."""
        with self._lock:
            replicas = list(self._replicas)
            self._replicas.clear()
        _stop_all(replicas)

    def __enter__(self) -> ReplicaPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _reuse_key(self, spec: ContainerSpec, service_account: str | None) -> tuple[object, ...] | None:
        storage_uri = spec.env.get("AIP_STORAGE_URI", "")
        fingerprint = self._fingerprint(storage_uri) if storage_uri else ""
        if fingerprint is None:
            return None
        env = tuple(sorted((k, v) for k, v in spec.env.items() if k not in PER_DEPLOYMENT_ENV))
        command, args = (_per_deployment_values_named(parts, spec.env) for parts in (spec.command, spec.args))
        return (spec.image, command, args, env, service_account, fingerprint)


def serving_container(
    container_spec: Mapping[str, Any],
    *,
    artifact_uri: str,
    endpoint_id: str,
    deployed_model_id: str,
    project_number: str,
    machine_type: str,
    accelerator_type: str | None = None,
    port: int | None = None,
) -> tuple[ContainerSpec, str, str]:
    """The container Vertex AI starts for a deployed model: (spec, health route, predict route).

    From the Model's ``containerSpec`` (custom container requirements): ``command``/``args`` replace
    the image's ENTRYPOINT/CMD, ``env`` is added, ``$(VAR)`` in them refers to Vertex AI's variables
    and earlier ``env`` entries (``$$`` escapes), and the routes default to
    ``/v1/endpoints/ENDPOINT/deployedModels/DEPLOYED_MODEL[:predict]``. Vertex AI sets the ``AIP_*``
    variables below. Differences: ``AIP_HTTP_PORT`` is a free loopback port (``port``, default
    :func:`free_port`) rather than ``containerSpec.ports[0]`` or 8080, as containers share the
    host's network here, so a server must take its port from ``$(AIP_HTTP_PORT)`` (as
    ``--rest_api_port=$(AIP_HTTP_PORT)`` does) or the environment: one listening on a port written
    into its args is never reached; and the real service serves a service-managed copy of
    ``artifactUri`` as ``AIP_STORAGE_URI``, where the stand-in gives ``artifactUri`` itself, so
    the files must still be there when a version is deployed.
    """
    deployed_path = f"/v1/endpoints/{endpoint_id}/deployedModels/{deployed_model_id}"
    health_route = container_spec.get("healthRoute") or deployed_path
    predict_route = container_spec.get("predictRoute") or f"{deployed_path}:predict"
    env = {
        "AIP_MODE": "PREDICTION",
        "AIP_MODE_VERSION": "1.0.0",
        "AIP_FRAMEWORK": "CUSTOM_CONTAINER",
        "AIP_PROJECT_NUMBER": project_number,
        "AIP_ENDPOINT_ID": endpoint_id,
        "AIP_DEPLOYED_MODEL_ID": deployed_model_id,
        "AIP_MACHINE_TYPE": machine_type,
        "AIP_HTTP_PORT": str(port or free_port()),
        "AIP_HEALTH_ROUTE": health_route,
        "AIP_PREDICT_ROUTE": predict_route,
        "AIP_STORAGE_URI": artifact_uri,
    }
    if accelerator_type:
        env["AIP_ACCELERATOR_TYPE"] = accelerator_type
    for variable in container_spec.get("env", []):
        if variable.get("name") and variable["name"] not in env:
            env[variable["name"]] = expand_references(variable.get("value", ""), env)
    spec = ContainerSpec(
        image=container_spec.get("imageUri", ""),
        command=[expand_references(part, env) for part in container_spec.get("command", [])],
        args=[expand_references(part, env) for part in container_spec.get("args", [])],
        env=env,
    )
    return spec, health_route, predict_route


def _per_deployment_values_named(parts: Sequence[str], env: Mapping[str, str]) -> tuple[str, ...]:
    """``parts`` with the values of PER_DEPLOYMENT_ENV written back as ``$(NAME)``, where they
    make up a part or the value of a ``--flag=value`` part: the containers of two deployments
    whose command or args differ only by those (``--rest_api_port=$(AIP_HTTP_PORT)``) are alike."""
    names = {env[name]: f"$({name})" for name in PER_DEPLOYMENT_ENV if env.get(name)}
    named = []
    for part in parts:
        flag, equals, value = part.rpartition("=")
        named.append(f"{flag}{equals}{names[value]}" if equals and value in names else names.get(part, part))
    return tuple(named)


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes-style ``$(NAME)`` expansion: unknown names stay as written, ``$$`` is ``$``."""
    return _REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _stop_all(replicas: list[Replica]) -> None:
    """Signals every container first, so that they shut down together."""
    for replica in list(replicas):
        replica.container.signal()
    for replica in list(replicas):
        replica.container.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def artifact_fingerprint(uri: str) -> str | None:
    """A digest of the files under ``uri`` (``gs://`` through google-cloud-storage's default
    client, or a local folder): relative names, sizes and checksums. None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        for name, size, checksum in sorted(_artifact_files(uri)):
            digest.update(f"{name}\0{size}\0{checksum}\n".encode())
    except Exception:  # unreadable artifacts are never shared
        return None
    return digest.hexdigest()


def _artifact_files(uri: str) -> list[tuple[str, int, str]]:
    if not uri.startswith("gs://"):
        root = Path(uri)
        return [
            (str(path.relative_to(root)), path.stat().st_size, str(path.stat().st_mtime_ns))
            for path in root.rglob("*")
            if path.is_file()
        ]
    from google.cloud import storage

    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    blobs = storage.Client().list_blobs(bucket, prefix=prefix)
    files = [(blob.name[len(prefix) :], blob.size or 0, blob.crc32c or blob.md5_hash or "") for blob in blobs]
    if not files:
        raise FileNotFoundError(uri)
    return files
