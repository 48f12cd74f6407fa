"""Key material is found in reports however it was encoded, and only key material."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from openshell_acceptance import evidence, keyscan
from openshell_acceptance.pki import create_pki

ROOT = Path(__file__).resolve().parents[1]
CHECK_REPORTS = ROOT / "scripts" / "check-reports"


def pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def body(pem_bytes: bytes) -> bytes:
    """The base64 lines of a PEM block, without its BEGIN and END lines."""
    return b"\n".join(pem_bytes.strip().splitlines()[1:-1])


@pytest.fixture(scope="module")
def ec_key() -> bytes:
    return pem(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def fingerprints(ec_key) -> set[keyscan.Fingerprint]:
    return keyscan.fingerprints_of_pem(ec_key)


def whats(data: bytes, fingerprints=()) -> set[str]:
    return {what.split(" (")[0] for what, _ in keyscan.scan_bytes(data, fingerprints)}


# Fingerprints


def test_an_ec_key_is_fingerprinted_by_its_scalar(ec_key, fingerprints):
    (fingerprint,) = fingerprints

    assert fingerprint.length == 32
    assert len(fingerprint.sha256) == 64


def test_rsa_and_ed25519_keys_are_fingerprinted():
    rsa_key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ed_key = pem(ed25519.Ed25519PrivateKey.generate())

    assert len(keyscan.fingerprints_of_pem(rsa_key)) == 3
    assert {f.length for f in keyscan.fingerprints_of_pem(ed_key)} == {32}


def test_the_fingerprint_file_holds_no_key_bytes(tmp_path, ec_key, fingerprints):
    path = tmp_path / ".private-key-fingerprints"

    keyscan.write_fingerprints(path, fingerprints)

    stored = path.read_bytes()
    assert keyscan.read_fingerprints(path) == fingerprints
    assert not whats(stored, fingerprints)
    for line in body(ec_key).splitlines():
        assert line not in stored


def test_keys_under_a_work_directory_are_all_found(tmp_path, ec_key):
    other = pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "pki" / "client").mkdir(parents=True)
    (tmp_path / "pki" / "client" / "tls.key").write_bytes(ec_key)
    (tmp_path / "xdg.key").write_bytes(other)
    (tmp_path / "gateway.log").write_text("level=info event=started\n")

    found = keyscan.fingerprints_in(tmp_path)

    assert found == keyscan.fingerprints_of_pem(ec_key + other)
    assert keyscan.fingerprints_in(tmp_path / "absent") == set()


# The scan


def test_a_pem_key_is_found_by_its_marker_alone(ec_key):
    assert whats(b"log: " + ec_key) == {"PEM private key marker"}


def test_a_key_body_without_markers_is_found_by_fingerprint(ec_key, fingerprints):
    assert whats(b"cut: " + body(ec_key) + b"\n", fingerprints) == {
        "secret of a key made in this run"
    }


def test_a_key_inside_a_base64_embedding_is_found(ec_key, fingerprints):
    document = json.dumps({"data": base64.b64encode(ec_key).decode()}).encode()

    assert whats(document, fingerprints) == {
        "PEM private key marker",
        "secret of a key made in this run",
    }


def test_a_key_inside_gzip_inside_base64_is_found(ec_key, fingerprints):
    packed = base64.b64encode(gzip.compress(b"gateway log\n" + body(ec_key)))
    page = b'<span class="to-render" data="' + packed + b'"></span>'

    assert whats(page, fingerprints) == {"secret of a key made in this run"}


def test_a_key_body_in_a_json_string_is_found(ec_key, fingerprints):
    document = json.dumps({"error_message": body(ec_key).decode()}).encode()

    assert b"\\n" in document
    assert whats(document, fingerprints) == {"secret of a key made in this run"}


def test_certificates_and_redacted_evidence_pass(tmp_path):
    pki = create_pki(tmp_path / "pki")
    fingerprints = keyscan.fingerprints_in(tmp_path)
    key = pki.client_key.read_text()
    redacted = evidence.text("Gateway log", f"before\n{key}after").text
    certificates = b"".join(
        path.read_bytes() for path in (pki.ca_cert, pki.server_cert, pki.client_cert)
    )

    assert len(fingerprints) == 3
    assert whats(redacted.encode() + certificates, fingerprints) == set()
    assert whats(key.encode(), fingerprints) == {
        "PEM private key marker",
        "secret of a key made in this run",
    }


def test_a_key_not_from_this_run_is_only_found_by_its_marker(fingerprints):
    stranger = pem(ec.generate_private_key(ec.SECP256R1()))

    assert whats(body(stranger), fingerprints) == set()
    assert whats(stranger, fingerprints) == {"PEM private key marker"}


# scripts/check-reports


def check_reports(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK_REPORTS), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_reports_passes_clean_reports(tmp_path, fingerprints):
    (tmp_path / "junit").mkdir()
    (tmp_path / "junit" / "TESTS-x.xml").write_text("<testsuite/>")
    (tmp_path / "podman_mtls.html").write_text("<html>CERTIFICATE</html>")
    keyscan.write_fingerprints(tmp_path / ".private-key-fingerprints", fingerprints)

    result = check_reports(tmp_path)

    assert result.returncode == 0, result.stdout
    assert "1 key fingerprints" in result.stdout


def test_check_reports_fails_on_a_leak_and_names_the_file(
    tmp_path, ec_key, fingerprints
):
    (tmp_path / "junit").mkdir()
    (tmp_path / "junit" / "TESTS-x.xml").write_bytes(b"<system-out>" + body(ec_key))
    keyscan.write_fingerprints(tmp_path / ".private-key-fingerprints", fingerprints)

    result = check_reports(tmp_path)

    assert result.returncode == 1
    assert "ERROR: private key material in" in result.stdout
    assert "TESTS-x.xml" in result.stdout


def test_check_reports_without_a_reports_directory_says_so(tmp_path):
    result = check_reports(tmp_path / "absent")

    assert result.returncode == 1
    assert "run the acceptance suite" in result.stdout
