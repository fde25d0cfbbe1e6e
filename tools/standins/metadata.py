"""A GCE metadata server stand-in per identity, and the registry of the access tokens it hands out.

Processes find it through GCE_METADATA_HOST (google-auth's compute_engine credentials and TensorFlow's
GCS auth provider both read it; google-auth pings GCE_METADATA_IP) and get bearer tokens for one service
account. A token is an opaque random string registered in the shared `TokenRegistry`, so the other
stand-ins can tell which identity sent a request. Paths and answers follow the real server: every
/computeMetadata/v1/ request needs `Metadata-Flavor: Google` (403 otherwise), every answer carries that
header, scalar values are `application/text`, `?recursive=true` directories and tokens are JSON.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from tools.standins.http_service import LoopbackHttpServer

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_LIFETIME_SECONDS = 3600
_RENEW_MARGIN_SECONDS = 300


def derived_project_number(project: str) -> str:
    """A stable 12-digit project number for a project ID (a number stays itself)."""
    if project.isdigit():
        return project
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


@dataclass(frozen=True)
class AccessToken:
    token: str
    service_account: str
    expires_at: float


class TokenRegistry:
    """Which service account an access token belongs to (shared by the metadata servers and the APIs)."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    def issue(self, service_account: str, lifetime_seconds: float = TOKEN_LIFETIME_SECONDS) -> AccessToken:
        token = AccessToken(
            "ya29.rehearsal." + secrets.token_urlsafe(32), service_account, time.time() + lifetime_seconds
        )
        with self._lock:
            self._tokens[token.token] = token
        return token

    def identity(self, token: str) -> str | None:
        """The service account of a valid token, None for an unknown or expired one."""
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found.expires_at <= time.time():
            return None
        return found.service_account

    def identity_from_header(self, authorization: str | None) -> str | None:
        """The service account behind an `Authorization: Bearer ...` header value."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.identity(token.strip())


@dataclass(frozen=True)
class InstanceIdentity:
    """What the metadata server says about the machine and who runs on it."""

    service_account: str
    project_id: str
    project_number: str
    zone: str = "us-central1-a"
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    instance_id: str = "4520031799277581759"
    hostname: str = "rehearsal-worker.c.internal"


class MetadataServer:
    """Serves one `InstanceIdentity` on a loopback port; `host` is the value for GCE_METADATA_HOST."""

    def __init__(self, identity: InstanceIdentity, tokens: TokenRegistry, port: int = 0) -> None:
        self.identity = identity
        self.tokens = tokens
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self._http = LoopbackHttpServer(_MetadataHandler, self, port=port)

    @property
    def host(self) -> str:
        """host:port, the form GCE_METADATA_HOST and GCE_METADATA_IP take."""
        return f"{self._http.host}:{self._http.port}"

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> MetadataServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def access_token(self) -> AccessToken:
        """The current token, renewed shortly before it expires (the real server caches it the same way)."""
        with self._lock:
            if self._token is None or self._token.expires_at - time.time() < _RENEW_MARGIN_SECONDS:
                self._token = self.tokens.issue(self.identity.service_account)
            return self._token

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
        """(status, content type, body) for a /computeMetadata/v1/ path (without that prefix)."""
        identity = self.identity
        account = identity.service_account
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        values: dict[str, str] = {
            "": "instance/\nproject/\nuniverse/\n",
            "project/": "numeric-project-id\nproject-id\n",
            "instance/": "hostname\nid\nservice-accounts/\nzone\n",
            "project/project-id": identity.project_id,
            "project/numeric-project-id": identity.project_number,
            "instance/zone": f"projects/{identity.project_number}/zones/{identity.zone}",
            "instance/id": identity.instance_id,
            "instance/hostname": identity.hostname,
            "instance/service-accounts/": f"default/\n{account}/\n",
            "universe/universe-domain": "googleapis.com",
        }
        if path in values:
            return 200, "application/text", values[path]
        prefix = "instance/service-accounts/"
        if not path.startswith(prefix):
            return _not_found()
        alias, _, leaf = path[len(prefix) :].partition("/")
        if alias not in ("default", account):
            return _not_found()
        if leaf == "" and recursive:
            info = {"aliases": ["default"], "email": account, "scopes": list(identity.scopes)}
            return 200, "application/json", json.dumps(info)
        if leaf == "":
            return 200, "application/text", "aliases\nemail\nidentity\nscopes\ntoken\n"
        if leaf == "email":
            return 200, "application/text", account
        if leaf == "aliases":
            return 200, "application/text", "default\n"
        if leaf == "scopes":
            return 200, "application/text", "".join(f"{scope}\n" for scope in identity.scopes)
        if leaf == "token":
            token = self.access_token()
            expires_in = max(int(token.expires_at - time.time()), 0)
            body = {"access_token": token.token, "expires_in": expires_in, "token_type": "Bearer"}
            return 200, "application/json", json.dumps(body)
        return _not_found()


def _not_found() -> tuple[int, str, str]:
    return 404, "text/html; charset=UTF-8", "Not Found\n"


class _MetadataHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM"
    sys_version = ""

    def do_GET(self) -> None:
        owner: MetadataServer = self.server.owner  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if url.path in ("", "/"):
            self._reply(200, "application/text", "computeMetadata/\n")
            return
        root = "/computeMetadata/v1/"
        if not url.path.startswith(root) and url.path != root.rstrip("/"):
            self._reply(*_not_found())
            return
        flavored = (
            self.headers.get("Metadata-Flavor") == "Google" or self.headers.get("X-Google-Metadata-Request") == "True"
        )
        if not flavored or "X-Forwarded-For" in self.headers:
            message = (
                f"Your client does not have permission to get URL {url.path} from this server. "
                "Missing Metadata-Flavor:Google header.\n"
            )
            self._reply(403, "text/html; charset=UTF-8", message)
            return
        self._reply(*owner.answer(url.path[len(root) :], parse_qs(url.query)))

    def _reply(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass
