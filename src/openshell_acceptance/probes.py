"""Probes of the gateway's listeners: health in plaintext, gRPC over mutual TLS."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

# The fixed client preface of HTTP/2 followed by an empty SETTINGS frame: the
# first bytes any gRPC client sends once the connection is up.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class HealthAnswer:
    """What one plaintext health request returned."""

    url: str
    status_code: int
    body: str


def health(port: int, path: str = "/healthz", host: str = "127.0.0.1") -> HealthAnswer:
    """One plaintext GET on the health listener."""
    url = f"http://{host}:{port}{path}"
    response = httpx.get(url, timeout=5.0)
    return HealthAnswer(url, response.status_code, response.text[:200])


@dataclass(frozen=True)
class TlsExchange:
    """The outcome of a TLS handshake followed by an HTTP/2 preface."""

    accepted: bool
    version: str | None = None
    cipher: str | None = None
    peer_subject: str | None = None
    peer_issuer: str | None = None
    error: str | None = None


def tls_exchange(
    host: str,
    port: int,
    *,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str = "localhost",
    timeout: float = 5.0,
) -> TlsExchange:
    """Handshake, send the HTTP/2 preface, and read the server's first frame.

    Under TLS 1.3 the client's side of the handshake can finish before the
    server has judged the client certificate, so a refusal shows up only on
    the first read; this probe therefore counts as accepted only a connection
    on which the server answered with a frame of its own.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))

    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                version, cipher = tls.version(), tls.cipher()[0]
                peer = tls.getpeercert() or {}
                tls.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
                first = tls.recv(9)
                if len(first) < 9 or first[3] != 0x04:
                    return TlsExchange(
                        False, version, cipher, error="connection closed by the server"
                    )
                return TlsExchange(
                    True,
                    version,
                    cipher,
                    peer_subject=_name(peer.get("subject", ())),
                    peer_issuer=_name(peer.get("issuer", ())),
                )
    except ssl.SSLError as exc:
        return TlsExchange(False, error=_ssl_reason(exc))
    except OSError as exc:
        return TlsExchange(False, error=exc.strerror or str(exc))


def plaintext_exchange(host: str, port: int, timeout: float = 5.0) -> TlsExchange:
    """Send the HTTP/2 preface in clear and see whether a frame comes back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
            first = raw.recv(9)
    except OSError as exc:
        return TlsExchange(False, error=exc.strerror or str(exc))
    if len(first) == 9 and first[3] == 0x04:
        return TlsExchange(True)
    if not first:
        return TlsExchange(False, error="connection closed by the server")
    return TlsExchange(False, error=f"server answered non-HTTP/2 bytes {first[:5]!r}")


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return exc.reason or str(exc)


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
}


def _name(rdns: tuple) -> str:
    parts = []
    for rdn in rdns:
        for attribute, value in rdn:
            parts.append(f"{_SHORT_NAMES.get(attribute, attribute)}={value}")
    return ",".join(parts)
