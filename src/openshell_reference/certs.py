"""The gateway's PKI: generating it, and checking the files it is started with.

One CA signs a server certificate for the gateway and one client certificate
that the CLI and every sandbox supervisor share.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import PartialPKIError, PKIError, TLSMaterialError

__all__ = [
    "DEFAULT_SERVER_SANS",
    "GeneratedPKI",
    "PKIFiles",
    "ServerTLSMaterial",
    "build_pki",
    "generate_certs",
    "load_server_tls",
    "san_entries",
]

DEFAULT_SERVER_SANS: tuple[str, ...] = (
    "openshell",
    "openshell.openshell.svc",
    "openshell.openshell.svc.cluster.local",
    "localhost",
    "openshell.localhost",
    "*.openshell.localhost",
    "host.docker.internal",
    "host.containers.internal",
    "127.0.0.1",
)
CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=825)
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class PKIFiles:
    """Where ``generate-certs`` writes each file below its output directory."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server" / "tls.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server" / "tls.key"

    @property
    def client_cert(self) -> Path:
        return self.root / "client" / "tls.crt"

    @property
    def client_key(self) -> Path:
        return self.root / "client" / "tls.key"

    def all(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.server_cert,
            self.server_key,
            self.client_cert,
            self.client_key,
        )

    def keys(self) -> tuple[Path, ...]:
        return (self.ca_key, self.server_key, self.client_key)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class GeneratedPKI:
    """PEM bytes of a freshly built CA, server and client identity."""

    ca_cert: bytes
    ca_key: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    server_sans: tuple[str, ...]


@dataclass(frozen=True)
class GenerateOutcome:
    """What ``generate_certs`` did: ``generated`` is False when it skipped."""

    files: PKIFiles
    generated: bool
    server_sans: tuple[str, ...]


def san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    """Turn each name into an IP SAN when it parses as an address, else DNS."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _server_sans(extra: Sequence[str]) -> tuple[str, ...]:
    names = list(DEFAULT_SERVER_SANS)
    for name in extra:
        name = name.strip()
        if not name:
            raise PKIError("--server-san needs a non-empty name")
        if name not in names:
            names.append(name)
    return tuple(names)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _leaf(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    now: datetime.datetime,
    sans: Sequence[str] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            False,
        )
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(san_entries(sans)), False
        )
    return builder.sign(ca_key, hashes.SHA256())


def build_pki(
    extra_server_sans: Sequence[str] = (),
    *,
    now: datetime.datetime | None = None,
) -> GeneratedPKI:
    """Build a CA and the server and client certificates it signs, in memory."""
    now = now or datetime.datetime.now(datetime.UTC)
    sans = _server_sans(extra_server_sans)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "openshell"),
            x509.NameAttribute(NameOID.COMMON_NAME, "openshell-ca"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _leaf(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openshell-server")]),
        server_key,
        ca_cert,
        ca_key,
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        sans,
    )

    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _leaf(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "openshell-user"),
                x509.NameAttribute(NameOID.COMMON_NAME, "openshell-client"),
            ]
        ),
        client_key,
        ca_cert,
        ca_key,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        now,
    )

    return GeneratedPKI(
        ca_cert=_pem_cert(ca_cert),
        ca_key=_pem_key(ca_key),
        server_cert=_pem_cert(server_cert),
        server_key=_pem_key(server_key),
        client_cert=_pem_cert(client_cert),
        client_key=_pem_key(client_key),
        server_sans=sans,
    )


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def generate_certs(
    output_dir: Path | str, extra_server_sans: Sequence[str] = ()
) -> GenerateOutcome:
    """Write the PKI below ``output_dir`` unless it is already complete there.

    All six files present: nothing is written. Some present: ``PartialPKIError``,
    and nothing is touched. None present: all six are written, the directories
    0700 and the private keys 0600.
    """
    files = PKIFiles(Path(output_dir))
    present = [path for path in files.all() if path.exists()]
    if len(present) == len(files.all()):
        return GenerateOutcome(files, generated=False, server_sans=())
    if present:
        have = ", ".join(files.relative(p) for p in present)
        missing = ", ".join(files.relative(p) for p in files.all() if p not in present)
        raise PartialPKIError(
            f"{files.root} holds part of a PKI (present: {have}; missing: {missing}); "
            f"remove {files.root} or move it aside, then run generate-certs again"
        )

    pki = build_pki(extra_server_sans)
    contents = {
        files.ca_cert: pki.ca_cert,
        files.ca_key: pki.ca_key,
        files.server_cert: pki.server_cert,
        files.server_key: pki.server_key,
        files.client_cert: pki.client_cert,
        files.client_key: pki.client_key,
    }
    written: list[Path] = []
    try:
        for directory in (
            files.root,
            files.server_cert.parent,
            files.client_cert.parent,
        ):
            _make_private_dir(directory)
        for path, data in contents.items():
            _write_new(path, data, 0o600 if path in files.keys() else 0o644)
            written.append(path)
    except OSError as error:
        for path in written:
            path.unlink(missing_ok=True)
        raise PKIError(
            f"cannot write the PKI below {files.root}: {error.strerror or error}"
        ) from None
    return GenerateOutcome(files, generated=True, server_sans=pki.server_sans)


# Checking the files the gateway is started with.


@dataclass(frozen=True)
class ServerTLSMaterial:
    """The PEM bytes the gateway's TLS listener is built from."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSMaterialError(
            f"{what} file {path} does not exist; pass the path of an existing file"
        ) from None
    except IsADirectoryError:
        raise TLSMaterialError(
            f"{what} path {path} is a directory; pass the path of a PEM file"
        ) from None
    except PermissionError:
        raise TLSMaterialError(
            f"{what} file {path} is not readable by this user; fix its permissions"
        ) from None
    except OSError as error:
        raise TLSMaterialError(
            f"cannot read {what} file {path}: {error.strerror or error}"
        ) from None


def _certificates(data: bytes, path: Path, what: str) -> list[x509.Certificate]:
    if not data.strip():
        raise TLSMaterialError(
            f"{what} file {path} is empty; pass a PEM certificate file"
        )
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise TLSMaterialError(
            f"{what} file {path} holds no PEM certificate; pass a PEM certificate file"
        )
    return certificates


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def load_server_tls(
    cert_path: Path,
    key_path: Path,
    client_ca_path: Path | None,
    *,
    cert_flag: str = "--tls-cert",
    key_flag: str = "--tls-key",
    client_ca_flag: str = "--tls-client-ca",
) -> ServerTLSMaterial:
    """Read and check the gateway's certificate, key and client CA files.

    The certificate and the key must be PEM and belong together; the client CA
    file must hold at least one CA certificate.
    """
    cert_pem = _read(cert_path, cert_flag)
    leaf = _certificates(cert_pem, cert_path, cert_flag)[0]

    key_pem = _read(key_path, key_flag)
    if not key_pem.strip():
        raise TLSMaterialError(
            f"{key_flag} file {key_path} is empty; pass a PEM private key file"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TLSMaterialError(
            f"{key_flag} file {key_path} is encrypted; pass an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSMaterialError(
            f"{key_flag} file {key_path} holds no PEM private key; "
            "pass a PEM private key file"
        ) from None
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise TLSMaterialError(
            f"{key_flag} file {key_path} does not match the certificate in "
            f"{cert_flag} file {cert_path}; pass the key that belongs to it"
        )

    ca_pem: bytes | None = None
    if client_ca_path is not None:
        ca_pem = _read(client_ca_path, client_ca_flag)
        authorities = _certificates(ca_pem, client_ca_path, client_ca_flag)
        if not any(_is_ca(cert) for cert in authorities):
            raise TLSMaterialError(
                f"{client_ca_flag} file {client_ca_path} holds no CA certificate "
                "(BasicConstraints ca=true); pass the CA that signed the client "
                "certificates"
            )
    return ServerTLSMaterial(cert_chain=cert_pem, private_key=key_pem, client_ca=ca_pem)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca
