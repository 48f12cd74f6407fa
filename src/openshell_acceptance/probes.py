"""Probes of the gateway's listeners: health in plaintext, gRPC over mutual TLS.

Each probe makes one bounded attempt and returns what it saw as a value; none
raises for a refusal, because a refusal is what several scenarios expect.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from openshell._proto import openshell_pb2, openshell_pb2_grpc

# The fixed client preface of HTTP/2 followed by an empty SETTINGS frame: the
# first bytes any gRPC client sends once the connection is up.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_FRAME_HEADER = 9
_SETTINGS = 0x04

GRPC_CONTENT_TYPE = "application/grpc"

# How a TLS exchange ended.
SERVED = "served"
ALERTED = "refused with a TLS alert"
# An abrupt close and a reset both read as CLOSED through the ssl module of
# some builds, which report a reset under an SSL read as an EOF.
CLOSED = "closed without a TLS alert"
RESET = "reset by the server"
TIMED_OUT = "timed out"
UNREACHABLE = "no TCP connection"
CLIENT_FAILED = "failed on the client side"

# Where a TLS exchange ended.
AT_CONNECT = "TCP connect"
AT_HANDSHAKE = "TLS handshake"
AT_FIRST_FRAME = "first HTTP/2 frame"

# OpenSSL names an alert it received from the peer SSLV3_ALERT_*, TLSV1_ALERT_*
# or TLSV13_ALERT_* (a few TLSV1_* lack the ALERT_ part); alerts it sends
# itself show up under other reasons, so the prefix tells who spoke.
_RECEIVED_ALERT = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z0-9_]+)$")
_ALERT_IN_MESSAGE = re.compile(r"\b(?:sslv3|tlsv1|tlsv13) alert ([a-z0-9 ]+)")


# Health


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


# Plaintext against a TLS listener


@dataclass(frozen=True)
class HttpAttempt:
    """One plaintext HTTP request: the status it got, or how it failed."""

    url: str
    status_code: int | None = None
    failure: str | None = None
    detail: str = ""

    @property
    def connected(self) -> bool:
        """Whether TCP got through: only connect errors happen before that."""
        return self.failure not in ("ConnectError", "ConnectTimeout")


def plaintext_http(
    host: str, port: int, path: str = "/", *, timeout: float = 5.0
) -> HttpAttempt:
    """A GET over ``http://``; a TLS-only listener should give no HTTP answer."""
    url = f"http://{host}:{port}{path}"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.TransportError as exc:
        return HttpAttempt(url, failure=type(exc).__name__, detail=str(exc))
    return HttpAttempt(
        url, status_code=response.status_code, detail=response.text[:200]
    )


@dataclass(frozen=True)
class GrpcAttempt:
    """One gRPC ``Health`` call: the status it answered, or the gRPC error."""

    target: str
    status: str | None = None
    code: str | None = None
    details: str = ""


def plaintext_grpc_health(host: str, port: int, *, timeout: float = 5.0) -> GrpcAttempt:
    """``Health`` on an insecure channel, failing fast instead of waiting."""
    target = f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        stub = openshell_pb2_grpc.OpenShellStub(channel)
        try:
            answer = stub.Health(openshell_pb2.HealthRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            code, details = exc.code().name, exc.details() or ""
            return GrpcAttempt(target, code=code, details=details)
    return GrpcAttempt(target, status=openshell_pb2.ServiceStatus.Name(answer.status))


def accepts_tcp(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# The TLS handshake and the first exchange


@dataclass(frozen=True)
class TlsExchange:
    """The outcome of a TLS handshake followed by an HTTP/2 preface.

    ``outcome`` is one of the module's SERVED, ALERTED, CLOSED, RESET,
    TIMED_OUT, UNREACHABLE or CLIENT_FAILED; ``stage`` says where it ended;
    ``alert`` is the TLS alert the server sent, named as in RFC 8446.
    """

    accepted: bool
    version: str | None = None
    cipher: str | None = None
    peer_subject: str | None = None
    peer_issuer: str | None = None
    error: str | None = None
    outcome: str = ""
    stage: str = ""
    alert: str | None = None

    @property
    def handshake_completed(self) -> bool:
        """Whether the client's side of the handshake finished."""
        return self.stage == AT_FIRST_FRAME


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
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return _ended(exc, AT_CONNECT)
    with raw:
        try:
            # Ragged EOFs are not suppressed: an abrupt close after the
            # handshake must read as such, not as an orderly end of data.
            tls = context.wrap_socket(
                raw, server_hostname=server_name, suppress_ragged_eofs=False
            )
        except OSError as exc:
            return _ended(exc, AT_HANDSHAKE)
        with tls:
            session = _session_facts(tls)
            try:
                tls.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
            except OSError as exc:
                return _after_failed_send(tls, exc, session)
            try:
                first = _read_up_to(tls, _FRAME_HEADER)
            except OSError as exc:
                return _ended(exc, AT_FIRST_FRAME, **session)
    if len(first) == _FRAME_HEADER and first[3] == _SETTINGS:
        return TlsExchange(True, outcome=SERVED, stage=AT_FIRST_FRAME, **session)
    if not first:
        # An orderly close_notify and an abrupt close both read as no bytes on
        # some Python builds (3.11.2 among them), so neither is claimed here.
        return TlsExchange(
            False,
            error="the server closed the connection before any frame",
            outcome=CLOSED,
            stage=AT_FIRST_FRAME,
            **session,
        )
    return TlsExchange(
        False,
        error=f"the server's first bytes are not an HTTP/2 SETTINGS frame: {first!r}",
        outcome=CLIENT_FAILED,
        stage=AT_FIRST_FRAME,
        **session,
    )


def plaintext_exchange(host: str, port: int, timeout: float = 5.0) -> TlsExchange:
    """Send the HTTP/2 preface in clear and see whether a frame comes back."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
            first = raw.recv(_FRAME_HEADER)
    except OSError as exc:
        return TlsExchange(False, error=exc.strerror or str(exc))
    if len(first) == _FRAME_HEADER and first[3] == _SETTINGS:
        return TlsExchange(True)
    if not first:
        return TlsExchange(False, error="connection closed by the server")
    return TlsExchange(False, error=f"server answered non-HTTP/2 bytes {first[:5]!r}")


def received_alert(exc: ssl.SSLError) -> str | None:
    """The TLS alert the peer sent, as RFC 8446 names it, if ``exc`` is one."""
    match = _RECEIVED_ALERT.match(exc.reason or "")
    if match:
        return match.group(1).lower()
    found = _ALERT_IN_MESSAGE.search(str(exc))
    return found.group(1).strip().replace(" ", "_") if found else None


def _ended(exc: OSError, stage: str, **session: str | None) -> TlsExchange:
    """Classify how an exchange ended from the exception that ended it."""
    alert = received_alert(exc) if isinstance(exc, ssl.SSLError) else None
    error = exc.strerror or str(exc) or type(exc).__name__
    if alert is not None:
        outcome, error = ALERTED, str(exc)
    elif isinstance(exc, ssl.SSLEOFError):
        outcome, error = CLOSED, _ssl_reason(exc)
    elif isinstance(exc, ssl.SSLError):
        outcome, error = CLIENT_FAILED, _ssl_reason(exc)
    elif isinstance(exc, TimeoutError):
        outcome = TIMED_OUT
    elif stage == AT_CONNECT:
        outcome = UNREACHABLE
    elif isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        outcome = RESET
    else:
        outcome = CLIENT_FAILED
    return TlsExchange(
        False, error=error, outcome=outcome, stage=stage, alert=alert, **session
    )


def _after_failed_send(
    tls: ssl.SSLSocket, failure: OSError, session: dict[str, str | None]
) -> TlsExchange:
    """Read what the server said before the connection broke under our write.

    A server that refuses the client sends its alert and closes; when its
    reset arrives before the preface is written, the write fails while the
    alert still waits, unread, in the receive buffer.
    """
    try:
        tls.recv(_FRAME_HEADER)
    except ssl.SSLError as exc:
        if received_alert(exc) is not None:
            return _ended(exc, AT_FIRST_FRAME, **session)
    except OSError:
        pass
    return _ended(failure, AT_FIRST_FRAME, **session)


def _session_facts(tls: ssl.SSLSocket | ssl.SSLObject) -> dict[str, str | None]:
    cipher = tls.cipher()
    der = tls.getpeercert(binary_form=True)
    peer = x509.load_der_x509_certificate(der) if der else None
    return {
        "version": tls.version(),
        "cipher": cipher[0] if cipher else None,
        "peer_subject": peer.subject.rfc4514_string() if peer else None,
        "peer_issuer": peer.issuer.rfc4514_string() if peer else None,
    }


def _read_up_to(tls: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = tls.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return exc.reason or str(exc)


# A gRPC call over HTTP/2 on TLS, seen from the HTTP side


@dataclass(frozen=True)
class TlsSession:
    """A gRPC call made as a plain HTTP/2 request over a verified TLS session."""

    url: str
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    peer_certificate: bytes | None = None
    http_version: str | None = None
    status_code: int | None = None
    content_type: str | None = None
    grpc_status: str | None = None
    messages: tuple[bytes, ...] = ()
    error: str | None = None

    @property
    def peer(self) -> x509.Certificate | None:
        if self.peer_certificate is None:
            return None
        return x509.load_der_x509_certificate(self.peer_certificate)


def client_context(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client context that trusts ``ca`` and nothing else, checking names.

    The lowest version is left to the library, so that the version a session
    ends up with is the server's choice rather than this client's floor.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.load_verify_locations(cafile=str(ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def grpc_over_http2(
    host: str,
    port: int,
    method: str,
    *,
    ca: Path,
    cert: Path | None = None,
    key: Path | None = None,
    message: bytes = b"",
    timeout: float = 5.0,
) -> TlsSession:
    """POST one unary gRPC request with httpx over HTTP/2, and read the session.

    The TLS facts come from the very connection that carried the request.
    Trailers are out of reach through httpx, so ``grpc_status`` is only set
    when the server answered trailers-only, which is how gRPC reports errors.
    """
    url = f"https://{host}:{port}{method}"
    headers = {"content-type": GRPC_CONTENT_TYPE, "te": "trailers"}
    context = client_context(ca, cert, key)
    try:
        with httpx.Client(
            http1=False, http2=True, verify=context, timeout=timeout
        ) as client:
            response = client.post(url, headers=headers, content=grpc_frame(message))
            tls = response.extensions["network_stream"].get_extra_info("ssl_object")
            cipher = tls.cipher() if tls is not None else None
            facts = {
                "version": tls.version() if tls is not None else None,
                "cipher": cipher[0] if cipher else None,
                "alpn": tls.selected_alpn_protocol() if tls is not None else None,
                "peer_certificate": (
                    tls.getpeercert(True) if tls is not None else None
                ),
            }
    except httpx.TransportError as exc:
        return TlsSession(url, error=f"{type(exc).__name__}: {exc}")

    try:
        messages = tuple(grpc_messages(response.content))
        problem = None
    except ValueError as exc:
        messages, problem = (), str(exc)
    return TlsSession(
        url,
        http_version=response.http_version,
        status_code=response.status_code,
        content_type=response.headers.get("content-type"),
        grpc_status=response.headers.get("grpc-status"),
        messages=messages,
        error=problem,
        **facts,
    )


def grpc_frame(message: bytes = b"") -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_messages(body: bytes) -> list[bytes]:
    """Split a gRPC body into its messages; ValueError if it is not one."""
    messages = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < 5:
            raise ValueError(f"{len(body) - offset} stray bytes after the last message")
        if body[offset] != 0:
            raise ValueError(f"a message with compression flag {body[offset]}")
        size = int.from_bytes(body[offset + 1 : offset + 5], "big")
        end = offset + 5 + size
        if end > len(body):
            raise ValueError(f"a message of {size} bytes cut short at {len(body)}")
        messages.append(body[offset + 5 : end])
        offset = end
    return messages


def issued_by(certificate: x509.Certificate, ca: Path) -> bool:
    """Whether ``ca`` issued ``certificate``: issuer name and signature both."""
    authority = x509.load_pem_x509_certificate(ca.read_bytes())
    if certificate.issuer != authority.subject:
        return False
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
