"""A sandbox container as Podman's inspect document describes it."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLIENT_TLS_DIR = "/etc/openshell/tls/client"
GUEST_TLS_PATHS = {
    "guest_tls_ca": f"{CLIENT_TLS_DIR}/ca.crt",
    "guest_tls_cert": f"{CLIENT_TLS_DIR}/tls.crt",
    "guest_tls_key": f"{CLIENT_TLS_DIR}/tls.key",
}


@dataclass(frozen=True)
class Mount:
    """One mount of the container, in the terms the contract uses."""

    type: str
    source: str
    destination: str
    read_only: bool
    options: tuple[str, ...]


class ContainerView:
    """Read-only questions about one inspected container."""

    def __init__(self, inspect: dict) -> None:
        self.inspect = inspect

    @property
    def id(self) -> str:
        return self.inspect["Id"]

    @property
    def mounts(self) -> dict[str, Mount]:
        found = {}
        for entry in self.inspect.get("Mounts") or []:
            mount = Mount(
                type=entry.get("Type", ""),
                source=entry.get("Source", ""),
                destination=entry.get("Destination", ""),
                read_only=not entry.get("RW", True),
                options=tuple(entry.get("Options") or ()),
            )
            found[mount.destination] = mount
        return found

    @property
    def environment(self) -> dict[str, str]:
        pairs = (
            item.partition("=") for item in self.inspect["Config"].get("Env") or []
        )
        return {name: value for name, _, value in pairs}

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.inspect["Config"].get("Labels") or {})

    @property
    def extra_hosts(self) -> list[str]:
        return list(self.inspect.get("HostConfig", {}).get("ExtraHosts") or [])

    def host_address(self, name: str) -> str | None:
        """The address ``/etc/hosts`` of the container gives ``name``, if any."""
        for entry in self.extra_hosts:
            host, _, address = entry.partition(":")
            if host == name:
                return address
        return None

    def openshell_environment(self) -> dict[str, str]:
        return {k: v for k, v in self.environment.items() if k.startswith("OPENSHELL_")}

    def key_material_found(self, key_files: Iterable[Path]) -> list[str]:
        """Every way a private key shows up in the inspect document, if any."""
        document = json.dumps(self.inspect)
        found = []
        if "PRIVATE KEY" in document:
            found.append("a PEM private key header")
        for path in key_files:
            for chunk in _key_body_chunks(path):
                if chunk in document:
                    found.append(f"bytes of {path.name}")
                    break
        return found


def _key_body_chunks(path: Path, size: int = 24) -> list[str]:
    """Pieces of a key's encoded body long enough to be unique to it."""
    lines = path.read_text(encoding="ascii").splitlines()
    body = "".join(line for line in lines if line and not line.startswith("-----"))
    pieces = [body[i : i + size] for i in range(0, len(body) - size + 1, size)]
    try:
        raw = base64.b64decode(body)
    except binascii.Error:
        raw = b""
    return pieces + ([raw.hex()[: 2 * size]] if raw else [])
