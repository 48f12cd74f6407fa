"""What the suite writes and passes to a real gateway, pinned without one."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from openshell_acceptance import deployment as deployment_module
from openshell_acceptance.deployment import Deployment, generate_certs_argv
from openshell_acceptance.pki import create_pki
from openshell_acceptance.targets import Target

TARGET = Target(
    name="openshell",
    command=("/opt/openshell/target/debug/openshell-gateway",),
    sandbox_image="localhost/sandbox:1",
    supervisor_image="localhost/openshell-supervisor:dev",
    pki_source="gateway",
)


class FakePodman:
    socket_path = Path("/run/suite/podman.sock")
    env = {"CONTAINER_HOST": "unix:///run/suite/podman.sock"}

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def remove_containers(self, **selector) -> list[str]:
        self.calls.append(f"podman.remove_containers {selector}")
        return []


class FakeGatewayProcess:
    """Stands in for the process: records what it was asked, in order."""

    def __init__(self, argv, *, env, log_path, health_port, calls) -> None:
        self.argv, self.env, self.calls = argv, env, calls
        self.returncode = None

    def start(self) -> None:
        self.calls.append("gateway.start")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        self.calls.append("gateway.wait_healthy")

    def stop(self, timeout: float = 10.0) -> int:
        self.calls.append("gateway.stop")
        self.returncode = 0
        return 0

    def log(self) -> str:
        return ""


@pytest.fixture
def calls():
    return []


@pytest.fixture
def deployment(tmp_path, monkeypatch, calls):
    def make_process(argv, **kwargs):
        return FakeGatewayProcess(argv, calls=calls, **kwargs)

    monkeypatch.setattr(deployment_module, "GatewayProcess", make_process)
    scenario = Deployment(
        target=TARGET,
        podman=FakePodman(calls),
        workdir=tmp_path,
        network_name="openshell-acceptance-abc",
        run_id="0123456789abcdef",
    )
    scenario.pki = create_pki(tmp_path / "pki")
    return scenario


def test_generate_certs_is_called_like_the_harness_calls_it(tmp_path):
    argv = generate_certs_argv(TARGET, tmp_path / "pki")

    assert argv == [
        "/opt/openshell/target/debug/openshell-gateway",
        "generate-certs",
        "--output-dir",
        str(tmp_path / "pki"),
        "--server-san",
        "host.openshell.internal",
        "--server-san",
        "host.containers.internal",
        "--server-san",
        "::1",
    ]


def test_the_toml_carries_the_driver_table_of_the_harness(deployment):
    settings = deployment.configure()
    deployment.launch()

    document = tomllib.loads((deployment.workdir / "gateway.toml").read_text())
    driver = document["openshell"]["drivers"]["podman"]
    assert document["openshell"]["gateway"] == {
        "compute_drivers": ["podman"],
        "supervisor_image": "localhost/openshell-supervisor:dev",
    }
    assert driver == {
        "network_name": "openshell-acceptance-abc",
        "gateway_port": settings.port,
        "default_image": "localhost/sandbox:1",
        "image_pull_policy": "never",
        "socket_path": "/run/suite/podman.sock",
        "guest_tls_ca": str(deployment.pki.ca_cert),
        "guest_tls_cert": str(deployment.pki.client_cert),
        "guest_tls_key": str(deployment.pki.client_key),
    }


def test_the_gateway_runs_with_the_tls_flags_and_a_separate_health_port(deployment):
    settings = deployment.configure()
    process = deployment.launch()

    pki = deployment.pki
    assert process.argv == [
        "/opt/openshell/target/debug/openshell-gateway",
        "--config",
        str(deployment.workdir / "gateway.toml"),
        "--drivers",
        "podman",
        "--bind-address",
        "127.0.0.1",
        "--port",
        str(settings.port),
        "--health-port",
        str(settings.health_port),
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        "--tls-client-ca",
        str(pki.ca_cert),
        "--log-level",
        "info",
    ]
    assert settings.port != settings.health_port
    assert process.env["CONTAINER_HOST"] == "unix:///run/suite/podman.sock"
    assert "OPENSHELL_GATEWAY_CONFIG" not in process.env


def test_start_up_launches_waits_for_health_then_registers(deployment, calls):
    settings = deployment.configure()
    deployment.start_gateway()

    assert calls == ["gateway.start", "gateway.wait_healthy"]
    registration = deployment.registration
    metadata = json.loads(registration.metadata.read_text())
    assert metadata == {
        "name": registration.name,
        "gateway_endpoint": f"https://127.0.0.1:{settings.port}",
        "is_remote": False,
        "gateway_port": settings.port,
    }
    active = registration.config_home / "openshell" / "active_gateway"
    assert active.read_text() == registration.name
    for name in ("ca.crt", "tls.crt", "tls.key"):
        assert (registration.mtls_dir / name).is_file()


def test_cleanup_stops_the_gateway_before_removing_sandbox_containers(
    deployment, calls
):
    deployment.configure()
    deployment.start_gateway()
    deployment.sandboxes.append(deployment_module.Sandbox(name="acc-1", id="id-1"))
    calls.clear()

    deployment.close()

    assert calls == [
        "gateway.stop",
        "podman.remove_containers {'label': 'openshell.ai/sandbox-id=id-1'}",
    ]
