"""Many sandboxes at once, a gateway restart, a gateway that is gone for good.

Readiness is watched through the official SDK, as a user would watch it;
sessions are read from the gateway's log, where the reference records each
``supervisor_connected`` event with its session ID and peer subject.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

from openshell._proto import openshell_pb2

from . import logfmt
from ._wait import poll
from .container import ContainerView
from .deployment import WORKSPACE, Deployment, Sandbox
from .errors import AcceptanceError, SandboxNotReady

__all__ = [
    "CONNECT_TIMEOUT_VARIABLE",
    "Readiness",
    "Restart",
    "RetrySchedule",
    "Session",
    "Started",
    "Stopped",
    "endpoints",
    "network_view",
    "sandbox_network",
    "restart_gateway",
    "retry_schedule",
    "sessions",
    "start_at_once",
    "stop_gateway",
    "wait_all_ready",
    "wait_exited",
]

CONNECT_TIMEOUT_VARIABLE = "OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT"
"""The reference supervisor's bound on reconnecting, in seconds."""


@dataclass(frozen=True)
class Started:
    """A sandbox, and when (monotonic seconds) the suite asked for it."""

    sandbox: Sandbox
    since: float


@dataclass(frozen=True)
class Readiness:
    """How long a sandbox took to be ready, or why it was not."""

    sandbox: Sandbox
    seconds: float | None
    cause: str | None = None
    network: Mapping[str, object] | None = None

    @property
    def ready(self) -> bool:
        return self.seconds is not None


@dataclass(frozen=True)
class Session:
    """One supervisor session, as the gateway logged it when it accepted it."""

    sandbox_id: str
    session_id: str
    peer_subject: str
    transport: str


def start_at_once(
    deployment: Deployment,
    count: int,
    *,
    environment: Mapping[str, str] | None = None,
) -> list[Started]:
    """Ask the gateway for ``count`` sandboxes together, one thread each.

    Every sandbox that was created is on the deployment's list for cleanup
    before the first failure, if any, is raised.
    """
    deployment.client()

    def start_one() -> Started:
        since = time.monotonic()
        return Started(deployment.start_sandbox(environment=environment), since)

    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sandbox") as pool:
        futures = [pool.submit(start_one) for _ in range(count)]
    return [future.result() for future in futures]


def wait_all_ready(
    deployment: Deployment,
    started: Sequence[Started],
    *,
    timeout: float,
    look_after: float = 5.0,
) -> list[Readiness]:
    """Each sandbox's time from ``since`` until the SDK first saw it READY.

    A sandbox in phase ERROR (its container exited) is not waited for. One
    still not ready after ``look_after`` seconds has its network looked at
    then, while its container still runs, for the report.
    """
    ready_phase = openshell_pb2.SANDBOX_PHASE_READY
    error_phase = openshell_pb2.SANDBOX_PHASE_ERROR
    client = deployment.client()
    seen: dict[str, float] = {}
    failed: set[str] = set()
    views: dict[str, Mapping[str, object]] = {}
    began = time.monotonic()

    def all_settled() -> bool | None:
        if not views and time.monotonic() - began >= look_after:
            for entry in started:
                if entry.sandbox.id not in seen:
                    views[entry.sandbox.id] = sandbox_network(deployment, entry.sandbox)
        for entry in started:
            if entry.sandbox.id in seen or entry.sandbox.id in failed:
                continue
            ref = client.get(entry.sandbox.name, workspace=WORKSPACE)
            if ref.status.phase == ready_phase:
                seen[entry.sandbox.id] = time.monotonic() - entry.since
            elif ref.status.phase == error_phase:
                failed.add(entry.sandbox.id)
        return True if len(seen) + len(failed) == len(started) else None

    poll(all_settled, timeout=timeout, ceiling=0.2)
    return [_readiness(deployment, entry, seen, views) for entry in started]


def _readiness(
    deployment: Deployment,
    entry: Started,
    seen: Mapping[str, float],
    views: Mapping[str, Mapping[str, object]],
) -> Readiness:
    sandbox = entry.sandbox
    if sandbox.id in seen:
        return Readiness(sandbox, seen[sandbox.id])
    network = views.get(sandbox.id)
    try:
        deployment.wait_ready(sandbox, timeout=0.1, diagnose_after=0.0)
    except SandboxNotReady as exc:
        return Readiness(sandbox, None, str(exc), network)
    return Readiness(sandbox, None, "ready only after the deadline", network)


# Read from inside the sandbox: its link's peer index on the host, its MAC,
# its ARP table and routes, and the TCP sockets it holds (state 02: SYN_SENT).
_INSIDE = (
    "for f in /sys/class/net/eth0/iflink /sys/class/net/eth0/address "
    "/sys/class/net/eth0/operstate /proc/net/arp /proc/net/route; "
    'do echo "# $f"; cat "$f"; done; echo "# /proc/net/tcp"; '
    "grep -v local_address /proc/net/tcp"
)


def sandbox_network(deployment: Deployment, sandbox: Sandbox) -> dict[str, object]:
    """One sandbox's link as the container and the host each see it."""
    inspect = deployment.container(sandbox)
    if inspect is None:
        return {"container": "(none)"}
    attached = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    view: dict[str, object] = {
        "container": inspect.get("Name", ""),
        "state": inspect["State"].get("Status"),
        "address": {
            name: f"{net.get('IPAddress')} {net.get('MacAddress')}"
            for name, net in attached.items()
        },
    }
    try:
        _, output = deployment.podman.exec(inspect["Id"], ["/bin/sh", "-c", _INSIDE])
    except AcceptanceError as exc:
        view["inside"] = [f"cannot look inside: {exc}"]
        return view
    inside = output.splitlines()
    view["inside"] = inside
    peer = inside[1].strip() if len(inside) > 1 else ""
    links = _host_command(["ip", "-o", "link"])
    view["host link of its peer"] = [
        line for line in links if peer and line.startswith(f"{peer}:")
    ]
    for net in attached.values():
        address = net.get("IPAddress")
        if address:
            view["host neighbour"] = _host_command(["ip", "neigh", "show", address])
    return view


def endpoints(deployment: Deployment, sandboxes: Sequence[Sandbox]) -> dict[str, str]:
    """The OPENSHELL_ENDPOINT each sandbox's container was given, by sandbox name."""
    found = {}
    for sandbox in sandboxes:
        inspect = deployment.container(sandbox)
        env = ContainerView(inspect).environment if inspect else {}
        found[sandbox.name] = env.get("OPENSHELL_ENDPOINT", "(no container)")
    return found


def network_view(deployment: Deployment) -> dict[str, object]:
    """Who holds which address on the run's network, as Podman and the host see it.

    For a sandbox that cannot reach the gateway: two containers with one
    address, or a host neighbour entry that names another MAC, say why.
    """
    podman = deployment.podman
    network = deployment.network_name
    holders: dict[str, list[str]] = {}
    for name in podman.managed_containers(network):
        try:
            attached = podman.inspect(name)["NetworkSettings"]["Networks"][network]
        except (AcceptanceError, KeyError):
            continue
        address = f"{attached.get('IPAddress')} {attached.get('MacAddress')}"
        holders.setdefault(str(attached.get("IPAddress")), []).append(
            f"{name} {address}"
        )
    bridge = podman.network_interface(network)
    return {
        "bridge": bridge,
        "subnets": podman.network_subnets(network),
        "containers by address": holders,
        "shared addresses": sorted(a for a, names in holders.items() if len(names) > 1),
        "host neighbours": _host_command(["ip", "neigh", "show", "dev", str(bridge)]),
        "host routes": _host_command(["ip", "-4", "route"]),
        "bridge link": _host_command(["ip", "-o", "link", "show", str(bridge)]),
        "bridge local addresses": [
            line
            for line in _host_command(["bridge", "fdb", "show", "br", str(bridge)])
            if "permanent" in line
        ],
        "bridge ports": _host_command(
            ["ip", "-br", "link", "show", "master", str(bridge)]
        ),
    }


def _host_command(argv: list[str]) -> list[str]:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"{argv[0]}: {exc}"]
    return (result.stdout + result.stderr).splitlines()


def sessions(gateway_log: str) -> list[Session]:
    """Every session the gateway accepted, in the order its log shows them."""
    return [
        Session(
            sandbox_id=fields.get("sandbox_id", ""),
            session_id=fields.get("session_id", ""),
            peer_subject=fields.get("peer_subject", ""),
            transport=fields.get("transport", ""),
        )
        for fields in logfmt.events(gateway_log.splitlines(), "supervisor_connected")
    ]


# The gateway goes away


@dataclass(frozen=True)
class Stopped:
    """A gateway stopped by SIGTERM to its process ID."""

    pid: int
    exit_code: int | None
    at: float
    log: str


@dataclass(frozen=True)
class Restart:
    """A gateway stopped and started again with the same ports and TOML."""

    stopped: Stopped
    pid: int
    seconds_to_healthy: float


def stop_gateway(deployment: Deployment) -> Stopped:
    """SIGTERM the gateway by its process ID and wait for it to exit."""
    gateway = deployment.gateway
    assert gateway is not None and gateway.pid is not None, "start the gateway first"
    pid = gateway.pid
    at = time.monotonic()
    code = gateway.stop()
    return Stopped(pid=pid, exit_code=code, at=at, log=gateway.log())


def restart_gateway(deployment: Deployment, *, timeout: float = 30.0) -> Restart:
    """Stop the gateway, then start it again with the same settings.

    The deployment writes the same TOML and passes the same flags, so the
    gateway comes back on the same ports; the log of the stopped process is
    kept in the result, since the new process writes a new one.
    """
    stopped = stop_gateway(deployment)
    gateway = deployment.start_gateway(timeout)
    assert gateway.pid is not None
    return Restart(stopped, gateway.pid, time.monotonic() - stopped.at)


def wait_exited(
    deployment: Deployment, sandbox: Sandbox, *, timeout: float
) -> tuple[int | None, float | None]:
    """The container's exit code and when it exited, or (None, None) in time."""

    def exited() -> tuple[int, float] | None:
        inspect = deployment.container(sandbox)
        if inspect is None or inspect["State"]["Running"]:
            return None
        return int(inspect["State"]["ExitCode"]), time.monotonic()

    found = poll(exited, timeout=timeout, ceiling=0.25)
    return found if found is not None else (None, None)


# The supervisor's retries


@dataclass(frozen=True)
class RetrySchedule:
    """The reconnect attempts a supervisor logged after its session was lost."""

    delays: tuple[float, ...]
    gave_up_after: int | None
    last_line: str

    @property
    def total_wait(self) -> float:
        return sum(self.delays)

    @property
    def growing(self) -> bool:
        """Each interval at least the one before; the last may be cut by the bound."""
        head = self.delays[:-1]
        if len(head) < 2 or head[1] <= head[0]:
            return False
        return all(later >= earlier for earlier, later in pairwise(head))

    def rows(self) -> list[tuple[str, str]]:
        rows = [(f"retry {i}", f"in {d:.2f}s") for i, d in enumerate(self.delays, 1)]
        rows.append(("gave up after attempts", str(self.gave_up_after)))
        rows.append(("last line", self.last_line))
        return rows


def retry_schedule(lines: Sequence[str]) -> RetrySchedule:
    """The retries after the last lost session, from a supervisor's log lines."""
    start = 0
    for index, line in enumerate(lines):
        if "event=reconnecting" in line or "event=session_lost" in line:
            start = index
    after = lines[start:]
    delays = tuple(
        float(fields["retry_in"].rstrip("s"))
        for fields in logfmt.events(after, "connect_retry")
        if fields.get("retry_in")
    )
    failed = logfmt.events(after, "connect_failed")
    attempts = failed[-1].get("attempts", "") if failed else ""
    last = [line for line in lines if line.strip()][-1:] or [""]
    return RetrySchedule(
        delays=delays,
        gave_up_after=int(attempts) if attempts.isdigit() else None,
        last_line=last[0],
    )
