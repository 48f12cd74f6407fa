"""The Podman driver's container spec, decided without Podman."""

from __future__ import annotations

from pathlib import Path

import pytest

from openshell_reference.config import GuestTLS, PodmanConfig
from openshell_reference.driver import (
    GUEST_TLS_CA_PATH,
    GUEST_TLS_CERT_PATH,
    GUEST_TLS_KEY_PATH,
    SUPERVISOR_PATH,
    SUPERVISOR_SOURCE,
    PodmanDriver,
    SandboxRequest,
    build_container_spec,
    network_gateway_ip,
    selinux_enabled,
)
from openshell_reference.errors import (
    ConfigError,
    ContainerError,
    NetworkError,
    PodmanUnavailableError,
)

GUEST = GuestTLS(
    ca=Path("/pki/ca.crt"),
    cert=Path("/pki/client/tls.crt"),
    key=Path("/pki/client/tls.key"),
)
TLS_ON = PodmanConfig(
    network_name="osa-net",
    default_image="localhost/sandbox:1",
    grpc_endpoint="https://host.containers.internal:17670",
    guest_tls=GUEST,
)
TLS_OFF = PodmanConfig(
    network_name="osa-net",
    default_image="localhost/sandbox:1",
    grpc_endpoint="http://host.containers.internal:17670",
)
REQUEST = SandboxRequest(
    id="3f0c1c1e-0000-4000-8000-000000000001",
    name="alpha",
    workspace="team-a",
    labels={"owner": "me"},
    environment={"FOO": "bar"},
)


def spec(request=REQUEST, config=TLS_ON, selinux=False):
    return build_container_spec(
        request,
        config,
        gateway_ip="10.89.0.1",
        selinux=selinux,
        supervisor_source=Path("/src/supervisor.py"),
    )


def by_target(container_spec):
    return {mount.target: mount for mount in container_spec.mounts}


def test_the_container_is_named_after_the_sandbox():
    assert spec().name == "openshell-sandbox-alpha"


def test_the_managed_labels_are_set():
    labels = spec().labels

    assert labels["openshell.managed"] == "true"
    assert labels["openshell.ai/sandbox-id"] == REQUEST.id
    assert labels["openshell.ai/sandbox-name"] == "alpha"
    assert labels["openshell.ai/sandbox-namespace"] == "team-a"
    assert labels["openshell.ai/sandbox-workspace"] == "team-a"
    assert labels["owner"] == "me"


def test_managed_labels_win_over_user_labels():
    request = SandboxRequest(
        id="real-id",
        name="alpha",
        workspace="team-a",
        labels={"openshell.managed": "false", "openshell.ai/sandbox-id": "forged"},
    )

    labels = spec(request).labels

    assert labels["openshell.managed"] == "true"
    assert labels["openshell.ai/sandbox-id"] == "real-id"


def test_the_template_image_wins_over_the_default_image():
    request = SandboxRequest(id="i", name="n", workspace="w", image="custom:2")

    assert spec().image == "localhost/sandbox:1"
    assert spec(request).image == "custom:2"


def test_no_image_at_all_is_an_error():
    config = PodmanConfig(grpc_endpoint="http://h:1")

    with pytest.raises(ContainerError, match="default_image"):
        spec(config=config)


def test_both_host_aliases_point_at_the_network_gateway():
    assert spec().extra_hosts == {
        "host.containers.internal": "10.89.0.1",
        "host.openshell.internal": "10.89.0.1",
    }


def test_the_supervisor_is_the_entrypoint_and_runs_as_root():
    container_spec = spec()

    assert container_spec.entrypoint == (SUPERVISOR_PATH,)
    assert container_spec.user == "0:0"
    supervisor = by_target(container_spec)[SUPERVISOR_PATH]
    assert supervisor.source == Path("/src/supervisor.py")
    assert supervisor.read_only


def test_guest_tls_mounts_the_three_files_read_only():
    mounts = by_target(spec())

    assert mounts[GUEST_TLS_CA_PATH].source == GUEST.ca
    assert mounts[GUEST_TLS_CERT_PATH].source == GUEST.cert
    assert mounts[GUEST_TLS_KEY_PATH].source == GUEST.key
    for target in (GUEST_TLS_CA_PATH, GUEST_TLS_CERT_PATH, GUEST_TLS_KEY_PATH):
        assert mounts[target].options == ("ro", "rbind")


def test_selinux_adds_the_z_option_to_every_bind_mount():
    for mount in spec(selinux=True).mounts:
        assert mount.options == ("ro", "rbind", "z")


@pytest.mark.parametrize("selinux", [False, True])
def test_mounts_render_for_podman_py(selinux):
    rendered = spec(selinux=selinux).create_kwargs()["mounts"]
    key = next(m for m in rendered if m["target"] == GUEST_TLS_KEY_PATH)

    expected = {
        "type": "bind",
        "source": str(GUEST.key),
        "target": GUEST_TLS_KEY_PATH,
        "read_only": True,
        "propagation": "rbind",
    }
    if selinux:
        expected["relabel"] = "z"
    assert key == expected


def test_guest_tls_sets_the_endpoint_and_the_container_paths():
    env = spec().environment

    assert env["OPENSHELL_ENDPOINT"] == "https://host.containers.internal:17670"
    assert env["OPENSHELL_SANDBOX"] == "alpha"
    assert env["OPENSHELL_SANDBOX_ID"] == REQUEST.id
    assert env["OPENSHELL_TLS_CA"] == GUEST_TLS_CA_PATH
    assert env["OPENSHELL_TLS_CERT"] == GUEST_TLS_CERT_PATH
    assert env["OPENSHELL_TLS_KEY"] == GUEST_TLS_KEY_PATH
    assert env["FOO"] == "bar"
    assert not any("BEGIN" in value for value in env.values())


def test_driver_variables_win_over_user_variables():
    request = SandboxRequest(
        id="real-id",
        name="alpha",
        workspace="w",
        environment={
            "OPENSHELL_ENDPOINT": "https://evil:1",
            "OPENSHELL_SANDBOX_ID": "forged",
            "OPENSHELL_TLS_KEY": "-----BEGIN PRIVATE KEY" + "-----",
        },
    )

    env = spec(request).environment

    assert env["OPENSHELL_ENDPOINT"] == TLS_ON.grpc_endpoint
    assert env["OPENSHELL_SANDBOX_ID"] == "real-id"
    assert env["OPENSHELL_TLS_KEY"] == GUEST_TLS_KEY_PATH


@pytest.mark.parametrize("config", [TLS_ON, TLS_OFF], ids=["tls-on", "tls-off"])
def test_a_user_tls_server_name_is_removed(config):
    request = SandboxRequest(
        id="i",
        name="n",
        workspace="w",
        environment={"OPENSHELL_GATEWAY_TLS_SERVER_NAME": "other", "KEEP": "1"},
    )

    env = spec(request, config).environment

    assert "OPENSHELL_GATEWAY_TLS_SERVER_NAME" not in env
    assert env["KEEP"] == "1"


def test_without_guest_tls_there_are_no_tls_mounts_or_variables():
    request = SandboxRequest(
        id="i",
        name="n",
        workspace="w",
        environment={"OPENSHELL_TLS_CA": "/user/ca.crt"},
    )

    container_spec = spec(request, TLS_OFF)

    assert [m.target for m in container_spec.mounts] == [SUPERVISOR_PATH]
    assert not any(k.startswith("OPENSHELL_TLS_") for k in container_spec.environment)
    assert container_spec.environment["OPENSHELL_ENDPOINT"].startswith("http://")


def test_create_kwargs_put_the_container_on_the_bridge_network():
    kwargs = spec().create_kwargs()

    assert kwargs["network_mode"] == "bridge"
    assert kwargs["networks"] == {"osa-net": {}}
    assert kwargs["entrypoint"] == [SUPERVISOR_PATH]
    assert kwargs["user"] == "0:0"
    assert kwargs["name"] == "openshell-sandbox-alpha"


# The network and the host.


def test_the_network_gateway_is_read_from_its_subnet():
    attrs = {
        "name": "n",
        "subnets": [{"subnet": "10.89.3.0/24", "gateway": "10.89.3.1"}],
    }

    assert network_gateway_ip(attrs) == "10.89.3.1"


def test_a_subnet_without_gateway_uses_its_first_host():
    assert network_gateway_ip({"subnets": [{"subnet": "10.89.4.0/24"}]}) == "10.89.4.1"


def test_an_ipv6_only_network_is_refused():
    attrs = {"name": "v6", "subnets": [{"subnet": "fd00::/64", "gateway": "fd00::1"}]}

    with pytest.raises(NetworkError, match="no IPv4 subnet"):
        network_gateway_ip(attrs)


def test_selinux_is_detected_from_the_selinuxfs_directory(tmp_path):
    assert selinux_enabled(tmp_path) is True
    assert selinux_enabled(tmp_path / "absent") is False


def test_the_supervisor_file_is_executable_with_a_python_shebang():
    assert SUPERVISOR_SOURCE.read_text().startswith("#!/usr/bin/python3\n")
    assert SUPERVISOR_SOURCE.stat().st_mode & 0o111


# Start-up checks that need no Podman.


def test_a_missing_guest_tls_file_is_refused_naming_the_key(tmp_path):
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "tls.crt").write_text("cert")
    config = PodmanConfig(
        guest_tls=GuestTLS(
            ca=tmp_path / "ca.crt",
            cert=tmp_path / "tls.crt",
            key=tmp_path / "tls.key",
        )
    )

    with pytest.raises(ConfigError, match="guest_tls_key file .* does not exist"):
        PodmanDriver(config, selinux=False).check_files()


def test_a_socket_that_does_not_exist_is_reported_with_the_fix(tmp_path):
    config = PodmanConfig(
        socket_path=tmp_path / "podman.sock", socket_origin="socket_path in test"
    )

    with pytest.raises(PodmanUnavailableError) as caught:
        PodmanDriver(config, selinux=False).connect()

    message = str(caught.value)
    assert str(tmp_path / "podman.sock") in message
    assert "socket_path in test" in message
    assert "podman system service" in message


def test_a_socket_nobody_listens_on_is_reported(tmp_path):
    import socket

    path = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()
    config = PodmanConfig(socket_path=path)

    with pytest.raises(PodmanUnavailableError, match="does not answer"):
        PodmanDriver(config, selinux=False).connect()
