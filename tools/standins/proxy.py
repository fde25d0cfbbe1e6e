"""`GoogleApiProxy`: the HTTP CONNECT proxy through which every rehearsal process reaches "Google".

Clients find it through `https_proxy` / `grpc_proxy` and trust the test CA (see network.py). For
`CONNECT host:443` to a routed host the proxy answers 200, terminates TLS with the CA's leaf for the host
(the SNI name when the client sends one) and pipes the decrypted bytes to a local backend chosen by the
negotiated ALPN protocol: `h2` goes to the route's gRPC backend (an insecure `grpc.server`, which speaks
h2c), anything else to its plain HTTP/1.1 backend. The proxy only offers the protocols the route can
serve, so an HTTP-only route never negotiates h2. Every other request (unrouted host, another port,
plain-HTTP forwarding) is refused with 403 and recorded: nothing leaves the machine.

One thread per client connection; each runs a single select loop over the client socket (TLS through
memory BIOs, so no two threads ever touch one SSL object) and the backend socket, passes half-closes on
in both directions and ends when both sides are done, the peer vanishes or the proxy stops.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from tools.standins.certs import CertificateAuthority, CertificateError

Address = tuple[str, int]
Protocol = Literal["h2", "http/1.1"]

_HEAD_LIMIT = 64 * 1024
_HANDSHAKE_TIMEOUT = 15.0
_POLL_SECONDS = 0.25
_CHUNK = 256 * 1024
_BUFFER_LIMIT = 4 * 1024 * 1024  # stop reading a side while this much waits to be written to the other


@dataclass(frozen=True)
class Route:
    http: Address | None = None
    grpc: Address | None = None

    def alpn(self) -> tuple[str, ...]:
        return (("h2",) if self.grpc else ()) + (("http/1.1",) if self.http else ())


@dataclass(frozen=True)
class ProxiedConnection:
    """A tunnel the proxy opened: the host the client asked for and the protocol it negotiated."""

    host: str
    protocol: Protocol


@dataclass(frozen=True)
class RefusedRequest:
    """A request the proxy refused (403): the target host, port and the request method."""

    host: str
    port: int
    method: str


class GoogleApiProxy:
    """CONNECT proxy on 127.0.0.1 that routes Google API hosts to local backends (see module docstring)."""

    def __init__(self, authority: CertificateAuthority, host: str = "127.0.0.1", port: int = 0) -> None:
        self._authority = authority
        self._routes: dict[str, Route] = {}
        self._contexts: dict[tuple[str, tuple[str, ...]], ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._connections: list[ProxiedConnection] = []
        self._refused: list[RefusedRequest] = []
        self._errors: list[str] = []
        self._workers: set[threading.Thread] = set()
        self._client_sockets: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(_POLL_SECONDS)
        self._acceptor: threading.Thread | None = None

    # -- configuration and logs -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """Value for https_proxy / grpc_proxy."""
        return f"http://127.0.0.1:{self.port}"

    def route(self, host: str, *, http: Address | None = None, grpc: Address | None = None) -> None:
        """Send TLS traffic for `host` to `http` (HTTP/1.1) and/or `grpc` (h2c) backends on this machine."""
        if http is None and grpc is None:
            raise ValueError(f"route for {host}: give an http or a grpc backend")
        self._authority.leaf(host)  # fail now, not in the middle of a client's handshake
        with self._lock:
            self._routes[host.lower()] = Route(http=http, grpc=grpc)

    def routes(self) -> dict[str, Route]:
        with self._lock:
            return dict(self._routes)

    @property
    def connections(self) -> list[ProxiedConnection]:
        with self._lock:
            return list(self._connections)

    @property
    def refused(self) -> list[RefusedRequest]:
        with self._lock:
            return list(self._refused)

    @property
    def errors(self) -> list[str]:
        """Tunnels that failed after the 200: TLS handshake errors, unreachable backends, ..."""
        with self._lock:
            return list(self._errors)

    def clear_logs(self) -> None:
        with self._lock:
            self._connections.clear()
            self._refused.clear()
            self._errors.clear()

    @property
    def active_connections(self) -> int:
        """Client connections still being served (0 once every client has gone)."""
        with self._lock:
            return sum(1 for worker in self._workers if worker.is_alive())

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GoogleApiProxy:
        if self._acceptor is None:
            self._acceptor = threading.Thread(target=self._accept_loop, daemon=True, name=f"proxy:{self.port}")
            self._acceptor.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            sockets = list(self._client_sockets)
            workers = list(self._workers)
        for client in sockets:
            _shutdown(client)
        for worker in workers:
            worker.join(timeout)

    def __enter__(self) -> GoogleApiProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- per connection -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(client,), daemon=True, name="proxy-connection")
            with self._lock:
                self._workers = {thread for thread in self._workers if thread.is_alive()}
                self._workers.add(worker)
                self._client_sockets.add(client)
            worker.start()

    def _serve(self, client: socket.socket) -> None:
        backend: socket.socket | None = None
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.settimeout(_HANDSHAKE_TIMEOUT)
            head, leftover = _read_head(client)
            if head is None:
                return
            method, host, port = _parse_request_line(head)
            route = self.routes().get(host) if method == "CONNECT" and port == 443 else None
            if route is None:
                self._refuse(client, RefusedRequest(host, port, method))
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tunnel = _TlsTunnel.handshake(client, leftover, self._context_for(host, route.alpn()))
            protocol: Protocol = "h2" if tunnel.tls.selected_alpn_protocol() == "h2" else "http/1.1"
            target = route.grpc if protocol == "h2" else route.http
            if target is None:
                raise ConnectionError(f"{host}: no backend for {protocol}")
            backend = socket.create_connection(target, timeout=_HANDSHAKE_TIMEOUT)
            backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.append(ProxiedConnection(host, protocol))
            tunnel.pump(backend, self._stopping)
        except (OSError, ssl.SSLError, ValueError, CertificateError) as error:
            if not self._stopping.is_set():
                with self._lock:
                    self._errors.append(f"{type(error).__name__}: {error}")
        finally:
            for sock in (client, backend):
                if sock is not None:
                    sock.close()
            with self._lock:
                self._client_sockets.discard(client)

    def _refuse(self, client: socket.socket, request: RefusedRequest) -> None:
        with self._lock:
            self._refused.append(request)
        body = f"The rehearsal proxy has no route to {request.host}:{request.port}; nothing leaves this machine.\n"
        client.sendall(
            (
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()
        )

    def _context_for(self, cert_host: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        key = (cert_host, alpn)
        with self._lock:
            context = self._contexts.get(key)
        if context is None:
            context = self._authority.server_context(cert_host, alpn)
            context.sni_callback = self._sni_switch
            with self._lock:
                context = self._contexts.setdefault(key, context)
        return context

    def _sni_switch(self, tls: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        """Presents the certificate of the name in the client's SNI when it differs from the CONNECT host."""
        if not server_name:
            return None
        with self._lock:
            current = next((key for key, value in self._contexts.items() if value is context), None)
        if current is None or current[0] == server_name.lower():
            return None
        # A name no certificate can carry keeps the CONNECT host's certificate.
        with contextlib.suppress(CertificateError):
            tls.context = self._context_for(server_name.lower(), current[1])
        return None


class _TlsTunnel:
    """The TLS side of one client connection, driven through memory BIOs."""

    def __init__(self, client: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO):
        self.client = client
        self.tls = tls
        self._incoming = incoming
        self._outgoing = outgoing

    @classmethod
    def handshake(cls, client: socket.socket, leftover: bytes, context: ssl.SSLContext) -> _TlsTunnel:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(leftover)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                client.sendall(outgoing.read())
                data = client.recv(_CHUNK)
                if not data:
                    raise ConnectionError("client closed the connection during the TLS handshake") from None
                incoming.write(data)
            except ssl.SSLError:
                client.sendall(outgoing.read())  # the alert, so the client reports the real cause
                raise
        client.sendall(outgoing.read())
        return cls(client, tls, incoming, outgoing)

    def pump(self, backend: socket.socket, stopping: threading.Event) -> None:
        client = self.client
        client.setblocking(False)
        backend.setblocking(False)
        plain, client_eof = self._decrypt_available()
        to_backend = bytearray(plain)
        to_client = bytearray(self._outgoing.read())
        backend_eof = backend_write_closed = client_write_closed = False
        selector = selectors.DefaultSelector()
        try:
            while not stopping.is_set():
                read_client = not client_eof and len(to_backend) < _BUFFER_LIMIT
                read_backend = not backend_eof and len(to_client) < _BUFFER_LIMIT
                _set_interest(selector, client, read_client, bool(to_client))
                _set_interest(selector, backend, read_backend, bool(to_backend))
                if not selector.get_map():
                    return
                for key, events in selector.select(_POLL_SECONDS):
                    if key.fileobj is client and events & selectors.EVENT_READ:
                        data = _receive(client)
                        if data == b"":
                            client_eof = True
                        elif data:
                            self._incoming.write(data)
                            plain, closed = self._decrypt_available()
                            to_backend += plain
                            client_eof = client_eof or closed
                            to_client += self._outgoing.read()
                    if key.fileobj is client and events & selectors.EVENT_WRITE:
                        del to_client[: _send(client, to_client)]
                    if key.fileobj is backend and events & selectors.EVENT_READ:
                        data = _receive(backend)
                        if data == b"":
                            backend_eof = True
                        elif data:
                            self.tls.write(data)
                            to_client += self._outgoing.read()
                    if key.fileobj is backend and events & selectors.EVENT_WRITE:
                        del to_backend[: _send(backend, to_backend)]
                if client_eof and not to_backend and not backend_write_closed:
                    _shutdown(backend, socket.SHUT_WR)  # the client half-closed: pass it on
                    backend_write_closed = True
                if backend_eof and not client_write_closed:
                    to_client += self._close_notify()
                    client_write_closed = True
                if client_write_closed and not to_client:
                    _shutdown(client, socket.SHUT_WR)
                    _drain(client)
                    return
        except (ssl.SSLError, OSError):
            return
        finally:
            selector.close()

    def _decrypt_available(self) -> tuple[bytes, bool]:
        """All plaintext the incoming BIO holds, and whether the client sent close_notify."""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                return b"".join(chunks), False
            except ssl.SSLZeroReturnError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)

    def _close_notify(self) -> bytes:
        with contextlib.suppress(ssl.SSLError):  # our close_notify is queued; the client's is not needed
            self.tls.unwrap()
        return self._outgoing.read()


def _read_head(client: socket.socket) -> tuple[bytes | None, bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _HEAD_LIMIT:
            return None, b""
        data = client.recv(4096)
        if not data:
            return None, b""
        buffer += data
    head, _, leftover = buffer.partition(b"\r\n\r\n")
    return head, leftover


def _parse_request_line(head: bytes) -> tuple[str, str, int]:
    """(method, host, port) of a CONNECT request or of an absolute-form proxy request."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3:
        raise ValueError(f"malformed request line {line!r}")
    method, target, _ = parts
    if method != "CONNECT":
        scheme, _, rest = target.partition("://")
        authority = rest.split("/", 1)[0] if rest else ""
        default_port = 443 if scheme == "https" else 80
        host, port = _split_authority(authority, default_port)
        return method, host, port
    host, port = _split_authority(target, 443)
    return method, host, port


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    try:
        return host.lower(), int(port) if port else default_port
    except ValueError:
        return host.lower(), default_port


def _set_interest(selector: selectors.BaseSelector, sock: socket.socket, read: bool, write: bool) -> None:
    events = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
    key = selector.get_map().get(sock)
    if not events:
        if key is not None:
            selector.unregister(sock)
    elif key is None:
        selector.register(sock, events)
    elif key.events != events:
        selector.modify(sock, events)


def _drain(sock: socket.socket, seconds: float = 2.0) -> None:
    """Reads until the peer closes (or `seconds` pass), so closing does not reset data it has yet to read."""
    sock.settimeout(seconds)
    try:
        while sock.recv(_CHUNK):
            pass
    except OSError:
        pass


def _receive(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(_CHUNK)
    except (BlockingIOError, ssl.SSLWantReadError):
        return None


def _send(sock: socket.socket, data: bytearray) -> int:
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)
