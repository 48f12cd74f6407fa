"""Find private key material in report files, however it was encoded.

A key leaks into a report in more shapes than a PEM block: a log line cut
after the BEGIN line, base64 inside a JSON embedding, gzip inside an HTML
embed. So the scan looks at each file's bytes, then at whatever its base64
runs decode to (and gunzip to), a few levels deep.

Two things count as key material:

- the marker ``PRIVATE KEY``, which every PEM private key carries;
- the secret part of a key generated during the run (the EC scalar, the RSA
  primes and exponent, the raw bytes of an Ed25519 key), recognised by a
  fingerprint: its length and SHA-256. Fingerprints are taken while the keys
  exist and kept in place of the keys, so the check can run after the run's
  temporary directory is gone without any key byte being kept.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric import x448, x25519

__all__ = [
    "MARKER",
    "Finding",
    "Fingerprint",
    "fingerprints_in",
    "fingerprints_of_pem",
    "read_fingerprints",
    "scan_bytes",
    "scan_files",
    "write_fingerprints",
]

MARKER = b"PRIVATE KEY"

_PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-{5}.*?-----END \1PRIVATE KEY-{5}",
    re.DOTALL,
)
# Base64 text, possibly wrapped over lines as in PEM bodies, or over escaped
# line breaks as in a JSON string.
_BASE64_RUN = re.compile(rb"(?:[A-Za-z0-9+/=\r\n]|\\[rn]){24,}")
_NOT_BASE64 = re.compile(rb"\\[rn]|[\r\n=]")
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DEPTH = 4
# Key files are small; anything bigger under a work directory is not one.
_MAX_KEY_FILE = 256 * 1024


@dataclass(frozen=True, order=True)
class Fingerprint:
    """The length and SHA-256 of one secret byte string, never the bytes."""

    length: int
    sha256: str

    @classmethod
    def of(cls, secret: bytes) -> Fingerprint:
        return cls(len(secret), hashlib.sha256(secret).hexdigest())

    def line(self) -> str:
        return f"{self.length} {self.sha256}"


@dataclass(frozen=True)
class Finding:
    """Key material found in one file: what it was and how it was reached."""

    path: Path
    what: str
    via: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what} ({self.via})"


# Fingerprints, taken while the keys exist


def fingerprints_of_pem(text: bytes) -> set[Fingerprint]:
    """Fingerprints of the secret parts of every PEM private key in ``text``."""
    found: set[Fingerprint] = set()
    for block in _PEM_KEY.finditer(text):
        try:
            key = serialization.load_pem_private_key(block.group(0), password=None)
        except (ValueError, TypeError):
            continue
        found.update(Fingerprint.of(secret) for secret in _secrets(key))
    return found


def fingerprints_in(root: Path) -> set[Fingerprint]:
    """Fingerprints of every private key stored in a file under ``root``."""
    found: set[Fingerprint] = set()
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        try:
            if not path.is_file() or path.stat().st_size > _MAX_KEY_FILE:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if MARKER in data:
            found |= fingerprints_of_pem(data)
    return found


def _secrets(key: object) -> list[bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        return [key.private_numbers().private_value.to_bytes(size, "big")]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.private_numbers()
        return [_int_bytes(n) for n in (numbers.p, numbers.q, numbers.d)]
    if isinstance(key, dsa.DSAPrivateKey):
        return [_int_bytes(key.private_numbers().x)]
    raw_types = (
        ed25519.Ed25519PrivateKey,
        ed448.Ed448PrivateKey,
        x25519.X25519PrivateKey,
        x448.X448PrivateKey,
    )
    if isinstance(key, raw_types):
        return [
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        ]
    return [
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    ]


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def write_fingerprints(path: Path, fingerprints: Iterable[Fingerprint]) -> None:
    lines = sorted(fingerprint.line() for fingerprint in set(fingerprints))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")


def read_fingerprints(path: Path) -> set[Fingerprint]:
    """The fingerprints a run wrote; an absent file means none were taken."""
    if not path.is_file():
        return set()
    found = set()
    for line in path.read_text(encoding="ascii").splitlines():
        length, _, digest = line.strip().partition(" ")
        if length.isdigit() and re.fullmatch(r"[0-9a-f]{64}", digest):
            found.add(Fingerprint(int(length), digest))
    return found


# The scan


def scan_bytes(
    data: bytes, fingerprints: Iterable[Fingerprint] = ()
) -> list[tuple[str, str]]:
    """What key material ``data`` holds, as (what, via) pairs; empty when none."""
    by_length: dict[int, set[str]] = {}
    for fingerprint in fingerprints:
        by_length.setdefault(fingerprint.length, set()).add(fingerprint.sha256)

    findings: dict[str, str] = {}
    for via, blob in _layers(data):
        if MARKER in blob:
            findings.setdefault("PEM private key marker", via)
        for length, digests in by_length.items():
            if _holds_secret(blob, length, digests):
                what = f"secret of a key made in this run ({length} bytes)"
                findings.setdefault(what, via)
    return list(findings.items())


def scan_files(
    paths: Iterable[Path], fingerprints: Iterable[Fingerprint] = ()
) -> list[Finding]:
    fingerprints = set(fingerprints)
    findings = []
    for path in paths:
        for what, via in scan_bytes(path.read_bytes(), fingerprints):
            findings.append(Finding(path, what, via))
    return findings


def _holds_secret(blob: bytes, length: int, digests: set[str]) -> bool:
    sha256 = hashlib.sha256
    view = memoryview(blob)
    for start in range(len(blob) - length + 1):
        if sha256(view[start : start + length]).hexdigest() in digests:
            return True
    return False


def _layers(
    data: bytes, via: str = "as stored", depth: int = 0
) -> Iterator[tuple[str, bytes]]:
    """``data`` itself, then what its base64 runs and gzip members decode to."""
    yield via, data
    if depth >= _MAX_DEPTH:
        return
    if data.startswith(_GZIP_MAGIC):
        unpacked = _gunzip(data)
        if unpacked is not None:
            yield from _layers(unpacked, f"{via}, gunzipped", depth + 1)
    for run in _BASE64_RUN.finditer(data):
        compact = _NOT_BASE64.sub(b"", run.group(0))
        for shift in range(4):
            decoded = _b64decode(compact[shift:])
            if decoded:
                label = f"{via}, base64 at byte {run.start()}"
                yield from _layers(decoded, label, depth + 1)


def _b64decode(text: bytes) -> bytes | None:
    """``text`` (without padding) decoded, its last partial group included."""
    if len(text) < 16:
        return None
    remainder = len(text) % 4
    if remainder == 1:
        text = text[:-1]
    elif remainder:
        text += b"=" * (4 - remainder)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _gunzip(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None
