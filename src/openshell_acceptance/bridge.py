"""The run's network bridge: up for the whole run, at one MAC address.

Linux gives a bridge that has no address of its own the lowest MAC address
among its ports, and netavark before 1.9 sets none (containers/netavark#833).
When the port holding that address leaves, or the bridge is made anew for
the next container, a sandbox that resolved the host's address to the old
MAC sends into nothing until its ARP entry expires, which can take most of a
minute: its supervisor times out connecting to the gateway while others get
through. So the run keeps one container of its own, the anchor, on its
network from start to end, which keeps the bridge in place, and pins the
bridge's address before any sandbox starts.
"""

from __future__ import annotations

import fcntl
import ipaddress
import signal
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import AcceptanceError
from .podman import PodmanError, PodmanService

__all__ = ["Anchor", "BridgeError", "anchor_network", "bridge_mac", "pin_address"]

ANCHOR_COMMAND = ("/bin/sleep", "infinity")
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1
# /sys/class/net/IF/addr_assign_type: the address was set, not inherited.
NET_ADDR_SET = "3"
NET = Path("/sys/class/net")


class BridgeError(AcceptanceError):
    """The run's bridge could not be kept or pinned."""


@dataclass(frozen=True)
class Anchor:
    """The container that holds the bridge, and what was done to the bridge."""

    container: str
    bridge: str
    address: str
    note: str


def bridge_mac(gateway: str) -> str:
    """A locally administered unicast MAC address made from the bridge's IPv4."""
    packed = ipaddress.IPv4Address(gateway).packed
    return ":".join(f"{byte:02x}" for byte in (0x02, 0x6F, *packed))


def pin_address(interface: str, mac: str) -> str:
    """Give ``interface`` the address ``mac``; what was done, in a few words.

    An interface whose address was set already (netavark 1.9 and later set
    the bridge's own) is left as it is.
    """
    assign_type = NET / interface / "addr_assign_type"
    current = (NET / interface / "address").read_text().strip()
    if assign_type.read_text().strip() == NET_ADDR_SET:
        return f"kept the address {current} it was given"
    # struct ifreq: the name, then a sockaddr whose data starts with the MAC,
    # padded to the size of the union it sits in.
    request = struct.pack(
        "16sH6s16x",
        interface.encode(),
        ARPHRD_ETHER,
        bytes(int(part, 16) for part in mac.split(":")),
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        try:
            fcntl.ioctl(handle.fileno(), SIOCSIFHWADDR, request)
        except OSError as exc:
            raise BridgeError(
                f"cannot set the address of bridge {interface} to {mac}: "
                f"{exc.strerror or exc}; the suite needs CAP_NET_ADMIN for it"
            ) from None
    return f"pinned {mac} (it had {current} from a port)"


def anchor_network(
    podman: PodmanService,
    network: str,
    *,
    image: str,
    name: str,
    labels: Mapping[str, str],
    timeout: float = 30.0,
) -> Anchor:
    """Start the anchor on ``network`` and pin the address of its bridge.

    The anchor carries the run's labels, so that the run's cleanup and the
    leftover sweep of a later run remove it; not the managed label, so that
    no gateway takes it for a sandbox.
    """
    client = podman.client()
    try:
        container = client.containers.create(
            image=image,
            name=name,
            entrypoint=list(ANCHOR_COMMAND[:1]),
            command=list(ANCHOR_COMMAND[1:]),
            labels=dict(labels),
            network_mode="bridge",
            networks={network: {}},
            # It holds no state: removal need not wait for a SIGTERM it ignores.
            stop_signal=int(signal.SIGKILL),
        )
        container.start()
    except Exception as exc:  # podman-py raises requests' and its own errors
        raise PodmanError(
            f"podman could not start the bridge anchor {name}: {exc}"
        ) from None
    podman.wait_until_running(name, timeout=timeout)

    bridge = podman.network_interface(network)
    gateway = podman.network_gateway(network)
    if not bridge or not gateway:
        return Anchor(name, bridge or "", "", "no bridge or address to pin")
    if not (NET / bridge).exists():
        # Rootless Podman keeps its bridges in a namespace of its own.
        return Anchor(name, bridge, "", f"bridge {bridge} is not in this namespace")
    mac = bridge_mac(gateway)
    return Anchor(name, bridge, mac, pin_address(bridge, mac))
