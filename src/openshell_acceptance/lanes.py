"""What rootful and rootless Podman change, as the host and the sandbox see it.

Who owns a file inside the sandbox and on the host, which host user the
sandbox's root is, where the gateway listens, and whether an address belongs
to this host. Each function answers from the kernel's own view (``stat``,
``/proc``, ``bind``), so the answer does not depend on what Podman reports.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AcceptanceError
from .podman import PodmanService

__all__ = [
    "FileOwner",
    "IdRange",
    "container_root_on_host",
    "file_inside",
    "file_on_host",
    "host_id",
    "id_map",
    "is_host_address",
    "listening_addresses",
    "parse_id_map",
    "parse_listeners",
    "process_uid_on_host",
]

_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class FileOwner:
    """A file's owner, group and permission bits, as one side sees them."""

    uid: int
    gid: int
    mode: int

    @property
    def owner_only(self) -> bool:
        """Nobody but the owner may read, write or run the file."""
        return self.mode & 0o077 == 0

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid} {self.mode:04o}"


@dataclass(frozen=True)
class IdRange:
    """One line of a user namespace's ID map."""

    inside: int
    outside: int
    size: int


def file_inside(podman: PodmanService, container: str, path: str) -> FileOwner:
    """The owner and mode of ``path`` as the running sandbox sees them."""
    code, output = podman.exec(container, ["stat", "-c", "%u %g %a", path])
    fields = output.split()
    if code != 0 or len(fields) != 3:
        raise AcceptanceError(
            f"cannot stat {path} inside {container[:12]}: {output.strip()}"
        )
    return FileOwner(int(fields[0]), int(fields[1]), int(fields[2], 8))


def file_on_host(path: Path) -> FileOwner:
    """The owner and mode of ``path`` on the host."""
    status = path.stat()
    return FileOwner(status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode))


def parse_id_map(text: str) -> list[IdRange]:
    """The ranges of a ``/proc/PID/uid_map`` or ``gid_map`` text."""
    ranges = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and all(field.isdigit() for field in fields):
            ranges.append(IdRange(*(int(field) for field in fields)))
    return ranges


def id_map(pid: int, kind: str = "uid") -> list[IdRange]:
    """How process ``pid``'s user namespace maps IDs to the host's.

    Read from the host, the map names host IDs whatever namespace nests in
    which, so a remapped sandbox of rootless Podman reads as host IDs too.
    """
    return parse_id_map(Path(f"/proc/{pid}/{kind}_map").read_text())


def host_id(ranges: Sequence[IdRange], inside: int) -> int | None:
    """The host ID that ``inside`` is in a namespace with ``ranges``, if mapped."""
    for entry in ranges:
        if entry.inside <= inside < entry.inside + entry.size:
            return entry.outside + inside - entry.inside
    return None


def container_root_on_host(inspect: Mapping[str, Any]) -> int | None:
    """The host user that a running container's root is, from its main process."""
    pid = int((inspect.get("State") or {}).get("Pid") or 0)
    if pid <= 0:
        return None
    return host_id(id_map(pid), 0)


def process_uid_on_host(pid: int) -> int | None:
    """The effective host user of process ``pid``, as the host sees it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    return None


def parse_listeners(text: str, port: int) -> set[str]:
    """Addresses listening on TCP ``port`` in a ``/proc/net/tcp{,6}`` text.

    IPv4-mapped IPv6 addresses are given as the IPv4 address they map.
    """
    found = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _TCP_LISTEN:
            continue
        address, _, port_hex = fields[1].partition(":")
        if int(port_hex, 16) == port:
            found.add(_proc_address(address))
    return found


def listening_addresses(port: int) -> set[str]:
    """Every address of this network namespace that listens on TCP ``port``."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            found |= parse_listeners(Path(table).read_text(), port)
        except FileNotFoundError:
            continue
    return found


def is_host_address(address: str) -> bool:
    """Whether ``address`` is one of this host's own, in its network namespace.

    Only an address the host holds can be bound without ``IP_FREEBIND``, so a
    bind to port 0 answers without sending anything.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def _proc_address(text: str) -> str:
    # The kernel prints each 32-bit word of the address in host byte order.
    raw = bytes.fromhex(text)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(
        word[::-1] if sys.byteorder == "little" else word for word in words
    )
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    # A dual-stack socket bound to an IPv4 address shows it IPv4-mapped.
    address = ipaddress.IPv6Address(packed)
    return str(address.ipv4_mapped or address)
