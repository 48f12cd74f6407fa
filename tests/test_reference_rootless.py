"""The reference driver under rootless Podman and with remapped user IDs.

Rootless Podman keeps bridge networks out of the host's network namespace, so
sandboxes reach the gateway on a host address instead of the bridge's host
side; a sandbox whose template asks for user namespaces gets its IDs remapped.
No Podman is needed: the Podman client is a small double.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from openshell._proto import openshell_pb2

from openshell_reference import driver as driver_module
from openshell_reference.config import GuestTLS, PodmanConfig
from openshell_reference.driver import (
    HOST_ALIASES,
    NetworkInfo,
    PodmanDriver,
    SandboxRequest,
    build_container_spec,
    default_route_interface,
    rootless_host_address,
)
from openshell_reference.errors import NetworkError
from openshell_reference.server import OpenShellService, SandboxStore

ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
tun9\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0
"""
REQUEST = SandboxRequest(id="id-1", name="alpha", workspace="team-a")
CONFIG = PodmanConfig(
    network_name="osa-net",
    default_image="localhost/sandbox:1",
    guest_tls=GuestTLS(Path("/pki/ca.crt"), Path("/pki/tls.crt"), Path("/pki/tls.key")),
    grpc_endpoint="https://host.containers.internal:17670",
)


def spec(request: SandboxRequest = REQUEST, gateway_ip: str = "10.89.0.1"):
    return build_container_spec(
        request,
        CONFIG,
        gateway_ip=gateway_ip,
        selinux=False,
        supervisor_source=Path("/src/supervisor.py"),
    )


# The host address of rootless sandboxes


def test_the_default_route_with_the_lowest_metric_names_the_interface():
    assert default_route_interface(ROUTES) == "eth0"


def test_a_table_without_a_default_route_names_no_interface():
    assert default_route_interface(ROUTES.splitlines()[0] + "\n") is None


def test_the_address_of_the_default_route_interface_is_the_host_address():
    addresses = {"lo": "127.0.0.1", "eth0": "192.0.2.2", "wlan0": "192.168.0.7"}

    found = rootless_host_address(
        ROUTES, address_of=addresses.get, interfaces=lambda: ["lo", "wlan0"]
    )

    assert found == "192.0.2.2"


def test_without_a_default_route_the_first_address_besides_loopback_is_used():
    addresses = {"lo": "127.0.0.1", "ens4": "198.51.100.4"}

    found = rootless_host_address(
        "", address_of=addresses.get, interfaces=lambda: ["lo", "ens4"]
    )

    assert found == "198.51.100.4"


def test_a_host_with_only_loopback_is_refused_naming_why():
    with pytest.raises(NetworkError, match="no IPv4 address besides loopback"):
        rootless_host_address(
            "", address_of={"lo": "127.0.0.1"}.get, interfaces=lambda: ["lo"]
        )


def test_loopback_has_an_address_this_machine_can_read():
    assert driver_module.interface_ipv4("lo") == "127.0.0.1"


def test_an_interface_that_does_not_exist_has_no_address():
    assert driver_module.interface_ipv4("no-such-if0") is None


def test_sandboxes_reach_the_host_address_when_podman_is_rootless():
    rootless = NetworkInfo("osa-net", "10.89.0.1", False, host_address="192.0.2.2")
    rootful = NetworkInfo("osa-net", "10.89.0.1", False)

    assert rootless.sandbox_address == "192.0.2.2"
    assert rootful.sandbox_address == "10.89.0.1"


# The driver against a Podman double


class _Network:
    def __init__(self) -> None:
        self.attrs = {
            "name": "osa-net",
            "driver": "bridge",
            "subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}],
        }


class _Client:
    def __init__(self, rootless: bool) -> None:
        self.rootless = rootless
        self.networks = SimpleNamespace(get=lambda name: _Network())

        self.api = SimpleNamespace(get=self._get)
        self.asked_for_info = 0

    def _get(self, path: str, compatible: bool = False) -> SimpleNamespace:
        assert (path, compatible) == ("/_ping", True)
        return SimpleNamespace(
            headers={"Libpod-Api-Version": "4.3.1"}, raise_for_status=lambda: None
        )

    def info(self) -> dict:
        self.asked_for_info += 1
        return {"host": {"security": {"rootless": self.rootless}}}


@pytest.fixture
def socket_path(tmp_path: Path):
    path = tmp_path / "podman.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    yield path
    listener.close()


def _socket_owned_by(monkeypatch: pytest.MonkeyPatch, path: Path, uid: int) -> None:
    """Make ``path`` look owned by ``uid``, as the service that made it would."""
    real_stat = Path.stat

    def stat(self: Path, *args, **kwargs):
        found = real_stat(self, *args, **kwargs)
        if self == path:
            return SimpleNamespace(st_uid=uid, st_mode=found.st_mode)
        return found

    monkeypatch.setattr(Path, "stat", stat)


@pytest.mark.parametrize("rootless", [True, False])
def test_the_driver_points_both_aliases_where_sandboxes_reach_the_host(
    socket_path: Path, monkeypatch: pytest.MonkeyPatch, rootless: bool
):
    monkeypatch.setattr(driver_module, "rootless_host_address", lambda: "192.0.2.2")
    _socket_owned_by(monkeypatch, socket_path, 1000 if rootless else 0)
    config = PodmanConfig(
        socket_path=socket_path,
        network_name="osa-net",
        default_image="localhost/sandbox:1",
    )
    driver = PodmanDriver(
        config, selinux=False, client_factory=lambda **_: _Client(rootless)
    )

    assert driver.connect() == "4.3.1"
    network = driver.ensure_network()
    hosts = driver.spec_for(REQUEST).extra_hosts

    expected = "192.0.2.2" if rootless else "10.89.0.1"
    assert network.rootless is rootless
    assert network.sandbox_address == expected
    assert hosts == {alias: expected for alias in HOST_ALIASES}


# Remapped user IDs


def test_a_sandbox_that_asks_for_user_namespaces_gets_its_ids_remapped():
    remapped = SandboxRequest(
        id="id-2", name="beta", workspace="team-a", user_namespaces=True
    )

    kwargs = spec(remapped).create_kwargs()

    assert kwargs["userns_mode"] == "auto"
    assert kwargs["idmappings"] == {"AutoUserNs": True}


def test_by_default_the_ids_are_not_remapped():
    kwargs = spec().create_kwargs()

    assert "userns_mode" not in kwargs
    assert "idmappings" not in kwargs


def test_remapped_ids_still_get_the_guest_tls_files_bind_mounted():
    remapped = SandboxRequest(
        id="id-2", name="beta", workspace="team-a", user_namespaces=True
    )

    targets = {mount.target for mount in spec(remapped).mounts}

    assert "/etc/openshell/tls/client/tls.key" in targets


class _RecordingDriver:
    def __init__(self) -> None:
        self.requests: list[SandboxRequest] = []

    def create_container(self, request: SandboxRequest) -> str:
        self.requests.append(request)
        return "id"


@pytest.mark.parametrize("asked", [True, False])
def test_the_template_asks_the_driver_for_user_namespaces(asked: bool):
    driver = _RecordingDriver()
    service = OpenShellService(SandboxStore(), driver)  # type: ignore[arg-type]
    request = openshell_pb2.CreateSandboxRequest(
        name="gamma",
        spec=openshell_pb2.SandboxSpec(
            template=openshell_pb2.SandboxTemplate(user_namespaces=asked)
        ),
    )
    request.workspace_scope.workspace = "team-a"

    service.CreateSandbox(request, context=None)

    assert driver.requests[-1].user_namespaces is asked


@pytest.mark.parametrize(
    ("owner", "podman_says", "rootless", "asked"),
    [
        # A socket root owns was made by a rootful service: Podman is not asked.
        (0, True, False, 0),
        # Of another owner, Podman's own word decides, either way.
        (1000, False, False, 1),
        (1000, True, True, 1),
    ],
    ids=["root-owned", "user-owned-rootful", "user-owned-rootless"],
)
def test_the_socket_owner_or_podman_itself_tells_whether_podman_is_rootless(
    socket_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    owner: int,
    podman_says: bool,
    rootless: bool,
    asked: int,
):
    client = _Client(rootless=podman_says)
    _socket_owned_by(monkeypatch, socket_path, owner)
    config = PodmanConfig(socket_path=socket_path, network_name="osa-net")
    driver = PodmanDriver(config, selinux=False, client_factory=lambda **_: client)

    driver.connect()

    assert driver.rootless is rootless
    assert client.asked_for_info == asked
