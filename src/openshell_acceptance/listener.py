"""The gateway's listener as a client meets it: health port, gRPC port, registration.

Every function takes the scenario's ``Deployment`` once its gateway is up and
returns plain values for the steps to assert on and attach as evidence.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from openshell import SandboxClient
from openshell._proto import openshell_pb2
from openshell.sandbox import SandboxError

from . import pki as pki_module
from . import probes
from ._env import environment
from .deployment import Deployment

LOOPBACK = "127.0.0.1"

HEALTH_PROBES: Mapping[str, str] = {"liveness": "/healthz", "readiness": "/readyz"}
"""The health listener's paths, by the probe they serve."""

HEALTH_METHOD = "/openshell.v1.OpenShell/Health"

# Clients the gateway must refuse, and the suite's own, which it must serve.
NO_CERTIFICATE = "no certificate"
FOREIGN_CA = "another CA"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
SUITE_CLIENT = "the suite's client"
UNTRUSTED_CALLERS = (NO_CERTIFICATE, FOREIGN_CA, EXPIRED, NOT_YET_VALID)

# The registration's client material, by file, and the suite's file it copies.
REGISTRATION_MATERIAL: Mapping[str, str] = {
    "ca.crt": "ca_cert",
    "tls.crt": "client_cert",
    "tls.key": "client_key",
}


def _ready(deployment: Deployment) -> tuple[pki_module.Pki, int, int]:
    settings, pki = deployment.settings, deployment.pki
    assert settings is not None and pki is not None, "start the gateway first"
    return pki, settings.port, settings.health_port


# The health port


def health_answers(deployment: Deployment) -> dict[str, probes.HealthAnswer]:
    """Each health probe's plaintext answer, by probe name."""
    _, _, health_port = _ready(deployment)
    return {
        name: probes.health(health_port, path, host=LOOPBACK)
        for name, path in HEALTH_PROBES.items()
    }


# Plaintext on the gRPC port


@dataclass(frozen=True)
class PlaintextAttempts:
    """What plaintext clients got from the gRPC port."""

    accepts_tcp: bool
    http: probes.HttpAttempt
    grpc: probes.GrpcAttempt


def plaintext_attempts(deployment: Deployment) -> PlaintextAttempts:
    """A TCP connect, a plaintext HTTP GET and a plaintext gRPC call."""
    _, port, _ = _ready(deployment)
    return PlaintextAttempts(
        accepts_tcp=probes.accepts_tcp(LOOPBACK, port),
        http=probes.plaintext_http(LOOPBACK, port),
        grpc=probes.plaintext_grpc_health(LOOPBACK, port),
    )


def http_rows(attempt: probes.HttpAttempt) -> list[tuple[str, object]]:
    return [
        ("request", f"GET {attempt.url}"),
        ("HTTP status", attempt.status_code or "(none)"),
        ("failure", f"{attempt.failure}: {attempt.detail}" if attempt.failure else ""),
    ]


def grpc_rows(attempt: probes.GrpcAttempt) -> list[tuple[str, object]]:
    return [
        ("call", f"Health on an insecure channel to {attempt.target}"),
        ("answer", attempt.status or "(none)"),
        ("failure", f"{attempt.code}: {attempt.details}" if attempt.code else ""),
    ]


# Callers that present a client certificate, or none


@dataclass(frozen=True)
class Caller:
    """A TLS client of the gateway and the identity it presents, if any."""

    kind: str
    cert: Path | None
    key: Path | None


def caller(deployment: Deployment, kind: str) -> Caller:
    """A caller of ``kind``: one of UNTRUSTED_CALLERS, or SUITE_CLIENT."""
    pki, _, _ = _ready(deployment)
    directory = deployment.workdir / "callers" / kind.replace(" ", "-")
    now = dt.datetime.now(dt.timezone.utc)
    if kind == SUITE_CLIENT:
        return Caller(kind, pki.client_cert, pki.client_key)
    if kind == NO_CERTIFICATE:
        return Caller(kind, None, None)
    if kind == FOREIGN_CA:
        authority = pki_module.create_foreign_ca(directory / "ca")
        cert, key = pki_module.issue_client_certificate(authority, directory)
    elif kind == EXPIRED:
        cert, key = pki_module.issue_client_certificate(
            pki,
            directory,
            not_before=now - dt.timedelta(days=30),
            not_after=now - dt.timedelta(days=1),
        )
    elif kind == NOT_YET_VALID:
        cert, key = pki_module.issue_client_certificate(
            pki,
            directory,
            not_before=now + dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=30),
        )
    else:
        raise ValueError(f"unknown caller {kind!r}")
    return Caller(kind, cert, key)


def exchange(deployment: Deployment, who: Caller) -> probes.TlsExchange:
    """``who`` handshakes with the gRPC port and waits for the first frame.

    The server name is the loopback address the CLI registration uses.
    """
    pki, port, _ = _ready(deployment)
    return probes.tls_exchange(
        LOOPBACK,
        port,
        ca=pki.ca_cert,
        cert=who.cert,
        key=who.key,
        server_name=LOOPBACK,
    )


def exchange_rows(exchange: probes.TlsExchange) -> list[tuple[str, object]]:
    return [
        ("outcome", exchange.outcome),
        ("ended at", exchange.stage),
        ("TLS alert from the server", exchange.alert or "(none)"),
        ("error", exchange.error or ""),
        ("client handshake completed", exchange.handshake_completed),
        ("TLS version", exchange.version),
        ("cipher", exchange.cipher),
        ("gateway certificate subject", exchange.peer_subject),
        ("gateway certificate issuer", exchange.peer_issuer),
    ]


# A gRPC call as plain HTTP/2 over TLS


@dataclass(frozen=True)
class HealthOverTls:
    """The Health method called over HTTP/2 on TLS, and what the session was."""

    session: probes.TlsSession
    ca_subject: str
    issued_by_suite_ca: bool
    health_status: str | None
    problem: str | None

    @property
    def peer_subject(self) -> str | None:
        peer = self.session.peer
        return peer.subject.rfc4514_string() if peer else None

    @property
    def peer_issuer(self) -> str | None:
        peer = self.session.peer
        return peer.issuer.rfc4514_string() if peer else None


def health_over_tls(deployment: Deployment) -> HealthOverTls:
    """Call Health with the suite's client certificate, trusting only its CA."""
    pki, port, _ = _ready(deployment)
    session = probes.grpc_over_http2(
        LOOPBACK,
        port,
        HEALTH_METHOD,
        ca=pki.ca_cert,
        cert=pki.client_cert,
        key=pki.client_key,
    )
    authority = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    peer = session.peer
    status, problem = _health_status(session)
    return HealthOverTls(
        session=session,
        ca_subject=authority.subject.rfc4514_string(),
        issued_by_suite_ca=peer is not None and probes.issued_by(peer, pki.ca_cert),
        health_status=status,
        problem=problem,
    )


def _health_status(session: probes.TlsSession) -> tuple[str | None, str | None]:
    if session.error is not None:
        return None, session.error
    problems = []
    if session.http_version != "HTTP/2":
        problems.append(f"answered over {session.http_version}")
    if session.status_code != 200:
        problems.append(f"HTTP status {session.status_code}")
    if not (session.content_type or "").startswith(probes.GRPC_CONTENT_TYPE):
        problems.append(f"content-type {session.content_type}")
    if session.grpc_status not in (None, "0"):
        problems.append(f"grpc-status {session.grpc_status}")
    if len(session.messages) != 1:
        problems.append(f"{len(session.messages)} messages instead of one")
    if problems:
        return None, "; ".join(problems)
    answer = openshell_pb2.HealthResponse.FromString(session.messages[0])
    return openshell_pb2.ServiceStatus.Name(answer.status), None


def certificate_rows(view: HealthOverTls) -> list[tuple[str, object]]:
    return [
        ("gateway certificate subject", view.peer_subject),
        ("gateway certificate issuer", view.peer_issuer),
        ("suite CA subject", view.ca_subject),
        ("signed by the suite CA", view.issued_by_suite_ca),
        ("trusted for the handshake", "the suite CA only"),
        ("TLS error", view.session.error or ""),
    ]


def tls_rows(view: HealthOverTls) -> list[tuple[str, object]]:
    session = view.session
    return [
        ("TLS version", session.version),
        ("cipher", session.cipher),
        ("ALPN", session.alpn),
    ]


def grpc_answer_rows(view: HealthOverTls) -> list[tuple[str, object]]:
    session = view.session
    return [
        ("request", f"POST {session.url}"),
        ("HTTP version", session.http_version),
        ("HTTP status", session.status_code),
        ("content-type", session.content_type),
        ("gRPC messages", len(session.messages)),
        ("HealthResponse.status", view.health_status),
        ("problem", view.problem or ""),
    ]


# The CLI registration and the official SDK


@dataclass(frozen=True)
class MaterialFile:
    """One file of the registration's client material, compared with the suite's."""

    path: Path
    present: bool
    mode: str | None
    same_as_suite: bool


@dataclass(frozen=True)
class RegistrationView:
    """The CLI registration of the scenario's gateway, as read from disk."""

    name: str
    metadata: Mapping[str, object]
    active_gateway: str | None
    material: Mapping[str, MaterialFile]

    @property
    def fields(self) -> dict[str, str]:
        """Metadata values as their JSON text, strings without quotes."""
        return {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in self.metadata.items()
        }


def registration_view(deployment: Deployment) -> RegistrationView:
    pki, _, _ = _ready(deployment)
    registration = deployment.registration
    assert registration is not None, "register the gateway first"
    metadata = json.loads(registration.metadata.read_text(encoding="utf-8"))
    active = registration.config_home / "openshell" / "active_gateway"
    material = {}
    for name, attribute in REGISTRATION_MATERIAL.items():
        path = registration.mtls_dir / name
        source: Path = getattr(pki, attribute)
        present = path.is_file()
        material[name] = MaterialFile(
            path=path,
            present=present,
            mode=oct(stat.S_IMODE(path.stat().st_mode)) if present else None,
            same_as_suite=present and path.read_bytes() == source.read_bytes(),
        )
    return RegistrationView(
        name=registration.name,
        metadata=metadata,
        active_gateway=(
            active.read_text(encoding="utf-8").strip() if active.is_file() else None
        ),
        material=material,
    )


def material_rows(view: RegistrationView) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for name, item in view.material.items():
        state = (
            f"mode {item.mode}, identical to the suite's: {item.same_as_suite}"
            if item.present
            else "missing"
        )
        rows.append((f"mtls/{name}", state))
    return rows


@dataclass(frozen=True)
class SdkHealth:
    """What the official SDK's Health call answered through the registration."""

    endpoint: str
    status: str | None
    version: str = ""
    error: str | None = None


def sdk_health(deployment: Deployment, timeout: float = 10.0) -> SdkHealth:
    """Health through ``SandboxClient.from_active_cluster()``, as a user calls it.

    No gateway name is passed, so the SDK has to find it in ``active_gateway``
    under the registration's configuration home.
    """
    registration = deployment.registration
    assert registration is not None, "register the gateway first"
    endpoint = registration.endpoint
    try:
        with _user_environment(registration.config_home):
            client = SandboxClient.from_active_cluster(timeout=timeout)
    except SandboxError as exc:
        return SdkHealth(endpoint, None, error=f"the SDK found no gateway: {exc}")
    with client:
        try:
            answer = client.health()
        except grpc.RpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
            return SdkHealth(endpoint, None, error=error)
    status = openshell_pb2.ServiceStatus.Name(answer.status)
    return SdkHealth(endpoint, status, version=answer.version)


def _user_environment(config_home: Path):
    """Point the SDK at ``config_home`` with nothing overriding its choice.

    The SDK prefers ``OPENSHELL_GATEWAY`` to ``active_gateway``, so it is
    hidden for the duration.
    """
    return environment(OPENSHELL_GATEWAY=None, XDG_CONFIG_HOME=str(config_home))


def sdk_rows(answer: SdkHealth) -> list[tuple[str, object]]:
    return [
        ("endpoint", answer.endpoint),
        ("HealthResponse.status", answer.status or "(none)"),
        ("version", answer.version),
        ("error", answer.error or ""),
    ]
