"""The Podman compute driver: one container per sandbox, through podman-py.

``build_container_spec`` decides everything about a sandbox container without
touching Podman; ``PodmanDriver`` carries it out on the configured socket.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import podman
import podman.errors
import requests

from .config import GuestTLS, PodmanConfig
from .errors import (
    ConfigError,
    ContainerError,
    DriverError,
    ImageUnavailableError,
    NetworkError,
    PodmanUnavailableError,
)
from .logs import event

# The variables the driver sets are the ones the supervisor reads; the
# supervisor is the file that must stand alone, so the names live there.
from .supervisor import (
    ENV_ENDPOINT,
    ENV_SANDBOX,
    ENV_SANDBOX_ID,
    ENV_TLS_CA,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
)

__all__ = [
    "BindMount",
    "ContainerSpec",
    "ContainerState",
    "GUEST_TLS_CA_PATH",
    "GUEST_TLS_CERT_PATH",
    "GUEST_TLS_KEY_PATH",
    "HOST_ALIASES",
    "MANAGED_LABEL",
    "ManagedContainer",
    "NetworkInfo",
    "PodmanDriver",
    "SUPERVISOR_PATH",
    "SUPERVISOR_SOURCE",
    "SandboxRequest",
    "build_container_spec",
    "container_name",
    "default_route_interface",
    "interface_ipv4",
    "network_gateway_ip",
    "rootless_host_address",
    "selinux_enabled",
]

SUPERVISOR_PATH = "/opt/openshell/bin/openshell-sandbox"
SUPERVISOR_SOURCE = Path(__file__).with_name("supervisor.py")
GUEST_TLS_DIR = "/etc/openshell/tls/client"
GUEST_TLS_CA_PATH = f"{GUEST_TLS_DIR}/ca.crt"
GUEST_TLS_CERT_PATH = f"{GUEST_TLS_DIR}/tls.crt"
GUEST_TLS_KEY_PATH = f"{GUEST_TLS_DIR}/tls.key"
HOST_ALIASES = ("host.containers.internal", "host.openshell.internal")
CONTAINER_PREFIX = "openshell-sandbox-"
SANDBOX_USER = "0:0"

MANAGED_LABEL = "openshell.managed"
LABEL_SANDBOX_ID = "openshell.ai/sandbox-id"
LABEL_SANDBOX_NAME = "openshell.ai/sandbox-name"
LABEL_SANDBOX_NAMESPACE = "openshell.ai/sandbox-namespace"
LABEL_SANDBOX_WORKSPACE = "openshell.ai/sandbox-workspace"
_MANAGED_LABELS = (
    MANAGED_LABEL,
    LABEL_SANDBOX_ID,
    LABEL_SANDBOX_NAME,
    LABEL_SANDBOX_NAMESPACE,
    LABEL_SANDBOX_WORKSPACE,
)

ENV_SERVER_NAME = "OPENSHELL_GATEWAY_TLS_SERVER_NAME"
_REMOVED_ALWAYS = (ENV_SERVER_NAME,)
_REMOVED_WITHOUT_TLS = (ENV_TLS_CA, ENV_TLS_CERT, ENV_TLS_KEY)

PODMAN_TIMEOUT_SECS = 30
USERNS_REMAPPED = "auto"
_SIOCGIFADDR = 0x8915
_RTF_UP = 0x1
# podman-py raises requests' exceptions (APIError is one) and its own.
_PODMAN_ERRORS = (requests.RequestException, podman.errors.PodmanError)


# The container spec, decided without Podman.


@dataclass(frozen=True)
class SandboxRequest:
    """What the driver needs to know about a sandbox to run its container."""

    id: str
    name: str
    workspace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    user_namespaces: bool = False


@dataclass(frozen=True)
class BindMount:
    """A host file bind-mounted into the container."""

    source: Path
    target: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    def to_podman(self) -> dict[str, object]:
        # podman-py renders ``read_only`` as the ``ro`` option and passes the
        # values of ``propagation`` and ``relabel`` through as options verbatim,
        # which is how ``rbind`` and ``z`` reach Podman.
        mount: dict[str, object] = {
            "type": "bind",
            "source": str(self.source),
            "target": self.target,
            "read_only": self.read_only,
        }
        if "rbind" in self.options:
            mount["propagation"] = "rbind"
        if "z" in self.options:
            mount["relabel"] = "z"
        return mount


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the sandbox container is created with."""

    name: str
    image: str
    labels: Mapping[str, str]
    environment: Mapping[str, str]
    mounts: tuple[BindMount, ...]
    extra_hosts: Mapping[str, str]
    network: str
    entrypoint: tuple[str, ...] = (SUPERVISOR_PATH,)
    user: str = SANDBOX_USER
    userns: str | None = None

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``podman.PodmanClient().containers.create``."""
        kwargs: dict[str, Any] = {
            "image": self.image,
            "name": self.name,
            "labels": dict(self.labels),
            "environment": dict(self.environment),
            "mounts": [mount.to_podman() for mount in self.mounts],
            "extra_hosts": dict(self.extra_hosts),
            "network_mode": "bridge",
            "networks": {self.network: {}},
            "entrypoint": list(self.entrypoint),
            "user": self.user,
        }
        if self.userns == USERNS_REMAPPED:
            # Podman 4 takes an automatic user namespace over its API only
            # from the ID mapping options; the namespace mode alone is ignored.
            kwargs["userns_mode"] = self.userns
            kwargs["idmappings"] = {"AutoUserNs": True}
        return kwargs


def container_name(sandbox_name: str) -> str:
    """The Podman container name of a sandbox."""
    return f"{CONTAINER_PREFIX}{sandbox_name}"


def selinux_enabled(selinuxfs: Path = Path("/sys/fs/selinux")) -> bool:
    """True when SELinux is enabled on this host, as the driver decides it."""
    return selinuxfs.is_dir()


def _bind(source: Path, target: str, selinux: bool) -> BindMount:
    options = ("ro", "rbind", "z") if selinux else ("ro", "rbind")
    return BindMount(source=source, target=target, options=options)


def _tls_mounts(guest_tls: GuestTLS, selinux: bool) -> tuple[BindMount, ...]:
    return (
        _bind(guest_tls.ca, GUEST_TLS_CA_PATH, selinux),
        _bind(guest_tls.cert, GUEST_TLS_CERT_PATH, selinux),
        _bind(guest_tls.key, GUEST_TLS_KEY_PATH, selinux),
    )


def _environment(request: SandboxRequest, config: PodmanConfig) -> dict[str, str]:
    removed = (
        _REMOVED_ALWAYS
        if config.guest_tls
        else (
            *_REMOVED_ALWAYS,
            *_REMOVED_WITHOUT_TLS,
        )
    )
    env = {k: v for k, v in request.environment.items() if k not in removed}
    env[ENV_ENDPOINT] = config.grpc_endpoint
    env[ENV_SANDBOX] = request.name
    env[ENV_SANDBOX_ID] = request.id
    if config.guest_tls is not None:
        env[ENV_TLS_CA] = GUEST_TLS_CA_PATH
        env[ENV_TLS_CERT] = GUEST_TLS_CERT_PATH
        env[ENV_TLS_KEY] = GUEST_TLS_KEY_PATH
    return env


def build_container_spec(
    request: SandboxRequest,
    config: PodmanConfig,
    *,
    gateway_ip: str,
    selinux: bool,
    supervisor_source: Path = SUPERVISOR_SOURCE,
) -> ContainerSpec:
    """Decide the container for ``request``; driver-owned values always win.

    Managed labels override user labels; the driver's variables override user
    variables; a user's ``OPENSHELL_GATEWAY_TLS_SERVER_NAME`` is dropped, and
    so are ``OPENSHELL_TLS_*`` variables when guest TLS is off.
    """
    image = request.image or config.default_image
    if not image:
        raise ContainerError(
            "the sandbox names no image and the driver has no default_image; set "
            "default_image in [openshell.drivers.podman] or the template's image"
        )

    labels = dict(request.labels)
    labels.update(
        {
            MANAGED_LABEL: "true",
            LABEL_SANDBOX_ID: request.id,
            LABEL_SANDBOX_NAME: request.name,
            LABEL_SANDBOX_NAMESPACE: request.workspace,
            LABEL_SANDBOX_WORKSPACE: request.workspace,
        }
    )

    # Limitation: supervisor_image is checked for presence at start-up but not
    # mounted as a Podman image volume; the reference bind-mounts its own
    # supervisor file instead.
    mounts = [_bind(supervisor_source, SUPERVISOR_PATH, selinux)]
    # Limitation: the real driver delivers the three files as Podman secrets
    # when a user namespace remaps IDs; the reference bind-mounts them even
    # then, so a remapped supervisor cannot read an owner-only key.
    if config.guest_tls is not None:
        mounts.extend(_tls_mounts(config.guest_tls, selinux))

    return ContainerSpec(
        name=container_name(request.name),
        image=image,
        labels=labels,
        environment=_environment(request, config),
        mounts=tuple(mounts),
        extra_hosts={alias: gateway_ip for alias in HOST_ALIASES},
        network=config.network_name,
        userns=USERNS_REMAPPED if request.user_namespaces else None,
    )


def network_gateway_ip(attrs: Mapping[str, Any]) -> str:
    """The host-side IPv4 address of a Podman network, from its inspect data."""
    for subnet in attrs.get("subnets") or ():
        try:
            network = ipaddress.ip_network(subnet.get("subnet", ""), strict=False)
        except ValueError:
            continue
        if network.version != 4:
            continue
        gateway = subnet.get("gateway")
        if gateway:
            return str(ipaddress.ip_address(gateway))
        return str(next(network.hosts()))
    raise NetworkError(
        f"network {attrs.get('name', '?')} has no IPv4 subnet, so sandboxes have "
        "no host-side address to reach the gateway on; use a bridge network with "
        "an IPv4 subnet"
    )


def default_route_interface(route_table: str) -> str | None:
    """The interface of the IPv4 default route with the lowest metric, if any.

    ``route_table`` is the text of ``/proc/net/route``.
    """
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        name, destination, flags, metric, mask = (
            fields[0],
            fields[1],
            fields[3],
            fields[6],
            fields[7],
        )
        try:
            up = int(flags, 16) & _RTF_UP
            rank = int(metric)
        except ValueError:
            continue
        if destination != "00000000" or mask != "00000000" or not up:
            continue
        if best is None or (rank, name) < best:
            best = (rank, name)
    return best[1] if best else None


def interface_ipv4(name: str) -> str | None:
    """The primary IPv4 address of the network interface ``name``, or None."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(reply[20:24])


def _interface_names() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def rootless_host_address(
    route_table: str | None = None,
    *,
    address_of: Callable[[str], str | None] = interface_ipv4,
    interfaces: Callable[[], Sequence[str]] = _interface_names,
) -> str:
    """The host address that sandboxes of rootless Podman reach the gateway on.

    Rootless Podman keeps its bridge networks in a network namespace of its
    own, joined to the host by a user-mode helper (slirp4netns) that opens
    each connection a sandbox makes as a socket of the host user on the host.
    The bridge's gateway address lives inside that namespace, where no host
    process can listen; the host's own addresses are reachable that way. The
    address of the interface the default route leaves from is used, else the
    first address that is not loopback.
    """
    if route_table is None:
        try:
            route_table = Path("/proc/net/route").read_text()
        except OSError:
            route_table = ""
    candidates = [default_route_interface(route_table), *interfaces()]
    for name in dict.fromkeys(c for c in candidates if c):
        address = address_of(name)
        if address and not ipaddress.ip_address(address).is_loopback:
            return address
    raise NetworkError(
        "rootless Podman: sandboxes reach the gateway through one of the host's "
        "own addresses, and this host has no IPv4 address besides loopback; "
        "give it one, or run the gateway against rootful Podman"
    )


# The driver, on a live Podman socket.


@dataclass(frozen=True)
class NetworkInfo:
    """The sandbox network as the driver found or created it.

    ``gateway_ip`` is the bridge's host side; ``host_address`` is set instead
    when Podman runs rootless and that side lives out of the gateway's reach.
    """

    name: str
    gateway_ip: str
    created: bool
    host_address: str = ""
    rootless: bool = False

    @property
    def sandbox_address(self) -> str:
        """The address sandboxes reach the gateway on."""
        return self.host_address or self.gateway_ip


@dataclass(frozen=True)
class ContainerState:
    """A sandbox container's state as Podman reports it."""

    status: str
    running: bool
    exit_code: int | None
    error: str = ""


@dataclass(frozen=True)
class ManagedContainer:
    """A sandbox container found on the network when the gateway starts."""

    name: str
    sandbox_id: str
    sandbox_name: str
    workspace: str
    labels: Mapping[str, str]


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise ConfigError(f"{what} file {path} does not exist; fix {what}")
    if not path.is_file():
        raise ConfigError(f"{what} path {path} is not a file; fix {what}")
    if not os.access(path, os.R_OK):
        raise ConfigError(
            f"{what} file {path} is not readable by the gateway; fix its permissions"
        )


def _api_message(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    text = str(explanation or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class PodmanDriver:
    """Sandbox containers on the Podman API socket the configuration names."""

    def __init__(
        self,
        config: PodmanConfig,
        *,
        supervisor_source: Path = SUPERVISOR_SOURCE,
        selinux: bool | None = None,
        client_factory: Callable[..., Any] = podman.PodmanClient,
    ) -> None:
        self.config = config
        self.supervisor_source = supervisor_source
        self.selinux = selinux_enabled() if selinux is None else selinux
        self._client_factory = client_factory
        self._client: Any = None
        self.network: NetworkInfo | None = None
        self.rootless = False

    @property
    def socket_url(self) -> str:
        return f"unix://{self.config.socket_path}"

    # Start-up.

    def check_files(self) -> None:
        """Check the host files the containers will bind-mount."""
        if not os.access(self.supervisor_source, os.X_OK):
            raise ConfigError(
                f"supervisor file {self.supervisor_source} is not executable; "
                f"run chmod 0755 {self.supervisor_source}"
            )
        tls = self.config.guest_tls
        if tls is not None:
            _check_readable(tls.ca, "guest_tls_ca")
            _check_readable(tls.cert, "guest_tls_cert")
            _check_readable(tls.key, "guest_tls_key")

    def connect(self) -> str:
        """Connect to the configured socket and return the Podman version.

        Limitation: the real driver refuses hosts without cgroups v2; the
        reference runs on whatever Podman accepts.
        """
        path = self.config.socket_path
        hint = (
            f"start it with `podman system service --time=0 unix://{path}` or fix "
            "socket_path in [openshell.drivers.podman]"
        )
        origin = self.config.socket_origin
        if not path.exists():
            raise PodmanUnavailableError(
                f"Podman API socket {path} (from {origin}) does not exist; {hint}"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(5)
        try:
            probe.connect(str(path))
        except OSError as error:
            raise PodmanUnavailableError(
                f"Podman API socket {path} (from {origin}) does not answer: "
                f"{error.strerror or error}; {hint}"
            ) from None
        finally:
            probe.close()
        self._client = self._client_factory(
            base_url=self.socket_url, timeout=PODMAN_TIMEOUT_SECS
        )
        try:
            # /_ping answers at once with the version in a header, where
            # /version and /info gather host facts for a few tenths of a
            # second each, on every gateway start.
            answer = self._client.api.get("/_ping", compatible=True)
            answer.raise_for_status()
            self.rootless = self._is_rootless(path)
        except _PODMAN_ERRORS as error:
            raise PodmanUnavailableError(
                f"Podman API socket {path} (from {origin}) does not answer the "
                f"API: {_api_message(error)}; {hint}"
            ) from None
        return str(answer.headers.get("Libpod-Api-Version") or "unknown")

    def _is_rootless(self, path: Path) -> bool:
        """Whether the Podman behind ``path`` runs rootless.

        A socket that root owns was made by a rootful service; only for one of
        another owner is Podman asked, since a rootful service's socket may
        also have been handed to another user.
        """
        try:
            if path.stat().st_uid == 0:
                return False
        except OSError:
            pass
        info = self._client.info()
        security = (info.get("host") or {}).get("security") or {}
        return bool(security.get("rootless"))

    def ensure_network(self) -> NetworkInfo:
        """Find the sandbox network, or create it, and read its host address."""
        name = self.config.network_name
        created = False
        host_address = rootless_host_address() if self.rootless else ""
        try:
            network = self._client.networks.get(name)
        except podman.errors.NotFound:
            try:
                network = self._client.networks.create(
                    name, driver="bridge", labels={MANAGED_LABEL: "true"}
                )
            except _PODMAN_ERRORS as error:
                raise NetworkError(
                    f"cannot create Podman network {name}: {_api_message(error)}"
                ) from None
            created = True
            network.reload()
        except _PODMAN_ERRORS as error:
            raise NetworkError(
                f"cannot inspect Podman network {name}: {_api_message(error)}"
            ) from None
        attrs = network.attrs
        driver = attrs.get("driver", "bridge")
        if driver != "bridge":
            raise NetworkError(
                f"Podman network {name} uses the {driver} driver; sandboxes need a "
                "bridge network: remove it or set another network_name"
            )
        self.network = NetworkInfo(
            name=name,
            gateway_ip=network_gateway_ip(attrs),
            created=created,
            host_address=host_address,
            rootless=self.rootless,
        )
        return self.network

    def remove_network(self) -> None:
        """Remove the sandbox network, used when start-up fails after creating it."""
        if self._client is None or self.network is None:
            return
        try:
            self._client.networks.get(self.network.name).remove()
        except _PODMAN_ERRORS:
            pass

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # Sandboxes.

    def spec_for(self, request: SandboxRequest) -> ContainerSpec:
        if self.network is None:
            raise DriverError("the Podman driver has not been started")
        return build_container_spec(
            request,
            self.config,
            gateway_ip=self.network.sandbox_address,
            selinux=self.selinux,
            supervisor_source=self.supervisor_source,
        )

    def image_present(self, image: str) -> bool:
        """Whether ``image`` is in local storage."""
        try:
            return bool(self._client.images.exists(image))
        except _PODMAN_ERRORS:
            return False

    def _ensure_image(self, image: str) -> None:
        policy = self.config.image_pull_policy
        try:
            present = self._client.images.exists(image)
        except _PODMAN_ERRORS as error:
            raise ImageUnavailableError(
                f"cannot look up image {image}: {_api_message(error)}"
            ) from None
        if policy == "never" or (policy == "missing" and present):
            if not present:
                raise ImageUnavailableError(
                    f"image {image} is not present and image_pull_policy is never; "
                    f"build or load it first (podman images shows what is present)"
                )
            return
        event("info", "image_pull", image=image, policy=policy)
        failure = self._pull(image)
        if failure is None:
            return
        if policy == "newer" and present:
            event(
                "warn", "image_pull_failed", image=image, error=failure, using="local"
            )
            return
        raise ImageUnavailableError(
            f"cannot pull image {image} (image_pull_policy {policy}): {failure}"
        )

    def _pull(self, image: str) -> str | None:
        """Pull ``image``; None on success, else why it failed."""
        try:
            # Podman reports a failed pull inside the progress stream, not as
            # an HTTP error, so the stream is read for an ``error`` record.
            for record in self._client.images.pull(image, stream=True, decode=True):
                if isinstance(record, dict) and record.get("error"):
                    return str(record["error"]).strip().splitlines()[0]
        except _PODMAN_ERRORS as error:
            return _api_message(error)
        if not self._client.images.exists(image):
            return "the pull finished but the image is not present"
        return None

    def create_container(self, request: SandboxRequest) -> str:
        """Create and start the sandbox's container; return its id."""
        spec = self.spec_for(request)
        self._ensure_image(spec.image)
        try:
            container = self._client.containers.create(**spec.create_kwargs())
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot create container {spec.name}: {_api_message(error)}"
            ) from None
        try:
            container.start()
        except _PODMAN_ERRORS as error:
            message = _api_message(error)
            self._remove_quietly(spec.name)
            raise ContainerError(
                f"cannot start container {spec.name}: {message}"
            ) from None
        event(
            "info",
            "container_started",
            sandbox_id=request.id,
            sandbox=request.name,
            container=spec.name,
            container_id=container.id[:12],
            image=spec.image,
            network=spec.network,
            guest_tls="on" if self.config.guest_tls else "off",
            userns=spec.userns or "default",
        )
        return str(container.id)

    def _get(self, name: str) -> Any | None:
        try:
            return self._client.containers.get(name)
        except podman.errors.NotFound:
            return None
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot inspect container {name}: {_api_message(error)}"
            ) from None

    def container_state(self, name: str) -> ContainerState | None:
        """The container's state, or None when it no longer exists."""
        container = self._get(name)
        if container is None:
            return None
        state = container.attrs.get("State", {})
        status = str(state.get("Status", "unknown"))
        running = bool(state.get("Running", status == "running"))
        exit_code = None if running else state.get("ExitCode")
        return ContainerState(
            status=status,
            running=running,
            exit_code=int(exit_code) if exit_code is not None else None,
            error=str(state.get("Error", "") or ""),
        )

    def managed_containers(self) -> list[ManagedContainer]:
        """Sandbox containers already on the network, from an earlier run."""
        try:
            containers = self._client.containers.list(
                all=True, filters={"label": f"{MANAGED_LABEL}=true"}
            )
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot list sandbox containers: {_api_message(error)}"
            ) from None
        found = []
        for container in containers:
            labels = dict(container.attrs.get("Labels") or {})
            networks = container.attrs.get("Networks") or []
            sandbox_id = labels.get(LABEL_SANDBOX_ID)
            sandbox_name = labels.get(LABEL_SANDBOX_NAME)
            if not sandbox_id or not sandbox_name:
                continue
            if self.config.network_name not in networks:
                continue
            found.append(
                ManagedContainer(
                    name=container.name,
                    sandbox_id=sandbox_id,
                    sandbox_name=sandbox_name,
                    workspace=labels.get(LABEL_SANDBOX_WORKSPACE, ""),
                    labels={
                        key: value
                        for key, value in labels.items()
                        if key not in _MANAGED_LABELS
                    },
                )
            )
        return found

    def last_log_line(self, name: str) -> str:
        """The container's last non-empty log line, for a one-line diagnosis."""
        container = self._get(name)
        if container is None:
            return ""
        try:
            chunks = container.logs(stdout=True, stderr=True, tail=5)
            text = b"".join(chunks).decode("utf-8", "replace")
        except _PODMAN_ERRORS:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def stop_container(self, name: str) -> bool:
        """Stop the container; False when it does not exist."""
        container = self._get(name)
        if container is None:
            return False
        if container.attrs.get("State", {}).get("Running") is False:
            return True
        try:
            container.stop(timeout=self.config.stop_timeout_secs, ignore=True)
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot stop container {name}: {_api_message(error)}"
            ) from None
        return True

    def start_container(self, name: str) -> bool:
        """Start a stopped container; False when it does not exist."""
        container = self._get(name)
        if container is None:
            return False
        try:
            container.start()
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot start container {name}: {_api_message(error)}"
            ) from None
        return True

    def delete_container(self, name: str) -> bool:
        """Stop and remove the container; False when it did not exist."""
        if not self.stop_container(name):
            return False
        self._remove(name)
        event("info", "container_removed", container=name)
        return True

    def _remove(self, name: str) -> None:
        container = self._get(name)
        if container is None:
            return
        try:
            container.remove(force=True)
        except podman.errors.NotFound:
            return
        except _PODMAN_ERRORS as error:
            raise ContainerError(
                f"cannot remove container {name}: {_api_message(error)}"
            ) from None

    def _remove_quietly(self, name: str) -> None:
        try:
            self._remove(name)
        except DriverError:
            pass
