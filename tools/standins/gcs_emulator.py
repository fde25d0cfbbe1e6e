"""In-process Cloud Storage stand-in (the ``gcp-storage-emulator`` package).

``google-cloud-storage`` talks to it when ``STORAGE_EMULATOR_HOST`` is set.
``PipelineJob.submit`` uses it through
``gcs_utils.create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist``:
``GET /storage/v1/b/{bucket}`` for the pipeline-root bucket and, when that is
404, ``POST /storage/v1/b?project=...`` to create it, after which it asks
Resource Manager (gRPC, cloudresourcemanager.googleapis.com, not
redirectable) for the project number to grant the service account access.
Offline that call retries for 60 s before the SDK logs and swallows the
error, so create every pipeline-root bucket up front (``default_bucket``,
``VertexStandins.create_bucket``); then only the GET happens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType

from gcp_storage_emulator.handlers import buckets
from gcp_storage_emulator.server import create_server

# The emulator logs every request at INFO; keep test output readable.
logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)


class StorageEmulator:
    """Start/stop wrapper that reports the port actually bound (``port=0`` works)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default_bucket: str | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.default_bucket = default_bucket
        self._server = create_server(host, port, in_memory=True, default_bucket=default_bucket)
        self._port: int | None = None

    def start(self) -> StorageEmulator:
        self._server.start()
        # create_server() has no public accessor for the bound port.
        httpd = getattr(getattr(self._server, "_api", None), "_httpd", None)
        self._port = httpd.server_address[1] if httpd is not None else self._requested_port
        return self

    def stop(self) -> None:
        if self._port is not None:
            self._server.stop()
            self._port = None

    def reset(self, bucket_names: Iterable[str] = ()) -> None:
        """Drop all buckets and objects, then create ``bucket_names``.

        Lets one emulator serve many tests: stopping it costs ~0.5 s (its
        ``serve_forever`` polls at the stdlib default interval).
        """
        self._server.wipe(keep_buckets=False)
        for name in bucket_names:
            self.create_bucket(name)

    def create_bucket(self, name: str) -> None:
        """Create a bucket directly in the emulator's storage (no HTTP)."""
        buckets.create_bucket(name, self._server._storage)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("StorageEmulator is not running.")
        return self._port

    @property
    def url(self) -> str:
        """Value for ``STORAGE_EMULATOR_HOST``."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> StorageEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
