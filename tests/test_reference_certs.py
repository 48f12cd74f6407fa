"""The reference gateway's PKI: generate-certs and the start-up TLS checks."""

from __future__ import annotations

import datetime
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openshell_reference.certs import (
    DEFAULT_SERVER_SANS,
    PKIFiles,
    build_pki,
    generate_certs,
    load_server_tls,
    san_entries,
)
from openshell_reference.errors import PartialPKIError, TLSMaterialError

LAYOUT = (
    "ca.crt",
    "ca.key",
    "server/tls.crt",
    "server/tls.key",
    "client/tls.crt",
    "client/tls.key",
)


def cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def attribute(name: x509.Name, oid) -> list[str]:
    return [a.value for a in name.get_attributes_for_oid(oid)]


def sans(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    return certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki-parent") / "pki"
    generate_certs(root, ["host.openshell.internal", "host.containers.internal"])
    return root


def test_the_layout_is_the_contracts(pki_dir):
    written = sorted(
        p.relative_to(pki_dir).as_posix() for p in pki_dir.rglob("*") if p.is_file()
    )

    assert written == sorted(LAYOUT)


def test_directories_are_0700_and_private_keys_0600(pki_dir):
    for directory in (pki_dir, pki_dir / "server", pki_dir / "client"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for key in ("ca.key", "server/tls.key", "client/tls.key"):
        assert stat.S_IMODE((pki_dir / key).stat().st_mode) == 0o600, key


def test_the_subjects_are_the_contracts(pki_dir):
    ca = cert(pki_dir / "ca.crt")
    server = cert(pki_dir / "server/tls.crt")
    client = cert(pki_dir / "client/tls.crt")

    assert attribute(ca.subject, NameOID.COMMON_NAME) == ["openshell-ca"]
    assert attribute(ca.subject, NameOID.ORGANIZATION_NAME) == ["openshell"]
    assert attribute(server.subject, NameOID.COMMON_NAME) == ["openshell-server"]
    assert attribute(client.subject, NameOID.COMMON_NAME) == ["openshell-client"]
    assert attribute(client.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == [
        "openshell-user"
    ]


def test_the_ca_signs_both_leaves(pki_dir):
    ca = cert(pki_dir / "ca.crt")
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value

    assert constraints.ca is True
    for leaf in ("server/tls.crt", "client/tls.crt"):
        certificate = cert(pki_dir / leaf)
        assert certificate.issuer == ca.subject
        certificate.verify_directly_issued_by(ca)
        leaf_constraints = certificate.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value
        assert leaf_constraints.ca is False


def test_the_leaves_carry_their_extended_key_usage(pki_dir):
    def usages(path):
        return list(
            cert(path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )

    assert usages(pki_dir / "server/tls.crt") == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages(pki_dir / "client/tls.crt") == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_server_has_the_default_and_the_extra_sans(pki_dir):
    names = sans(cert(pki_dir / "server/tls.crt"))
    dns = names.get_values_for_type(x509.DNSName)
    ips = names.get_values_for_type(x509.IPAddress)

    expected_dns = [n for n in DEFAULT_SERVER_SANS if n != "127.0.0.1"]
    assert dns == expected_dns + ["host.openshell.internal"]
    assert ips == [ipaddress.ip_address("127.0.0.1")]


def test_an_ip_san_is_an_ip_and_a_name_is_dns():
    entries = san_entries(["10.89.0.1", "::1", "host.openshell.internal", "*.x.y"])

    assert entries == [
        x509.IPAddress(ipaddress.ip_address("10.89.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("host.openshell.internal"),
        x509.DNSName("*.x.y"),
    ]


def test_validity_is_timezone_aware_and_current(pki_dir):
    now = datetime.datetime.now(datetime.UTC)
    for name in ("ca.crt", "server/tls.crt", "client/tls.crt"):
        certificate = cert(pki_dir / name)
        assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc


def test_the_keys_are_unencrypted_pem_of_the_certificates():
    pki = build_pki()

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.server_key, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    server = x509.load_pem_x509_certificate(pki.server_cert)
    assert server.public_key().public_numbers() == key.public_key().public_numbers()


def test_a_complete_pki_is_left_alone(tmp_path):
    root = tmp_path / "pki"
    generate_certs(root)
    before = {name: (root / name).read_bytes() for name in LAYOUT}

    outcome = generate_certs(root, ["ignored.example"])

    assert outcome.generated is False
    assert {name: (root / name).read_bytes() for name in LAYOUT} == before


@pytest.mark.parametrize("missing", LAYOUT)
def test_a_partial_pki_is_an_error_that_says_how_to_recover(tmp_path, missing):
    root = tmp_path / "pki"
    generate_certs(root)
    (root / missing).unlink()
    left = {name: (root / name).read_bytes() for name in LAYOUT if name != missing}

    with pytest.raises(PartialPKIError) as caught:
        generate_certs(root)

    message = str(caught.value)
    assert f"missing: {missing}" in message
    assert f"remove {root}" in message
    assert not (root / missing).exists()
    assert {name: (root / name).read_bytes() for name in left} == left


def test_an_existing_empty_directory_is_filled_and_made_private(tmp_path):
    root = tmp_path / "pki"
    root.mkdir(mode=0o755)

    outcome = generate_certs(root)

    assert outcome.generated is True
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert PKIFiles(root).all() == tuple(root / name for name in LAYOUT)


# The files the gateway is started with.


def test_a_matching_certificate_key_and_ca_load(pki_dir):
    material = load_server_tls(
        pki_dir / "server/tls.crt", pki_dir / "server/tls.key", pki_dir / "ca.crt"
    )

    assert material.cert_chain.startswith(b"-----BEGIN CERTIFICATE-----")
    assert material.client_ca is not None


def test_a_key_of_another_certificate_is_refused(pki_dir):
    with pytest.raises(TLSMaterialError, match="does not match the certificate"):
        load_server_tls(pki_dir / "server/tls.crt", pki_dir / "client/tls.key", None)


def test_a_leaf_is_not_accepted_as_client_ca(pki_dir):
    with pytest.raises(TLSMaterialError, match="--tls-client-ca .* no CA certificate"):
        load_server_tls(
            pki_dir / "server/tls.crt",
            pki_dir / "server/tls.key",
            pki_dir / "client/tls.crt",
        )


def test_a_file_that_is_not_pem_is_refused(pki_dir, tmp_path):
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")

    with pytest.raises(TLSMaterialError, match="--tls-cert file .* no PEM certificate"):
        load_server_tls(junk, pki_dir / "server/tls.key", None)
    with pytest.raises(TLSMaterialError, match="--tls-key file .* no PEM private key"):
        load_server_tls(pki_dir / "server/tls.crt", junk, None)


def test_a_missing_file_is_refused_naming_the_flag(pki_dir, tmp_path):
    with pytest.raises(
        TLSMaterialError, match="--tls-client-ca file .* does not exist"
    ):
        load_server_tls(
            pki_dir / "server/tls.crt",
            pki_dir / "server/tls.key",
            tmp_path / "absent.crt",
        )
