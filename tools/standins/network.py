"""`GoogleCloudNetwork`: the offline "internet" of the cloud rehearsal.

Starts the test CA, the CONNECT proxy and the Cloud Storage stand-in, routes www.googleapis.com and
storage.googleapis.com to that stand-in, lets other stand-ins add their hosts (`route(host, http=...,
grpc=...)`), starts one GCE metadata server per (service account, project) on first use, and gives a
child process the environment that sends every unmodified Google client through all of this:

    with GoogleCloudNetwork(tmp_path / "net") as network:
        network.storage.create_bucket("my-bucket", project="my-project")
        env = {"PATH": ..., "HOME": ..., **network.env("sa@my-project.iam.gserviceaccount.com", "my-project")}
        subprocess.run([...], env=env)
        runtime = ContainerRuntime(log_dir, cloud_env=network.cloud_env("my-project"))

What each client needs from `env()` (read in the installed sources, then verified by removing variables
one group at a time from a child process; "or" = either variable is enough):

* TensorFlow gs:// (libcurl + BoringSSL): https_proxy or HTTPS_PROXY; CURL_CA_BUNDLE; GCE_METADATA_HOST.
* google-cloud-storage (requests/urllib3), hence Beam's gcsio: https_proxy or HTTPS_PROXY;
  REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE; GCE_METADATA_IP (google.auth.default()'s ping) and GCE_METADATA_HOST.
* Beam's httplib2 (`apache_beam.internal.http_client.get_new_http()`, used by the apitools clients):
  http_proxy, else https_proxy (either way httplib2 tunnels with CONNECT); HTTPLIB2_CA_CERTS (read when
  httplib2 is imported); credentials from google-auth as above.
* gRPC (gapic clients): grpc_proxy, else https_proxy; GRPC_DEFAULT_SSL_ROOTS_FILE_PATH.

* no_proxy / NO_PROXY (127.0.0.1,localhost) is required: with http_proxy set, metadata requests would
  otherwise go to the proxy and be refused.
* TensorFlow never fails for lack of a token: when the metadata server cannot be reached it logs a
  warning and sends requests without Authorization. Use `require_auth=True` to make that a 401
  (PermissionDenied) instead of a silently anonymous write.
* http_proxy is set so plain-HTTP requests to other hosts reach the proxy and are refused (and logged)
  instead of leaving the machine. SSL_CERT_FILE serves `urllib`/`ssl.create_default_context()` users.
  GOOGLE_CLOUD_PROJECT is not set, as on Vertex AI and Dataflow machines: clients read the project
  from the metadata server.
* CLOUDSDK_CONFIG points at an empty folder: google-auth and TensorFlow both prefer gcloud's
  application-default credentials under $HOME over the metadata server, and a developer's real
  credentials must never be picked up. Nothing that selects credentials (GOOGLE_APPLICATION_CREDENTIALS,
  GOOGLE_AUTH_TOKEN_FOR_TESTING, NO_GCE_CHECK, STORAGE_EMULATOR_HOST) is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from tools.standins.certs import CertificateAuthority
from tools.standins.metadata import InstanceIdentity, MetadataServer, TokenRegistry, derived_project_number
from tools.standins.proxy import Address, GoogleApiProxy
from tools.standins.storage import PUBLIC_HOSTS, StorageServer

LOOPBACK_HOSTS = "127.0.0.1,localhost"


class GoogleCloudNetwork:
    """Proxy + CA + Cloud Storage + per-identity metadata servers; see the module docstring."""

    def __init__(
        self,
        state_dir: Path,
        *,
        project_numbers: Mapping[str, str] | None = None,
        require_auth: bool = False,
        zone: str = "us-central1-a",
    ) -> None:
        self.state_dir = state_dir
        self._project_numbers = dict(project_numbers or {})
        self._zone = zone
        self._lock = threading.Lock()
        self._metadata: dict[tuple[str, str], MetadataServer] = {}
        self._started = False
        self.tokens = TokenRegistry()
        self.authority = CertificateAuthority(state_dir / "ca")
        self.proxy = GoogleApiProxy(self.authority)
        self.storage = StorageServer(self.tokens, project_number=self.project_number, require_auth=require_auth)
        self._empty_gcloud_config = state_dir / "gcloud-config"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GoogleCloudNetwork:
        if not self._started:
            self._empty_gcloud_config.mkdir(parents=True, exist_ok=True)
            self.storage.start()
            self.proxy.start()
            for host in PUBLIC_HOSTS:
                self.proxy.route(host, http=self.storage.address)
            self._started = True
        return self

    def stop(self) -> None:
        with self._lock:
            servers = list(self._metadata.values())
            self._metadata.clear()
        for server in servers:
            server.stop()
        if self._started:
            self.proxy.stop()
            self.storage.stop()
            self._started = False

    def __enter__(self) -> GoogleCloudNetwork:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- routing and identities -----------------------------------------------------------------

    def route(self, host: str, *, http: Address | None = None, grpc: Address | None = None) -> None:
        """Make https://host (HTTP/1.1 to `http`, gRPC/h2 to `grpc`) reachable for every process."""
        self.proxy.route(host, http=http, grpc=grpc)

    def project_number(self, project: str) -> str:
        return self._project_numbers.get(project) or derived_project_number(project)

    def default_service_account(self, project: str) -> str:
        """The Compute Engine default service account, which runs workloads that name no account."""
        return f"{self.project_number(project)}-compute@developer.gserviceaccount.com"

    def metadata_server(self, service_account: str, project: str) -> MetadataServer:
        """The metadata server of `service_account` in `project`, started on first use."""
        key = (service_account, project)
        with self._lock:
            server = self._metadata.get(key)
            if server is None:
                identity = InstanceIdentity(service_account, project, self.project_number(project), zone=self._zone)
                server = MetadataServer(identity, self.tokens).start()
                self._metadata[key] = server
            return server

    def env(self, service_account: str | None, project: str) -> dict[str, str]:
        """Environment for a process running as `service_account` (None: the default compute account)."""
        if not self._started:
            raise RuntimeError("GoogleCloudNetwork is not started")
        account = service_account or self.default_service_account(project)
        metadata = self.metadata_server(account, project)
        roots = str(self.authority.bundle_path)
        proxy = self.proxy.url
        return {
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "http_proxy": proxy,
            "HTTP_PROXY": proxy,
            "grpc_proxy": proxy,
            "no_proxy": LOOPBACK_HOSTS,
            "NO_PROXY": LOOPBACK_HOSTS,
            "CURL_CA_BUNDLE": roots,
            "REQUESTS_CA_BUNDLE": roots,
            "SSL_CERT_FILE": roots,
            "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": roots,
            "HTTPLIB2_CA_CERTS": roots,
            "GCE_METADATA_HOST": metadata.host,
            "GCE_METADATA_IP": metadata.host,
            "CLOUDSDK_CONFIG": str(self._empty_gcloud_config),
        }

    def cloud_env(self, project: str) -> Callable[[str | None], dict[str, str]]:
        """`env` bound to a project: the `cloud_env` a ContainerRuntime takes."""
        return lambda service_account: self.env(service_account, project)
