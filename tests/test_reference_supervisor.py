"""The sandbox supervisor: its environment and its one-line diagnoses."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import openshell  # noqa: F401 - the real SDK package, before the supervisor runs
import pytest

from openshell_reference.certs import generate_certs
from openshell_reference.supervisor import (
    EnvironmentIncomplete,
    diagnose,
    format_event,
    parse_endpoint,
    settings_from_env,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("supervisor") / "pki"
    generate_certs(root)
    return root


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("supervisor-other") / "pki"
    generate_certs(root)
    return root


def tls_env(pki: Path, endpoint: str = "https://localhost:1") -> dict[str, str]:
    return {
        "OPENSHELL_ENDPOINT": endpoint,
        "OPENSHELL_SANDBOX_ID": "id-1",
        "OPENSHELL_SANDBOX": "alpha",
        "OPENSHELL_TLS_CA": str(pki / "ca.crt"),
        "OPENSHELL_TLS_CERT": str(pki / "client/tls.crt"),
        "OPENSHELL_TLS_KEY": str(pki / "client/tls.key"),
    }


# The environment.


def test_an_https_endpoint_is_parsed_with_its_port():
    endpoint = parse_endpoint("https://host.containers.internal:17670")

    assert endpoint.tls
    assert endpoint.target == "host.containers.internal:17670"


def test_an_endpoint_without_a_port_gets_the_schemes_default():
    assert parse_endpoint("https://h").port == 443
    assert parse_endpoint("http://h").port == 80


def test_an_ipv6_endpoint_keeps_its_brackets_in_the_target():
    assert parse_endpoint("http://[fd00::1]:5").target == "[fd00::1]:5"


def test_a_bad_endpoint_is_refused_naming_the_variable():
    with pytest.raises(EnvironmentIncomplete, match="OPENSHELL_ENDPOINT="):
        parse_endpoint("grpc://h:1")


@pytest.mark.parametrize(
    "missing",
    [
        "OPENSHELL_ENDPOINT",
        "OPENSHELL_SANDBOX_ID",
        "OPENSHELL_TLS_CA",
        "OPENSHELL_TLS_CERT",
        "OPENSHELL_TLS_KEY",
    ],
)
def test_a_missing_variable_is_named(pki, missing):
    environ = tls_env(pki)
    del environ[missing]

    with pytest.raises(EnvironmentIncomplete) as caught:
        settings_from_env(environ)

    assert str(caught.value).startswith(f"{missing} is not set")
    assert caught.value.exit_code == 2


def test_an_unreadable_file_is_named_with_its_path(pki, tmp_path):
    environ = tls_env(pki)
    environ["OPENSHELL_TLS_KEY"] = str(tmp_path / "absent.key")

    with pytest.raises(EnvironmentIncomplete) as caught:
        settings_from_env(environ)

    assert str(caught.value) == (
        f"cannot read OPENSHELL_TLS_KEY={tmp_path / 'absent.key'}: "
        "No such file or directory"
    )


def test_a_key_that_does_not_match_the_certificate_is_refused(pki, other_pki):
    environ = tls_env(pki)
    environ["OPENSHELL_TLS_KEY"] = str(other_pki / "client/tls.key")

    with pytest.raises(EnvironmentIncomplete, match="usable client identity"):
        settings_from_env(environ)


def test_plaintext_needs_no_tls_variables():
    settings = settings_from_env(
        {"OPENSHELL_ENDPOINT": "http://h:1", "OPENSHELL_SANDBOX_ID": "i"}
    )

    assert settings.identity is None
    assert settings.connect_timeout == 20.0


def test_the_connect_bound_comes_from_the_environment(pki):
    environ = tls_env(pki) | {"OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT": "4.5"}

    assert settings_from_env(environ).connect_timeout == 4.5
    environ["OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT"] = "soon"
    with pytest.raises(EnvironmentIncomplete, match="CONNECT_TIMEOUT"):
        settings_from_env(environ)


def test_the_identity_holds_the_files_contents(pki):
    identity = settings_from_env(tls_env(pki)).identity

    assert identity is not None
    assert identity.ca == (pki / "ca.crt").read_bytes()
    assert identity.key_path == str(pki / "client/tls.key")


# Diagnoses.


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class TLSServer:
    """A TLS listener on loopback that completes handshakes and sends a frame."""

    def __init__(self, pki: Path, host: str = "127.0.0.1") -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki / "server/tls.crt", pki / "server/tls.key")
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
        except OSError:
            return
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                tls.recv(64)
                tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def test_a_closed_port_is_reported_as_connection_refused():
    port = free_port()

    cause = diagnose(parse_endpoint(f"http://127.0.0.1:{port}"), None)

    assert cause == f"connection refused by 127.0.0.1:{port} (127.0.0.1)"


def test_a_host_name_that_does_not_resolve_is_reported():
    cause = diagnose(parse_endpoint("http://no-such-host.invalid:1"), None)

    assert cause.startswith("cannot resolve no-such-host.invalid")


def test_an_ip_endpoint_without_an_ip_san_is_a_named_mismatch(pki):
    server = TLSServer(pki, host="127.0.0.2")
    identity = settings_from_env(tls_env(pki)).identity
    try:
        cause = diagnose(parse_endpoint(f"https://127.0.0.2:{server.port}"), identity)
    finally:
        server.close()

    assert cause == (
        f"TLS handshake with 127.0.0.2:{server.port} failed: certificate verify "
        "failed: IP address mismatch, certificate is not valid for '127.0.0.2'"
    )


def test_a_server_of_another_ca_is_an_unknown_issuer(pki, other_pki):
    server = TLSServer(other_pki)
    identity = settings_from_env(tls_env(pki)).identity
    try:
        cause = diagnose(parse_endpoint(f"https://localhost:{server.port}"), identity)
    finally:
        server.close()

    assert cause == (
        f"TLS handshake with localhost:{server.port} failed: certificate verify "
        "failed: unable to get local issuer certificate"
    )


def test_a_working_tls_endpoint_has_no_transport_cause(pki):
    server = TLSServer(pki)
    identity = settings_from_env(tls_env(pki)).identity
    try:
        cause = diagnose(parse_endpoint(f"https://localhost:{server.port}"), identity)
    finally:
        server.close()

    assert cause is None


def test_plaintext_to_a_tls_listener_says_it_expects_tls(pki):
    server = TLSServer(pki)
    try:
        cause = diagnose(parse_endpoint(f"http://127.0.0.1:{server.port}"), None)
    finally:
        server.close()

    assert cause is not None
    assert "expects TLS" in cause


def test_tls_to_a_plaintext_listener_says_it_does_not_speak_tls(pki):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_in_plaintext() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer_in_plaintext, daemon=True)
    thread.start()
    identity = settings_from_env(tls_env(pki)).identity
    try:
        cause = diagnose(parse_endpoint(f"https://localhost:{port}"), identity)
    finally:
        listener.close()
        thread.join(5)

    assert cause is not None
    assert cause.startswith(f"TLS handshake with localhost:{port} failed")


# Log lines.


def test_log_lines_are_logfmt_and_never_carry_key_material():
    line = format_event(
        "info",
        "session_accepted",
        {
            "session_id": "abc",
            "cause": 'say "hi" = bye',
            "key": "-----BEGIN PRIVATE KEY"
            + "-----\nMIIE\n-----END PRIVATE KEY"
            + "-----",
            "absent": None,
        },
    )

    assert line == (
        'level=info event=session_accepted session_id=abc cause="say \\"hi\\" = bye"'
        " key=[redacted]"
    )
