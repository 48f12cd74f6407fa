"""The sandbox supervisor: its environment and its one-line diagnoses."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import openshell  # noqa: F401 - the real SDK package, before the supervisor runs
import pytest

from openshell_reference.supervisor import (
    EnvironmentIncomplete,
    diagnose,
    format_event,
    parse_endpoint,
    settings_from_env,
)


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


def completing_handshakes(pki: Path) -> Callable[[socket.socket], None]:
    """Complete the handshake as the gateway, then answer with a SETTINGS frame."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server/tls.crt", pki / "server/tls.key")

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(64)
            tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")

    return handle


def test_a_closed_port_is_reported_as_connection_refused(free_port):
    port = free_port()

    cause = diagnose(parse_endpoint(f"http://127.0.0.1:{port}"), None)

    assert cause == f"connection refused by 127.0.0.1:{port} (127.0.0.1)"


def test_a_host_name_that_does_not_resolve_is_reported():
    cause = diagnose(parse_endpoint("http://no-such-host.invalid:1"), None)

    assert cause.startswith("cannot resolve no-such-host.invalid")


def test_an_ip_endpoint_without_an_ip_san_is_a_named_mismatch(pki, local_server):
    identity = settings_from_env(tls_env(pki)).identity
    with local_server(completing_handshakes(pki), host="127.0.0.2") as server:
        cause = diagnose(parse_endpoint(f"https://127.0.0.2:{server.port}"), identity)

    assert cause == (
        f"TLS handshake with 127.0.0.2:{server.port} failed: certificate verify "
        "failed: IP address mismatch, certificate is not valid for '127.0.0.2'"
    )


def test_a_server_of_another_ca_is_an_unknown_issuer(pki, other_pki, local_server):
    identity = settings_from_env(tls_env(pki)).identity
    with local_server(completing_handshakes(other_pki)) as server:
        cause = diagnose(parse_endpoint(f"https://localhost:{server.port}"), identity)

    assert cause == (
        f"TLS handshake with localhost:{server.port} failed: certificate verify "
        "failed: unable to get local issuer certificate"
    )


def test_a_working_tls_endpoint_has_no_transport_cause(pki, local_server):
    identity = settings_from_env(tls_env(pki)).identity
    with local_server(completing_handshakes(pki)) as server:
        cause = diagnose(parse_endpoint(f"https://localhost:{server.port}"), identity)

    assert cause is None


def test_plaintext_to_a_tls_listener_says_it_expects_tls(pki, local_server):
    with local_server(completing_handshakes(pki)) as server:
        cause = diagnose(parse_endpoint(f"http://127.0.0.1:{server.port}"), None)

    assert cause is not None
    assert "expects TLS" in cause


def test_tls_to_a_plaintext_listener_says_it_does_not_speak_tls(pki, local_server):
    def answer_in_plaintext(conn: socket.socket) -> None:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    identity = settings_from_env(tls_env(pki)).identity
    with local_server(answer_in_plaintext) as server:
        cause = diagnose(parse_endpoint(f"https://localhost:{server.port}"), identity)

    assert cause is not None
    assert cause.startswith(f"TLS handshake with localhost:{server.port} failed")


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
