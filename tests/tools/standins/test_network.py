"""The rehearsal network end to end: fresh processes with nothing but `network.env(...)` (plus PATH and
HOME) use TensorFlow, google-cloud-storage, Beam, httplib2 and gRPC unmodified against Google's default
host names, and everything lands in the local stand-ins under the identity the process runs as."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import grpc
import pytest
import requests

from tools.standins.containers import ContainerRuntime, ContainerSpec, LocalImage
from tools.standins.http_service import LoopbackHttpServer
from tools.standins.metadata import TokenRegistry
from tools.standins.network import GoogleCloudNetwork
from tools.standins.proxy import ProxiedConnection

PROJECT = "rehearsal-project"
PROJECT_NUMBER = "246813579024"
BUCKET = "rehearsal-bucket"
TRAINER = "trainer@rehearsal-project.iam.gserviceaccount.com"
RUNNER = "pipeline-runner@rehearsal-project.iam.gserviceaccount.com"
CLIENTS = Path(__file__).parent / "network_clients"
ECHO_HOST = "echo.googleapis.com"
DATAFLOW_HOST = "dataflow.googleapis.com"


@dataclass
class Backends:
    """Dummy Dataflow (HTTP) and echo (gRPC) services, recording who called them."""

    tokens: TokenRegistry
    dataflow_calls: list[tuple[str, str | None]] = field(default_factory=list)
    grpc_callers: list[str | None] = field(default_factory=list)


class _DataflowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        backends: Backends = self.server.owner  # type: ignore[attr-defined]
        identity = backends.tokens.identity_from_header(self.headers.get("Authorization"))
        backends.dataflow_calls.append((self.path, identity))
        body = json.dumps({"jobs": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoogleCloudNetwork]:
    # require_auth: a client that silently fell back to anonymous requests (TensorFlow does) would fail.
    state = tmp_path_factory.mktemp("net")
    with GoogleCloudNetwork(state, project_numbers={PROJECT: PROJECT_NUMBER}, require_auth=True) as running:
        running.storage.create_bucket(BUCKET, project=PROJECT)
        yield running


@pytest.fixture(scope="module")
def backends(network: GoogleCloudNetwork) -> Iterator[Backends]:
    recorded = Backends(network.tokens)

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        recorded.grpc_callers.append(network.tokens.identity_from_header(metadata.get("authorization")))
        return b"echo:" + request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("rehearsal.Echo", {"Echo": handler})])
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with LoopbackHttpServer(_DataflowHandler, recorded) as dataflow:
        network.route(DATAFLOW_HOST, http=dataflow.address)
        network.route(ECHO_HOST, grpc=("127.0.0.1", grpc_port))
        yield recorded
    server.stop(0)


def run_client(network: GoogleCloudNetwork, home: Path, script: str, account: str | None, *args: str) -> dict[str, Any]:
    """Runs a client script in a fresh interpreter whose environment is only the network's env."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **network.env(account, PROJECT)}
    result = subprocess.run(
        [sys.executable, str(CLIENTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def requests_for(network: GoogleCloudNetwork, prefix: str) -> list[Any]:
    """The storage requests about objects whose names start with `prefix` (JSON API, uploads, XML reads)."""

    def about_prefix(request: Any) -> bool:
        path = unquote(request.path)
        return (
            f"/{BUCKET}/o/{prefix}" in path
            or path.startswith(f"/{BUCKET}/{prefix}")
            or request.query.get("name", "").startswith(prefix)
            or request.query.get("prefix", "").startswith(prefix)
        )

    return [request for request in network.storage.requests if about_prefix(request)]


def test_env_sets_routing_trust_and_metadata_and_nothing_that_picks_credentials(
    network: GoogleCloudNetwork,
) -> None:
    env = network.env(TRAINER, PROJECT)
    metadata = network.metadata_server(TRAINER, PROJECT)
    roots = str(network.authority.bundle_path)
    assert {key: env[key] for key in ("https_proxy", "HTTPS_PROXY", "http_proxy", "grpc_proxy")} == dict.fromkeys(
        ("https_proxy", "HTTPS_PROXY", "http_proxy", "grpc_proxy"), network.proxy.url
    )
    assert {env[key] for key in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")} == {roots}
    assert {env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"], env["HTTPLIB2_CA_CERTS"]} == {roots}
    assert env["GCE_METADATA_HOST"] == env["GCE_METADATA_IP"] == metadata.host
    assert env["no_proxy"] == "127.0.0.1,localhost"
    assert "GOOGLE_CLOUD_PROJECT" not in env  # clients ask the metadata server, as on Google's machines
    assert list(Path(env["CLOUDSDK_CONFIG"]).iterdir()) == []
    for selector in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_AUTH_TOKEN_FOR_TESTING", "STORAGE_EMULATOR_HOST"):
        assert selector not in env
    # One metadata server per identity; no account means the project's default compute account.
    assert network.env(RUNNER, PROJECT)["GCE_METADATA_HOST"] != metadata.host
    default = network.metadata_server(f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com", PROJECT)
    assert network.env(None, PROJECT)["GCE_METADATA_HOST"] == default.host


def test_metadata_server_answers_like_gce(network: GoogleCloudNetwork) -> None:
    metadata = network.metadata_server(TRAINER, PROJECT)
    flavor = {"Metadata-Flavor": "Google"}
    with requests.Session() as http:
        http.trust_env = False
        ping = http.get(metadata.url)
        assert ping.headers["Metadata-Flavor"] == "Google"
        base = f"{metadata.url}/computeMetadata/v1"
        assert http.get(f"{base}/project/project-id").status_code == 403  # no Metadata-Flavor header
        assert http.get(f"{base}/project/project-id", headers=flavor).text == PROJECT
        assert http.get(f"{base}/project/numeric-project-id", headers=flavor).text == PROJECT_NUMBER
        account = http.get(f"{base}/instance/service-accounts/default/", params={"recursive": "true"}, headers=flavor)
        assert account.json() == {
            "aliases": ["default"],
            "email": TRAINER,
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        }
        assert http.get(f"{base}/instance/service-accounts/{TRAINER}/email", headers=flavor).text == TRAINER
        token = http.get(f"{base}/instance/service-accounts/default/token", headers=flavor).json()
        assert token["token_type"] == "Bearer" and 3000 < token["expires_in"] <= 3600
        assert network.tokens.identity(token["access_token"]) == TRAINER
        assert http.get(f"{base}/instance/service-accounts/other@x.com/token", headers=flavor).status_code == 404


def test_tensorflow_gfile_on_gs(network: GoogleCloudNetwork, tmp_path: Path) -> None:
    report = run_client(network, tmp_path / "home", "tf_gfile.py", TRAINER, BUCKET)

    storage = network.storage
    assert storage.get_object(BUCKET, "tf/models/v1/weights.bin") == bytes(range(256)) * (5 * 4096)
    assert storage.get_object(BUCKET, "tf/20mb.bin") == bytes(range(256)) * (20 * 4096)
    assert {"tf/", "tf/models/", "tf/models/v1/"} <= set(storage.object_names(BUCKET, "tf/"))
    assert not any(
        name.startswith(("tf/no/", "tf/scratch", "tf/small", "tf/renamed")) for name in storage.object_names(BUCKET)
    )
    tf_requests = requests_for(network, "tf/")
    assert {r.identity for r in tf_requests} == {TRAINER}
    assert {r.host for r in tf_requests} == {"www.googleapis.com", "storage.googleapis.com"}  # JSON API + XML reads
    assert any(r.status == 206 and r.host == "storage.googleapis.com" for r in tf_requests)
    assert ProxiedConnection("storage.googleapis.com", "http/1.1") in network.proxy.connections
    print(
        f"\nTensorFlow through the proxy: 20 MB write {report['write_20mb_seconds']} s, "
        f"read {report['read_20mb_seconds']} s"
    )
    assert report["write_20mb_seconds"] + report["read_20mb_seconds"] < 30


def test_google_cloud_storage_httplib2_and_grpc_clients(
    network: GoogleCloudNetwork, backends: Backends, tmp_path: Path
) -> None:
    report = run_client(network, tmp_path / "home", "google_clients.py", RUNNER, BUCKET, PROJECT)

    assert report["credentials"] == "google.auth.compute_engine.credentials"
    assert (report["default_project"], report["service_account"]) == (PROJECT, RUNNER)
    assert f"No such object: {BUCKET}/gcs/missing.txt" in report["missing_message"]
    assert network.storage.get_object(BUCKET, "gcs/hello.txt") == b"hello from google-cloud-storage"
    assert not network.storage.has_object(BUCKET, "gcs/scratch.txt")
    assert not network.storage.has_object(BUCKET, "gcs/missing.txt")
    assert {r.identity for r in requests_for(network, "gcs/")} == {RUNNER}

    assert report["dataflow_answer"] == {"jobs": []}
    assert backends.dataflow_calls == [(f"/v1b3/projects/{PROJECT}/jobs", RUNNER)]
    assert backends.grpc_callers == [None, RUNNER]
    assert ProxiedConnection(ECHO_HOST, "h2") in network.proxy.connections

    assert (report["unrouted_https"], report["unrouted_grpc"]) == ("refused", "UNAVAILABLE")
    refused_hosts = {refusal.host for refusal in network.proxy.refused}
    assert {"unrouted.googleapis.com", "unrouted-grpc.googleapis.com"} <= refused_hosts


def test_beam_filesystems_and_a_direct_runner_pipeline_on_gs(network: GoogleCloudNetwork, tmp_path: Path) -> None:
    report = run_client(network, tmp_path / "home", "beam_gcs.py", None, BUCKET)

    assert report["outputs"] == [f"gs://{BUCKET}/beam/out/part-00000-of-00001.txt"]
    written = network.storage.get_object(BUCKET, "beam/out/part-00000-of-00001.txt").decode().splitlines()
    assert sorted(written) == sorted(f"line {n}" for n in range(50))
    assert "No such object" in report["missing_open"]
    assert network.storage.object_names(BUCKET, "beam/moved/") == ["beam/moved/a.txt", "beam/moved/b.txt"]
    assert not network.storage.has_object(BUCKET, "beam/missing.txt")
    beam_requests = requests_for(network, "beam/")
    assert {r.identity for r in beam_requests} == {network.default_service_account(PROJECT)}
    batched = {(r.method, r.status) for r in beam_requests if r.in_batch}
    assert {("POST", 200), ("DELETE", 204)} <= batched  # copies and deletes of rename travelled in batches


def test_container_runtime_gets_the_identity_environment(network: GoogleCloudNetwork, tmp_path: Path) -> None:
    runtime = ContainerRuntime(tmp_path / "logs", cloud_env=network.cloud_env(PROJECT))
    runtime.add_image("image@sha256:1", LocalImage(workdir=tmp_path))
    env = runtime.environment(ContainerSpec("image@sha256:1", ["true"]), TRAINER)
    assert env["GCE_METADATA_HOST"] == network.metadata_server(TRAINER, PROJECT).host
    assert env["https_proxy"] == network.proxy.url


def test_stopping_the_network_ends_its_threads(tmp_path: Path) -> None:
    before = threading.active_count()
    with GoogleCloudNetwork(tmp_path / "net") as network:
        network.env(TRAINER, PROJECT)
        assert threading.active_count() > before
    assert threading.active_count() == before
