"""Evidence for the report: plain text, with private key material removed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

from openshell import SandboxRef
from openshell._proto import openshell_pb2

from .pki import describe_certificate

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-{5}.*?(-----END \1PRIVATE KEY-{5}|\Z)",
    re.DOTALL,
)
_REDACTED = "[private key redacted]"


@dataclass(frozen=True)
class Evidence:
    """One attachment: a caption and its text."""

    caption: str
    text: str


def redact(text: str) -> str:
    """Replace every PEM private key block, complete or cut short, in ``text``."""
    return _PRIVATE_KEY_BLOCK.sub(_REDACTED, text)


def holds_key_material(text: str) -> bool:
    """True when ``text`` still holds the start of a PEM private key."""
    return "PRIVATE KEY" + "-" * 5 in text


def text(caption: str, body: str) -> Evidence:
    return Evidence(caption, redact(body))


def table(caption: str, rows: Iterable[tuple[str, object]]) -> Evidence:
    """Two aligned columns, one row a line."""
    rows = [(str(name), "" if value is None else str(value)) for name, value in rows]
    width = max((len(name) for name, _ in rows), default=0)
    body = "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
    return text(caption, body)


def mapping(caption: str, data: Mapping[str, object]) -> Evidence:
    return text(caption, json.dumps(data, indent=2, sort_keys=True, default=_plain))


def _plain(value: object) -> object:
    return asdict(value) if is_dataclass(value) else str(value)


def certificate(caption: str, path: Path) -> Evidence:
    """Subject, issuer, names, validity, usage and fingerprint of one certificate."""
    return mapping(f"{caption} ({path.name})", describe_certificate(path).to_dict())


def sandbox(ref: SandboxRef, endpoint: str) -> Evidence:
    """A sandbox as the SDK reported it, and the endpoint it was asked through."""
    conditions = [
        f"{c.type}={c.status} reason={c.reason} {c.message}".strip()
        for c in ref.status.conditions
    ]
    return table(
        f"Sandbox {ref.name} as seen through the SDK",
        [
            ("endpoint", endpoint),
            ("id", ref.id),
            ("phase", openshell_pb2.SandboxPhase.Name(ref.status.phase)),
            *(("condition", line) for line in conditions),
        ],
    )
