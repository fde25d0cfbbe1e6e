"""The test CA and the CONNECT proxy, driven by real TLS clients (Python ssl, requests, gRPC)."""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import grpc
import pytest
import requests

from tools.standins.certs import CertificateAuthority, CertificateError
from tools.standins.http_service import LoopbackHttpServer
from tools.standins.proxy import GoogleApiProxy, ProxiedConnection, RefusedRequest

ECHO_METHOD = "/rehearsal.Echo/Echo"


class _HostEcho(BaseHTTPRequestHandler):
    """Answers every GET with the Host header and path it received."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.headers['Host']}{self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ReplyAfterEof(socketserver.BaseRequestHandler):
    """Reads until the client half-closes, then answers with the bytes reversed and closes."""

    def handle(self) -> None:
        received = b""
        while chunk := self.request.recv(65536):
            received += chunk
        self.request.sendall(received[::-1])


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def http_backend() -> Iterator[LoopbackHttpServer]:
    with LoopbackHttpServer(_HostEcho, None) as server:
        yield server


@pytest.fixture(scope="module")
def grpc_backend() -> Iterator[int]:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"echo:" + request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("rehearsal.Echo", {"Echo": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


@pytest.fixture
def proxy(authority: CertificateAuthority) -> Iterator[GoogleApiProxy]:
    with GoogleApiProxy(authority) as running:
        yield running


def _tunnel(proxy: GoogleApiProxy, target: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return sock, answer


def _wait_until(condition, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_leaf_certificates_are_cached_per_host_and_exact_names_only(authority: CertificateAuthority) -> None:
    first = authority.leaf("storage.googleapis.com")
    assert authority.leaf("STORAGE.googleapis.com.") == first
    assert first.cert_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(CertificateError, match="no wildcards"):
        authority.leaf("*.googleapis.com")


def test_https_request_is_terminated_and_sent_to_the_http_backend(
    proxy: GoogleApiProxy, http_backend: LoopbackHttpServer, authority: CertificateAuthority
) -> None:
    proxy.route("example.googleapis.com", http=http_backend.address)
    session = requests.Session()
    session.trust_env = False  # this machine's REQUESTS_CA_BUNDLE would replace `verify`
    session.proxies = {"https": proxy.url}
    session.verify = str(authority.bundle_path)
    with session:
        answers = [session.get(f"https://example.googleapis.com/v1/item{n}", timeout=10) for n in range(3)]
    assert [answer.text for answer in answers] == [f"example.googleapis.com/v1/item{n}" for n in range(3)]
    # One keep-alive tunnel carried all three requests, over HTTP/1.1 (requests offers no h2).
    assert proxy.connections == [ProxiedConnection("example.googleapis.com", "http/1.1")]


def test_h2_clients_reach_the_grpc_backend_over_tls(
    proxy: GoogleApiProxy, grpc_backend: int, authority: CertificateAuthority
) -> None:
    proxy.route("echo.googleapis.com", grpc=("127.0.0.1", grpc_backend))
    credentials = grpc.ssl_channel_credentials(root_certificates=authority.bundle_path.read_bytes())
    options = [("grpc.http_proxy", proxy.url)]
    with grpc.secure_channel("echo.googleapis.com:443", credentials, options=options) as channel:
        call = channel.unary_unary(ECHO_METHOD)
        assert call(b"ping", timeout=10) == b"echo:ping"
    assert proxy.connections == [ProxiedConnection("echo.googleapis.com", "h2")]


def test_alpn_offers_only_what_the_route_serves(
    proxy: GoogleApiProxy, http_backend: LoopbackHttpServer, grpc_backend: int, authority: CertificateAuthority
) -> None:
    proxy.route("rest-only.googleapis.com", http=http_backend.address)
    proxy.route("both.googleapis.com", http=http_backend.address, grpc=("127.0.0.1", grpc_backend))
    negotiated = {}
    for host in ("rest-only.googleapis.com", "both.googleapis.com"):
        sock, answer = _tunnel(proxy, f"{host}:443")
        assert answer.startswith(b"HTTP/1.1 200")
        context = authority.client_context()
        context.set_alpn_protocols(["h2", "http/1.1"])
        with context.wrap_socket(sock, server_hostname=host) as tls:
            negotiated[host] = tls.selected_alpn_protocol()
    assert negotiated == {"rest-only.googleapis.com": "http/1.1", "both.googleapis.com": "h2"}


def test_unrouted_hosts_other_ports_and_plain_http_are_refused_and_recorded(
    proxy: GoogleApiProxy, http_backend: LoopbackHttpServer
) -> None:
    proxy.route("storage.googleapis.com", http=http_backend.address)
    for target in ("evil.example.com:443", "storage.googleapis.com:80"):
        sock, answer = _tunnel(proxy, target)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    plain = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    plain.sendall(b"GET http://metadata.google.internal/computeMetadata/v1/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert plain.recv(4096).startswith(b"HTTP/1.1 403 Forbidden")
    plain.close()
    assert proxy.refused == [
        RefusedRequest("evil.example.com", 443, "CONNECT"),
        RefusedRequest("storage.googleapis.com", 80, "CONNECT"),
        RefusedRequest("metadata.google.internal", 80, "GET"),
    ]
    assert proxy.connections == []


def test_certificate_follows_sni_when_it_differs_from_the_connect_host(
    proxy: GoogleApiProxy, http_backend: LoopbackHttpServer, authority: CertificateAuthority
) -> None:
    proxy.route("a.googleapis.com", http=http_backend.address)
    sock, _ = _tunnel(proxy, "a.googleapis.com:443")
    with authority.client_context().wrap_socket(sock, server_hostname="b.googleapis.com") as tls:
        assert tls.getpeercert()["subjectAltName"] == (("DNS", "b.googleapis.com"),)


def test_half_close_reaches_the_backend_and_the_answer_comes_back(
    proxy: GoogleApiProxy, authority: CertificateAuthority
) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ReplyAfterEof) as backend:
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        proxy.route("halfclose.googleapis.com", http=backend.server_address)
        sock, _ = _tunnel(proxy, "halfclose.googleapis.com:443")
        tls = authority.client_context().wrap_socket(sock, server_hostname="halfclose.googleapis.com")
        tls.sendall(b"abc" * 100_000)
        # A TCP half-close under the TLS session (SSLSocket.shutdown would drop TLS); the backend
        # answers only after it sees EOF.
        socket.socket.shutdown(tls, socket.SHUT_WR)
        received = b""
        try:
            while chunk := tls.recv(65536):
                received += chunk
        except ssl.SSLEOFError:
            pass
        tls.close()
        backend.shutdown()
    assert received == (b"abc" * 100_000)[::-1]
    assert _wait_until(lambda: proxy.active_connections == 0)


def test_vanished_clients_and_stop_leave_no_threads(
    authority: CertificateAuthority, http_backend: LoopbackHttpServer
) -> None:
    threads_before = threading.active_count()
    proxy = GoogleApiProxy(authority).start()
    proxy.route("example.googleapis.com", http=http_backend.address)
    abandoned = []
    for _ in range(3):
        sock, _ = _tunnel(proxy, "example.googleapis.com:443")
        tls = authority.client_context().wrap_socket(sock, server_hostname="example.googleapis.com")
        tls.sendall(b"GET / HTTP/1.1\r\nHost: example.googleapis.com\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        abandoned.append(tls)
    abandoned.pop().close()  # one client goes away; its tunnel ends
    assert _wait_until(lambda: proxy.active_connections == 2)
    proxy.stop()  # the others are still open: stop ends them
    assert proxy.active_connections == 0
    for tls in abandoned:
        tls.close()
    assert _wait_until(lambda: threading.active_count() <= threads_before + 1)  # + the backend's handler threads


def test_untrusted_clients_fail_the_handshake_and_are_recorded(
    proxy: GoogleApiProxy, http_backend: LoopbackHttpServer, tmp_path: Path
) -> None:
    proxy.route("example.googleapis.com", http=http_backend.address)
    other_ca = CertificateAuthority(tmp_path / "other-ca")
    sock, _ = _tunnel(proxy, "example.googleapis.com:443")
    with pytest.raises(ssl.SSLCertVerificationError):
        other_ca.client_context().wrap_socket(sock, server_hostname="example.googleapis.com")
    sock.close()
    assert _wait_until(lambda: len(proxy.errors) == 1)
    assert proxy.connections == []
