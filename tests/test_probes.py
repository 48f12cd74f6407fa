"""The listener probes against local servers on 127.0.0.1, no Podman needed."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from cryptography import x509
from hamcrest import assert_that
from openshell._proto import openshell_pb2, openshell_pb2_grpc

from openshell_acceptance import listener, pki, probes
from openshell_acceptance import listener_matchers as matches

PREFACE = probes.HTTP2_PREFACE + probes.EMPTY_SETTINGS_FRAME
SERVER_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def suite_pki(tmp_path_factory) -> pki.Pki:
    return pki.create_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> pki.CertificateAuthority:
    return pki.create_foreign_ca(tmp_path_factory.mktemp("foreign"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# What the ``local_server`` fixture's loopback servers do with a connection


def _server_context(material: pki.Pki, *, verify: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(material.server_cert), str(material.server_key))
    context.set_alpn_protocols(["h2"])
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(material.ca_cert))
    return context


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serving_h2(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    """Verify the client like OpenSSL does, then answer the preface."""

    def handle(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except ssl.SSLError:
            return
        with tls:
            if _read(tls, len(PREFACE)) == PREFACE:
                tls.sendall(SERVER_SETTINGS)
                _read(tls, 1)

    return handle


def ending_after_handshake(
    context: ssl.SSLContext, *, reset: bool
) -> Callable[[socket.socket], None]:
    """Complete the handshake, take the preface, then close or reset, no alert."""

    def handle(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)
        _read(tls, len(PREFACE))
        if reset:
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()

    return handle


def silent(stopped: threading.Event) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        stopped.wait(5.0)

    return handle


class _Health(openshell_pb2_grpc.OpenShellServicer):
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse

    def Health(self, request, context):  # noqa: N802 - gRPC method names
        if self.refuse:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
        return openshell_pb2.HealthResponse(
            status=openshell_pb2.SERVICE_STATUS_HEALTHY, version="test"
        )


@pytest.fixture
def grpc_gateway(suite_pki) -> Iterator[Callable[..., int]]:
    """gRPC servers like the reference gateway's: grpcio, mutual TLS."""
    servers = []

    def start(*, refuse: bool = False) -> int:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        openshell_pb2_grpc.add_OpenShellServicer_to_server(_Health(refuse), server)
        credentials = grpc.ssl_server_credentials(
            [(suite_pki.server_key.read_bytes(), suite_pki.server_cert.read_bytes())],
            root_certificates=suite_pki.ca_cert.read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None).wait(5.0)


def _health_over_http2(
    port: int, ca: Path, client: pki.Pki | None = None
) -> probes.TlsSession:
    """``Health`` over HTTP/2 trusting ``ca``, with ``client``'s certificate if any."""
    return probes.grpc_over_http2(
        "127.0.0.1",
        port,
        listener.HEALTH_METHOD,
        ca=ca,
        cert=client.client_cert if client else None,
        key=client.client_key if client else None,
    )


def _client(suite_pki, kind: str, tmp_path: Path, foreign) -> tuple:
    if kind == "suite":
        return suite_pki.client_cert, suite_pki.client_key
    if kind == "none":
        return None, None
    if kind == "foreign":
        return pki.issue_client_certificate(foreign, tmp_path / kind)
    if kind == "expired":
        return pki.issue_client_certificate(
            suite_pki,
            tmp_path / kind,
            not_before=_now() - dt.timedelta(days=3),
            not_after=_now() - dt.timedelta(days=1),
        )
    return pki.issue_client_certificate(
        suite_pki,
        tmp_path / kind,
        not_before=_now() + dt.timedelta(days=1),
        not_after=_now() + dt.timedelta(days=3),
    )


# tls_exchange against a server whose TLS library sends alerts


def test_a_trusted_client_is_served_and_sees_the_server_certificate(
    suite_pki, local_server
):
    with local_server(serving_h2(_server_context(suite_pki, verify=True))) as server:
        result = probes.tls_exchange(
            "127.0.0.1",
            server.port,
            ca=suite_pki.ca_cert,
            cert=suite_pki.client_cert,
            key=suite_pki.client_key,
            server_name="127.0.0.1",
        )

    assert result.accepted and result.outcome == probes.SERVED
    assert result.version == "TLSv1.3" and result.handshake_completed
    assert result.peer_subject == "CN=openshell-server"
    assert result.peer_issuer == "O=openshell,CN=openshell-ca"
    assert_that(result, matches.served())


@pytest.mark.parametrize(
    "kind, alerts",
    [
        ("none", {"certificate_required"}),
        ("foreign", {"unknown_ca"}),
        ("expired", {"certificate_expired"}),
        # RFC 8446 files "not yet valid" under certificate_expired; OpenSSL
        # builds have also answered bad_certificate.
        ("future", {"certificate_expired", "bad_certificate"}),
    ],
)
def test_a_refused_client_reads_the_server_alert_on_the_first_exchange(
    suite_pki, foreign, tmp_path, local_server, kind, alerts
):
    cert, key = _client(suite_pki, kind, tmp_path, foreign)
    with local_server(serving_h2(_server_context(suite_pki, verify=True))) as server:
        result = probes.tls_exchange(
            "127.0.0.1", server.port, ca=suite_pki.ca_cert, cert=cert, key=key
        )

    assert result.outcome == probes.ALERTED, result
    assert result.alert in alerts
    assert result.stage == probes.AT_FIRST_FRAME and result.version == "TLSv1.3"
    assert_that(result, matches.refused_with_tls_alert())
    assert_that(result, matches.refused_at_handshake())


# tls_exchange against servers that end the session in other ways


@pytest.mark.parametrize(
    "reset, outcomes",
    [(False, {probes.CLOSED}), (True, {probes.CLOSED, probes.RESET})],
)
def test_a_server_ending_the_session_without_an_alert_is_told_apart(
    suite_pki, local_server, reset, outcomes
):
    handle = ending_after_handshake(
        _server_context(suite_pki, verify=False), reset=reset
    )
    with local_server(handle) as server:
        result = probes.tls_exchange("127.0.0.1", server.port, ca=suite_pki.ca_cert)

    assert result.outcome in outcomes, result
    assert result.alert is None and result.handshake_completed
    assert_that(result, matches.refused_at_handshake())
    with pytest.raises(AssertionError, match="without a TLS alert|reset"):
        assert_that(result, matches.refused_with_tls_alert())


def test_nothing_listening_is_no_tcp_connection(suite_pki, free_port):
    result = probes.tls_exchange("127.0.0.1", free_port(), ca=suite_pki.ca_cert)

    assert result.outcome == probes.UNREACHABLE and result.stage == probes.AT_CONNECT
    with pytest.raises(AssertionError, match="no TCP connection"):
        assert_that(result, matches.refused_at_handshake())


def test_a_server_the_client_does_not_trust_fails_on_the_client_side(
    suite_pki, foreign, local_server
):
    with local_server(serving_h2(_server_context(suite_pki, verify=False))) as server:
        result = probes.tls_exchange("127.0.0.1", server.port, ca=foreign.cert)

    assert result.outcome == probes.CLIENT_FAILED
    assert result.stage == probes.AT_HANDSHAKE
    assert "certificate verify failed" in (result.error or "")
    with pytest.raises(AssertionError, match="failed on the client side"):
        assert_that(result, matches.refused_at_handshake())


def test_a_server_that_never_answers_times_out_within_the_bound(
    suite_pki, local_server
):
    stopped = threading.Event()
    with local_server(silent(stopped)) as server:
        result = probes.tls_exchange(
            "127.0.0.1", server.port, ca=suite_pki.ca_cert, timeout=0.3
        )
        stopped.set()

    assert result.outcome == probes.TIMED_OUT and result.stage == probes.AT_HANDSHAKE
    with pytest.raises(AssertionError, match="timed out"):
        assert_that(result, matches.refused_at_handshake())


# Against a grpcio server with mutual TLS, as the reference gateway runs one


def test_grpcio_refuses_an_untrusted_client_by_closing_without_an_alert(
    suite_pki, grpc_gateway
):
    port = grpc_gateway()

    result = probes.tls_exchange("127.0.0.1", port, ca=suite_pki.ca_cert)

    assert result.outcome == probes.CLOSED and result.handshake_completed
    assert_that(result, matches.refused_at_handshake())


def test_plaintext_http_and_grpc_get_no_answer_from_a_tls_port(grpc_gateway):
    port = grpc_gateway()

    http = probes.plaintext_http("127.0.0.1", port)
    call = probes.plaintext_grpc_health("127.0.0.1", port, timeout=3.0)

    assert probes.accepts_tcp("127.0.0.1", port)
    assert http.connected and http.status_code is None
    assert_that(http, matches.no_http_response())
    assert call.status is None
    assert_that(call, matches.grpc_failure("UNAVAILABLE"))


def test_plaintext_http_reports_a_status_where_one_is_served():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        attempt = probes.plaintext_http("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()

    assert attempt.status_code == 200 and attempt.failure is None
    with pytest.raises(AssertionError, match="answered HTTP 200"):
        assert_that(attempt, matches.no_http_response())


def test_plaintext_probes_name_a_port_nobody_listens_on(free_port):
    port = free_port()

    http = probes.plaintext_http("127.0.0.1", port)
    call = probes.plaintext_grpc_health("127.0.0.1", port, timeout=3.0)

    assert not probes.accepts_tcp("127.0.0.1", port)
    assert not http.connected
    with pytest.raises(AssertionError, match="no TCP connection"):
        assert_that(http, matches.no_http_response())
    assert call.code == "UNAVAILABLE"


def test_grpc_health_over_http2_carries_the_client_certificate(suite_pki, grpc_gateway):
    port = grpc_gateway()

    session = _health_over_http2(port, suite_pki.ca_cert, suite_pki)

    assert session.error is None, session.error
    assert session.http_version == "HTTP/2" and session.status_code == 200
    assert session.alpn == "h2" and session.version == "TLSv1.3"
    assert session.content_type == "application/grpc"
    assert len(session.messages) == 1
    answer = openshell_pb2.HealthResponse.FromString(session.messages[0])
    assert answer.status == openshell_pb2.SERVICE_STATUS_HEALTHY
    assert session.peer is not None
    assert probes.issued_by(session.peer, suite_pki.ca_cert)
    assert_that(session.version, matches.tls_version_at_least("TLS 1.2"))


def test_grpc_over_http2_without_a_client_certificate_gets_no_answer(
    suite_pki, grpc_gateway
):
    port = grpc_gateway()

    session = _health_over_http2(port, suite_pki.ca_cert)

    assert session.error is not None and session.status_code is None


def test_grpc_over_http2_reports_a_trailers_only_error(suite_pki, grpc_gateway):
    port = grpc_gateway(refuse=True)

    session = _health_over_http2(port, suite_pki.ca_cert, suite_pki)

    assert session.status_code == 200 and session.messages == ()
    assert session.grpc_status == str(grpc.StatusCode.PERMISSION_DENIED.value[0])


def test_grpc_over_http2_refuses_a_server_outside_the_trusted_ca(
    suite_pki, foreign, grpc_gateway
):
    port = grpc_gateway()

    session = _health_over_http2(port, foreign.cert, suite_pki)

    assert "CERTIFICATE_VERIFY_FAILED" in (session.error or "")
    assert session.version is None


# Pure helpers


def test_grpc_frames_round_trip():
    message = openshell_pb2.HealthResponse(status=1, version="v").SerializeToString()

    body = probes.grpc_frame(message) + probes.grpc_frame()

    assert probes.grpc_frame() == b"\x00\x00\x00\x00\x00"
    assert probes.grpc_messages(body) == [message, b""]


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"\x00\x00\x00", "stray bytes"),
        (b"\x01\x00\x00\x00\x00", "compression flag 1"),
        (b"\x00\x00\x00\x00\x09abc", "cut short"),
    ],
)
def test_grpc_messages_refuse_what_is_not_a_grpc_body(body, problem):
    with pytest.raises(ValueError, match=problem):
        probes.grpc_messages(body)


def test_issued_by_checks_the_issuer_and_the_signature(suite_pki, foreign):
    server = x509.load_pem_x509_certificate(suite_pki.server_cert.read_bytes())

    assert probes.issued_by(server, suite_pki.ca_cert)
    assert not probes.issued_by(server, foreign.cert)


def test_client_context_trusts_only_the_given_ca(suite_pki):
    context = probes.client_context(suite_pki.ca_cert)

    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(item["subject"][0]) for item in context.get_ca_certs()]
    assert subjects == [{"commonName": "openshell-ca"}]


@pytest.mark.parametrize(
    "reason, message, alert",
    [
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "", "certificate_required"),
        ("TLSV1_ALERT_UNKNOWN_CA", "", "unknown_ca"),
        ("SSLV3_ALERT_BAD_CERTIFICATE", "", "bad_certificate"),
        (None, "[SSL] tlsv1 alert access denied (_ssl.c:1)", "access_denied"),
        ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", None),
        ("UNEXPECTED_EOF_WHILE_READING", "EOF occurred", None),
    ],
)
def test_received_alert_names_only_alerts_from_the_peer(reason, message, alert):
    error = ssl.SSLError(1, message)
    error.reason = reason

    assert probes.received_alert(error) == alert


# The listener's callers, from the suite's PKI


def test_callers_carry_the_certificates_their_names_promise(suite_pki, tmp_path):
    deployment = SimpleNamespace(
        pki=suite_pki,
        settings=SimpleNamespace(port=1, health_port=2),
        workdir=tmp_path,
    )
    now = _now()

    def certificate(kind: str) -> x509.Certificate:
        made = listener.caller(deployment, kind)
        assert made.cert is not None and made.key is not None
        return x509.load_pem_x509_certificate(made.cert.read_bytes())

    suite_ca = x509.load_pem_x509_certificate(suite_pki.ca_cert.read_bytes())
    assert listener.caller(deployment, listener.NO_CERTIFICATE).cert is None
    assert certificate(listener.FOREIGN_CA).issuer != suite_ca.subject
    assert certificate(listener.EXPIRED).not_valid_after_utc < now
    assert certificate(listener.NOT_YET_VALID).not_valid_before_utc > now
    assert certificate(listener.SUITE_CLIENT).issuer == suite_ca.subject
    with pytest.raises(ValueError, match="unknown caller"):
        listener.caller(deployment, "someone")
