"""A throw-away certificate authority for the rehearsal's TLS-terminating proxy, made with the `openssl` CLI.

`CertificateAuthority(folder)` creates (or reuses) a CA key and certificate in `folder` and issues, on
demand, one leaf certificate per exact host name (SAN = that name; IP addresses get an IP SAN). Leaves are
cached on disk and signed with ECDSA P-256, which every client of the rehearsal accepts: Python's `ssl`,
TensorFlow's libcurl (BoringSSL), gRPC core (BoringSSL), urllib3/requests and httplib2. `bundle_path` is the
PEM file clients trust (CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, ...).

BoringSSL is strict about extensions, so both certificates spell them out: the CA has a critical
`basicConstraints CA:TRUE` and `keyUsage keyCertSign`, leaves have `CA:FALSE`, `digitalSignature`,
`serverAuth` and the SAN.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shutil
import ssl
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_CA_DAYS = 3650
_LEAF_DAYS = 825

_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""

_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = {san}
"""


class CertificateError(Exception):
    """openssl failed, or a host name cannot get a certificate."""


@dataclass(frozen=True)
class LeafCertificate:
    host: str
    cert_path: Path
    key_path: Path


class CertificateAuthority:
    """Test CA in `folder`: `bundle_path` for clients, `leaf(host)` and `server_context(host)` for servers."""

    def __init__(self, folder: Path, common_name: str = "Cloud rehearsal test CA") -> None:
        if shutil.which("openssl") is None:
            raise CertificateError("the openssl command is not on PATH")
        self.folder = folder
        self._common_name = common_name
        self._lock = threading.Lock()
        self._leaves: dict[str, LeafCertificate] = {}
        folder.mkdir(parents=True, exist_ok=True)
        self._config = folder / "req.cnf"
        self._config.write_text(_REQ_CONFIG)
        if not (self.ca_cert_path.exists() and self.ca_key_path.exists()):
            self._create_ca()

    @property
    def ca_cert_path(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.folder / "ca.key"

    @property
    def bundle_path(self) -> Path:
        """The trust roots for clients: only this CA (nothing real is reachable from the rehearsal)."""
        return self.ca_cert_path

    def leaf(self, host: str) -> LeafCertificate:
        """The key and certificate for `host` (an exact DNS name or an IP address), created once."""
        name = _normalise(host)
        with self._lock:
            cached = self._leaves.get(name)
            if cached is None:
                cached = self._existing_leaf(name) or self._create_leaf(name)
                self._leaves[name] = cached
            return cached

    def server_context(self, host: str, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A server-side TLS context presenting the leaf of `host`, offering `alpn` protocols."""
        leaf = self.leaf(host)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(leaf.cert_path, leaf.key_path)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this CA (for tests talking to the proxy directly)."""
        return ssl.create_default_context(cafile=str(self.bundle_path))

    # -- openssl --------------------------------------------------------------------------------

    def _create_ca(self) -> None:
        extensions = self.folder / "ca.ext"
        extensions.write_text(_CA_EXTENSIONS)
        csr = self.folder / "ca.csr"
        self._openssl(_new_key_request(self.ca_key_path, csr, self._common_name, self._config))
        self._openssl(
            [
                "x509",
                "-req",
                "-in",
                str(csr),
                "-signkey",
                str(self.ca_key_path),
                "-out",
                str(self.ca_cert_path),
                "-days",
                str(_CA_DAYS),
                "-sha256",
                "-set_serial",
                _serial(),
                "-extfile",
                str(extensions),
            ]  # fmt: skip
        )
        csr.unlink()
        # Leaves signed by an earlier CA in this folder would no longer verify.
        shutil.rmtree(self.folder / "leaves", ignore_errors=True)

    def _existing_leaf(self, name: str) -> LeafCertificate | None:
        leaf = _leaf_paths(self.folder, name)
        if leaf.cert_path.exists() and leaf.key_path.exists():
            return leaf
        return None

    def _create_leaf(self, name: str) -> LeafCertificate:
        leaf = _leaf_paths(self.folder, name)
        leaf.cert_path.parent.mkdir(parents=True, exist_ok=True)
        san = f"IP:{name}" if _is_ip(name) else f"DNS:{name}"
        extensions = leaf.cert_path.with_suffix(".ext")
        extensions.write_text(_LEAF_EXTENSIONS.format(san=san))
        csr = leaf.cert_path.with_suffix(".csr")
        self._openssl(_new_key_request(leaf.key_path, csr, name, self._config))
        partial = leaf.cert_path.with_suffix(".tmp")
        self._openssl(
            [
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(self.ca_cert_path),
                "-CAkey",
                str(self.ca_key_path),
                "-out",
                str(partial),
                "-days",
                str(_LEAF_DAYS),
                "-sha256",
                "-set_serial",
                _serial(),
                "-extfile",
                str(extensions),
            ]  # fmt: skip
        )
        partial.replace(leaf.cert_path)  # the certificate appears only when complete
        csr.unlink()
        extensions.unlink()
        return leaf

    def _openssl(self, args: list[str]) -> None:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CertificateError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_key_request(key: Path, csr: Path, common_name: str, config: Path) -> list[str]:
    return [
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={common_name}", "-config", str(config),
    ]  # fmt: skip


def _leaf_paths(folder: Path, name: str) -> LeafCertificate:
    leaves = folder / "leaves"
    return LeafCertificate(name, leaves / f"{name}.pem", leaves / f"{name}.key")


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _normalise(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    if _is_ip(name) or _DNS_NAME.match(name):
        return name
    raise CertificateError(f"cannot issue a certificate for {host!r}: only exact DNS names or IPs (no wildcards)")
