"""Certificates for gateway/supervisor mutual TLS, laid out like the gateway's own.

The CA signs one server certificate (the gateway) and one client certificate
shared by the CLI and every sandbox supervisor. The file layout, names and
modes are those of ``openshell-gateway generate-certs``, so a directory written
here and one written by the gateway can be used interchangeably.

Extra helpers issue the certificates a negative scenario needs: an expired or
not-yet-valid client certificate, one from an untrusted CA, a server
certificate with a chosen SAN list.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import AcceptanceError

__all__ = [
    "DEFAULT_SERVER_SANS",
    "HARNESS_SERVER_SANS",
    "SUITE_SERVER_SANS",
    "CertificateAuthority",
    "CertificateSummary",
    "Pki",
    "PkiError",
    "create_foreign_ca",
    "create_pki",
    "describe_certificate",
    "issue_client_certificate",
    "issue_server_certificate",
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
"""Server SANs the gateway's generator writes when given no ``--server-san``."""

HARNESS_SERVER_SANS: tuple[str, ...] = ("host.openshell.internal", "::1")
"""What the Podman harness adds: the sandbox host alias, and IPv6 loopback."""

SUITE_SERVER_SANS: tuple[str, ...] = DEFAULT_SERVER_SANS + HARNESS_SERVER_SANS

CA_COMMON_NAME = "openshell-ca"
CA_ORGANIZATION = "openshell"
SERVER_COMMON_NAME = "openshell-server"
CLIENT_COMMON_NAME = "openshell-client"
CLIENT_ORGANIZATIONAL_UNIT = "openshell-user"

_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=365)
# Backdating absorbs small clock differences between host and containers.
_BACKDATE = dt.timedelta(minutes=5)

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}

_DIR_MODE = 0o700
_KEY_MODE = 0o600
_CERT_MODE = 0o644


class PkiError(AcceptanceError):
    """A PKI directory could not be created or read."""


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key, as files."""

    cert: Path
    key: Path

    def load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{self.key}: expected an EC private key")
        return cert, key


@dataclass(frozen=True)
class Pki:
    """Paths of a PKI directory in the gateway generator's layout."""

    root: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> Pki:
        """Name the files of a PKI at ``root``; nothing is read or checked."""
        base = Path(root)
        return cls(
            root=base,
            ca_cert=base / "ca.crt",
            ca_key=base / "ca.key",
            server_cert=base / "server" / "tls.crt",
            server_key=base / "server" / "tls.key",
            client_cert=base / "client" / "tls.crt",
            client_key=base / "client" / "tls.key",
        )

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.ca_cert, self.ca_key)

    @property
    def files(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.ca_key,
            self.server_cert,
            self.server_key,
            self.client_cert,
            self.client_key,
        )

    @property
    def private_keys(self) -> tuple[Path, ...]:
        return (self.ca_key, self.server_key, self.client_key)

    def missing(self) -> list[Path]:
        """The layout's files that do not exist."""
        return [path for path in self.files if not path.is_file()]


@dataclass(frozen=True)
class CertificateSummary:
    """What a report may show about a certificate; never key material."""

    path: str
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    is_ca: bool
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    public_key: str
    sha256: str

    def valid_at(self, moment: dt.datetime | None = None) -> bool:
        when = moment or _now()
        return self.not_before <= when <= self.not_after

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["not_before"] = self.not_before.isoformat()
        data["not_after"] = self.not_after.isoformat()
        data["dns_names"] = list(self.dns_names)
        data["ip_addresses"] = list(self.ip_addresses)
        data["key_usage"] = list(self.key_usage)
        data["extended_key_usage"] = list(self.extended_key_usage)
        return data


def create_pki(
    root: str | os.PathLike[str],
    *,
    server_sans: Iterable[str] = SUITE_SERVER_SANS,
    ca_common_name: str = CA_COMMON_NAME,
) -> Pki:
    """Write a CA, a server and a client certificate under ``root``.

    Like the gateway's generator: when every file exists the directory is kept
    as it is, when only some exist nothing is written and the error says how
    to recover, and otherwise all six files are generated.
    """
    pki = Pki.at(root)
    missing = pki.missing()
    if not missing:
        return pki
    if len(missing) < len(pki.files):
        names = ", ".join(str(path.relative_to(pki.root)) for path in missing)
        raise PkiError(
            f"partial PKI in {pki.root} (missing {names}): "
            f"remove the directory to regenerate, or restore the missing files"
        )

    _write_ca(pki.root, ca_common_name)
    issue_server_certificate(pki, pki.server_cert.parent, sans=tuple(server_sans))
    issue_client_certificate(pki, pki.client_cert.parent)
    return pki


def create_foreign_ca(
    root: str | os.PathLike[str], *, common_name: str = "untrusted-ca"
) -> CertificateAuthority:
    """Write a CA the gateway does not trust: ``root/ca.crt`` and ``root/ca.key``."""
    return _write_ca(Path(root), common_name)


def issue_client_certificate(
    issuer: Pki | CertificateAuthority,
    directory: str | os.PathLike[str],
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    common_name: str = CLIENT_COMMON_NAME,
) -> tuple[Path, Path]:
    """Issue a client certificate into ``directory/tls.crt`` and ``tls.key``.

    ``not_before`` and ``not_after`` make an expired or not-yet-valid one;
    naming a foreign CA makes one the gateway must refuse.
    """
    return _issue_leaf(
        issuer,
        Path(directory),
        subject=_client_name(common_name),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=(),
        not_before=not_before,
        not_after=not_after,
    )


def issue_server_certificate(
    issuer: Pki | CertificateAuthority,
    directory: str | os.PathLike[str],
    *,
    sans: Sequence[str],
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    common_name: str = SERVER_COMMON_NAME,
) -> tuple[Path, Path]:
    """Issue a server certificate with exactly ``sans`` into ``directory``."""
    return _issue_leaf(
        issuer,
        Path(directory),
        subject=_name(common_name),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=tuple(sans),
        not_before=not_before,
        not_after=not_after,
    )


def describe_certificate(path: str | os.PathLike[str]) -> CertificateSummary:
    """Summarise the first certificate in a PEM file for a report."""
    source = Path(path)
    try:
        cert = x509.load_pem_x509_certificate(source.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{source}: not a readable PEM certificate ({exc})") from None

    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is not None:
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ip_addresses = tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )

    constraints = _extension(cert, x509.BasicConstraints)
    eku = _extension(cert, x509.ExtendedKeyUsage)
    return CertificateSummary(
        path=str(source),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        is_ca=bool(constraints and constraints.ca),
        key_usage=_key_usage_names(_extension(cert, x509.KeyUsage)),
        extended_key_usage=tuple(
            _EKU_NAMES.get(oid, oid.dotted_string) for oid in (eku or ())
        ),
        public_key=_public_key_name(cert),
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def _authority(issuer: Pki | CertificateAuthority) -> CertificateAuthority:
    return issuer.ca if isinstance(issuer, Pki) else issuer


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _client_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(
                NameOID.ORGANIZATIONAL_UNIT_NAME, CLIENT_ORGANIZATIONAL_UNIT
            ),
        ]
    )


def _general_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _validity(
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
    lifetime: dt.timedelta,
) -> tuple[dt.datetime, dt.datetime]:
    start = not_before or _now() - _BACKDATE
    if not_before is None and not_after is not None and not_after <= start:
        start = not_after - dt.timedelta(days=1)
    end = not_after or max(start, _now()) + lifetime
    if end <= start:
        raise PkiError(f"not_after {end.isoformat()} is not after {start.isoformat()}")
    return start, end


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _build_ca(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
        ]
    )
    start, end = _validity(None, None, _CA_LIFETIME)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
    )
    return builder.sign(key, hashes.SHA256())


def _build_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: Sequence[str],
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
) -> x509.Certificate:
    start, end = _validity(not_before, not_after, _LEAF_LIFETIME)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    names = [_general_name(san) for san in _unique(sans)]
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(_DIR_MODE)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    # The mode is set at creation so a key is never readable by others,
    # even for a moment; an existing file is replaced, not reopened.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)


def _write_pair(
    cert_path: Path,
    key_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(key_path, key_pem, _KEY_MODE)
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)


def _write_ca(root: Path, common_name: str) -> CertificateAuthority:
    _make_private_dir(root)
    key = _new_key()
    cert = _build_ca(key, common_name)
    authority = CertificateAuthority(root / "ca.crt", root / "ca.key")
    _write_pair(authority.cert, authority.key, cert, key)
    return authority


def _issue_leaf(
    issuer: Pki | CertificateAuthority,
    directory: Path,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: Sequence[str],
    not_before: dt.datetime | None,
    not_after: dt.datetime | None,
) -> tuple[Path, Path]:
    """Sign a new key with ``issuer`` and write ``directory/tls.crt`` and ``tls.key``."""
    ca_cert, ca_key = _authority(issuer).load()
    key = _new_key()
    cert = _build_leaf(
        ca_cert,
        ca_key,
        key,
        subject=subject,
        usage=usage,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
    )
    _make_private_dir(directory)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    _write_pair(cert_path, key_path, cert, key)
    return cert_path, key_path


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _key_usage_names(usage: x509.KeyUsage | None) -> tuple[str, ...]:
    if usage is None:
        return ()
    flags = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    names = [flag for flag in flags if getattr(usage, flag)]
    if usage.key_agreement:
        names += [f for f in ("encipher_only", "decipher_only") if getattr(usage, f)]
    return tuple(names)


def _public_key_name(cert: x509.Certificate) -> str:
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"EC {public.curve.name}"
    size = getattr(public, "key_size", None)
    return f"{type(public).__name__} {size}" if size else type(public).__name__
