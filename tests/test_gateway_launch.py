"""What the suite writes and passes to a gateway, pinned without running one."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from openshell_acceptance.gateway import (
    GatewaySettings,
    ServerTls,
    gateway_flags,
    register_gateway,
    write_gateway_config,
)


def settings(**overrides) -> GatewaySettings:
    values = dict(
        port=17670,
        health_port=17671,
        network_name="openshell-acceptance-x",
        socket_path=Path("/tmp/podman.sock"),
        default_image="localhost/sandbox:abc",
        server_tls=ServerTls(
            Path("/p/server.crt"), Path("/p/server.key"), Path("/p/ca")
        ),
        driver_table={"guest_tls_ca": Path("/p/ca"), "guest_tls_cert": Path("/p/c")},
        gateway_table={"guest_tls_key": Path("/p/k")},
    )
    values.update(overrides)
    return GatewaySettings(**values)


def test_toml_puts_guest_tls_where_asked_and_the_driver_keys_in_the_driver_table(
    tmp_path,
):
    text = write_gateway_config(settings(), tmp_path / "gateway.toml")
    document = tomllib.loads(text)

    assert document["openshell"]["version"] == 1
    gateway = document["openshell"]["gateway"]
    driver = document["openshell"]["drivers"]["podman"]
    assert gateway == {"compute_drivers": ["podman"], "guest_tls_key": "/p/k"}
    assert driver["guest_tls_ca"] == "/p/ca"
    assert driver["guest_tls_cert"] == "/p/c"
    assert "guest_tls_key" not in driver
    assert driver["socket_path"] == "/tmp/podman.sock"
    assert driver["network_name"] == "openshell-acceptance-x"
    assert driver["gateway_port"] == 17670
    assert driver["image_pull_policy"] == "never"


def test_flags_carry_tls_material_and_a_separate_health_port(tmp_path):
    flags = gateway_flags(settings(), tmp_path / "g.toml")

    def value(flag):
        return flags[flags.index(flag) + 1]

    assert value("--config") == str(tmp_path / "g.toml")
    assert value("--bind-address") == "127.0.0.1"
    assert value("--port") == "17670"
    assert value("--health-port") == "17671"
    assert value("--tls-cert") == "/p/server.crt"
    assert value("--tls-key") == "/p/server.key"
    assert value("--tls-client-ca") == "/p/ca"
    assert "--disable-tls" not in flags


def test_plaintext_gateway_gets_disable_tls_and_no_tls_flags(tmp_path):
    flags = gateway_flags(settings(server_tls=None), tmp_path / "g.toml")

    assert "--disable-tls" in flags
    assert not [f for f in flags if f.startswith("--tls-")]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_registration_is_what_the_sdk_reads(tmp_path, scheme):
    material = {}
    for name in ("ca.crt", "tls.crt", "tls.key"):
        material[name] = tmp_path / f"src-{name}"
        material[name].write_text(f"pem of {name}")

    registration = register_gateway(
        tmp_path / "xdg",
        "suite",
        port=4242,
        ca=material["ca.crt"],
        cert=material["tls.crt"],
        key=material["tls.key"],
        scheme=scheme,
    )

    metadata = json.loads(registration.metadata.read_text())
    assert metadata == {
        "name": "suite",
        "gateway_endpoint": f"{scheme}://127.0.0.1:4242",
        "is_remote": False,
        "gateway_port": 4242,
    }
    assert (tmp_path / "xdg/openshell/active_gateway").read_text() == "suite"
    key = registration.mtls_dir / "tls.key"
    if scheme == "https":
        assert key.read_text() == "pem of tls.key"
        assert key.stat().st_mode & 0o777 == 0o600
    else:
        assert not key.exists()
