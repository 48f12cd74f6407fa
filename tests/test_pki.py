"""The suite's PKI: layout, names, usages, and that it really does mutual TLS."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from openshell_acceptance.pki import (
    DEFAULT_SERVER_SANS,
    SUITE_SERVER_SANS,
    Pki,
    PkiError,
    create_foreign_ca,
    create_pki,
    describe_certificate,
    issue_client_certificate,
    issue_server_certificate,
)

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return create_pki(tmp_path_factory.mktemp("pki") / "pki")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Layout


def test_files_are_laid_out_like_the_gateway_generator(pki: Pki) -> None:
    names = sorted(
        str(p.relative_to(pki.root)) for p in pki.root.rglob("*") if p.is_file()
    )
    assert names == [
        "ca.crt",
        "ca.key",
        "client/tls.crt",
        "client/tls.key",
        "server/tls.crt",
        "server/tls.key",
    ]
    assert Pki.at(pki.root) == pki


def test_directories_and_private_keys_are_owner_only(pki: Pki) -> None:
    for directory in (pki.root, pki.root / "server", pki.root / "client"):
        assert mode(directory) == 0o700, directory
    for key in pki.private_keys:
        assert mode(key) == 0o600, key
        assert b"PRIVATE KEY" in key.read_bytes()


def test_a_complete_directory_is_kept_as_it_is(pki: Pki) -> None:
    before = {path: path.read_bytes() for path in pki.files}
    again = create_pki(pki.root, server_sans=["other.example"])
    assert again == pki
    assert {path: path.read_bytes() for path in pki.files} == before


def test_a_partial_directory_is_an_error_that_says_how_to_recover(
    tmp_path: Path,
) -> None:
    made = create_pki(tmp_path / "pki")
    made.client_key.unlink()
    with pytest.raises(PkiError, match=r"missing client/tls\.key.*remove"):
        create_pki(made.root)
    assert made.missing() == [made.client_key]


# Names and usages


def test_subjects_follow_the_contract(pki: Pki) -> None:
    ca, server, client = load(pki.ca_cert), load(pki.server_cert), load(pki.client_cert)
    assert ca.subject.rfc4514_string() == "O=openshell,CN=openshell-ca"
    assert server.subject.rfc4514_string() == "CN=openshell-server"
    assert client.subject.rfc4514_string() == "OU=openshell-user,CN=openshell-client"
    assert server.issuer == ca.subject and client.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)


def test_server_sans_split_into_dns_and_ip_names(pki: Pki) -> None:
    summary = describe_certificate(pki.server_cert)
    assert summary.ip_addresses == ("127.0.0.1", "::1")
    assert set(summary.dns_names) == {
        name for name in SUITE_SERVER_SANS if name not in ("127.0.0.1", "::1")
    }
    assert "host.openshell.internal" in summary.dns_names
    assert "host.containers.internal" in summary.dns_names
    assert "*.openshell.localhost" in summary.dns_names


def test_default_sans_are_the_generators_list() -> None:
    assert DEFAULT_SERVER_SANS[-1] == "127.0.0.1"
    assert len(DEFAULT_SERVER_SANS) == 9
    assert set(DEFAULT_SERVER_SANS) < set(SUITE_SERVER_SANS)


def test_usages_and_ca_flag(pki: Pki) -> None:
    ca = describe_certificate(pki.ca_cert)
    server = describe_certificate(pki.server_cert)
    client = describe_certificate(pki.client_cert)
    assert ca.is_ca and "key_cert_sign" in ca.key_usage
    assert not server.is_ca and server.extended_key_usage == ("serverAuth",)
    assert not client.is_ca and client.extended_key_usage == ("clientAuth",)
    assert client.dns_names == () and client.ip_addresses == ()
    assert server.public_key == "EC secp256r1"


# Negative material


def test_expired_and_not_yet_valid_client_certificates(
    pki: Pki, tmp_path: Path
) -> None:
    now = dt.datetime.now(UTC)
    expired, _ = issue_client_certificate(
        pki, tmp_path / "expired", not_after=now - dt.timedelta(days=1)
    )
    future, _ = issue_client_certificate(
        pki, tmp_path / "future", not_before=now + dt.timedelta(days=1)
    )
    assert not describe_certificate(expired).valid_at(now)
    assert describe_certificate(expired).not_after < now
    assert not describe_certificate(future).valid_at(now)
    assert describe_certificate(future).not_before > now
    load(expired).verify_directly_issued_by(load(pki.ca_cert))


def test_a_foreign_ca_signs_certificates_the_suite_ca_did_not(
    pki: Pki, tmp_path: Path
) -> None:
    foreign = create_foreign_ca(tmp_path / "foreign")
    cert, key = issue_client_certificate(foreign, tmp_path / "client")
    assert mode(key) == 0o600
    ours = describe_certificate(pki.ca_cert)
    assert describe_certificate(cert).issuer != ours.subject
    with pytest.raises(Exception):
        load(cert).verify_directly_issued_by(load(pki.ca_cert))


def test_a_server_certificate_with_chosen_sans(pki: Pki, tmp_path: Path) -> None:
    cert, key = issue_server_certificate(
        pki, tmp_path / "server", sans=["localhost", "10.88.0.1"]
    )
    summary = describe_certificate(cert)
    assert summary.dns_names == ("localhost",)
    assert summary.ip_addresses == ("10.88.0.1",)
    assert (cert.name, key.name) == ("tls.crt", "tls.key")


def test_bad_validity_is_refused(pki: Pki, tmp_path: Path) -> None:
    now = dt.datetime.now(UTC)
    with pytest.raises(PkiError, match="not after"):
        issue_client_certificate(pki, tmp_path, not_before=now, not_after=now)


# Report evidence


def test_summary_is_plain_data_without_key_material(pki: Pki) -> None:
    summary = describe_certificate(pki.client_cert)
    data = summary.to_dict()
    text = json.dumps(data)
    assert "PRIVATE" not in text and "PRIVATE" not in repr(summary)
    assert data["subject"] == "OU=openshell-user,CN=openshell-client"
    assert len(summary.sha256.split(":")) == 32
    assert summary.not_before.tzinfo is not None


def test_a_key_file_is_not_described(pki: Pki) -> None:
    with pytest.raises(PkiError) as raised:
        describe_certificate(pki.client_key)
    assert "PRIVATE" not in str(raised.value)


# The material works for mutual TLS


def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str
) -> dict:
    """Run both ends over a socket pair; what each side saw."""
    left, right = socket.socketpair()
    left.settimeout(5)
    right.settimeout(5)
    seen: dict = {}

    def serve() -> None:
        try:
            with server.wrap_socket(left, server_side=True) as tls:
                seen["peer"] = dict(x[0] for x in tls.getpeercert()["subject"])
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["server_error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(right, server_hostname=server_hostname) as tls:
            seen["reply"] = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        seen["client_error"] = exc
    finally:
        thread.join(10)
        right.close()
    return seen


@pytest.mark.parametrize(
    "name", ["host.openshell.internal", "host.containers.internal", "127.0.0.1"]
)
def test_mutual_tls_succeeds_on_every_name_the_supervisor_dials(
    pki: Pki, mtls_contexts, name: str
) -> None:
    seen = _handshake(*mtls_contexts(pki), name)
    assert seen.get("reply") == b"ok", seen
    assert seen["peer"] == {
        "commonName": "openshell-client",
        "organizationalUnitName": "openshell-user",
    }


def test_a_name_missing_from_the_sans_fails_the_handshake(
    pki: Pki, mtls_contexts
) -> None:
    seen = _handshake(*mtls_contexts(pki), "gateway.example")
    assert isinstance(seen.get("client_error"), ssl.SSLCertVerificationError), seen
    assert "gateway.example" in str(seen["client_error"])


def test_a_client_certificate_from_another_ca_is_refused(
    pki: Pki, mtls_contexts, tmp_path: Path
) -> None:
    foreign = create_foreign_ca(tmp_path / "foreign")
    cert, key = issue_client_certificate(foreign, tmp_path / "client")
    seen = _handshake(*mtls_contexts(pki, cert, key), "host.openshell.internal")
    assert "reply" not in seen, seen
    assert isinstance(seen.get("server_error"), ssl.SSLError), seen
