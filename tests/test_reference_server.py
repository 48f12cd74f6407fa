"""The reference gateway in-process on loopback, with a stand-in compute driver.

The acceptance suite runs the real driver against Podman; here the driver is a
small in-memory double so that gRPC, mutual TLS, the supervisor session and
the health listener are exercised without Podman.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import httpx
import openshell
import pytest
from openshell._proto import datamodel_pb2, openshell_pb2, openshell_pb2_grpc

from openshell_reference.certs import load_server_tls
from openshell_reference.driver import ContainerState, SandboxRequest, container_name
from openshell_reference.errors import ImageUnavailableError, ListenError
from openshell_reference.server import Gateway, peer_subject
from openshell_reference.supervisor import Supervisor, settings_from_env

WORKSPACE = "team-a"


class StandInDriver:
    """Records what the service asks for and reports chosen container states."""

    def __init__(self) -> None:
        self.requests: list[SandboxRequest] = []
        self.states: dict[str, ContainerState | None] = {}
        self.logs: dict[str, str] = {}
        self.deleted: list[str] = []
        self.fail_with: Exception | None = None

    def create_container(self, request: SandboxRequest) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.requests.append(request)
        self.states[container_name(request.name)] = ContainerState(
            "running", True, None
        )
        return f"id-{request.name}"

    def container_state(self, name: str) -> ContainerState | None:
        return self.states.get(name)

    def last_log_line(self, name: str) -> str:
        return self.logs.get(name, "")

    def stop_container(self, name: str) -> bool:
        self.states[name] = ContainerState("exited", False, 0)
        return True

    def start_container(self, name: str) -> bool:
        self.states[name] = ContainerState("running", True, None)
        return True

    def delete_container(self, name: str) -> bool:
        self.deleted.append(name)
        return self.states.pop(name, None) is not None


@pytest.fixture()
def driver() -> StandInDriver:
    return StandInDriver()


@pytest.fixture()
def gateway(pki, driver, free_port):
    material = load_server_tls(
        pki / "server/tls.crt", pki / "server/tls.key", pki / "ca.crt"
    )
    running = Gateway(
        bind_address="127.0.0.1",
        port=free_port(),
        driver=driver,
        tls=material,
        health_port=free_port(),
        heartbeat_interval=0.5,
    )
    running.bind()
    running.start()
    yield running
    running.stop()


def sdk(pki: Path, port: int) -> openshell.SandboxClient:
    return openshell.SandboxClient(
        f"127.0.0.1:{port}",
        tls=openshell.TlsConfig(
            ca_path=pki / "ca.crt",
            cert_path=pki / "client/tls.crt",
            key_path=pki / "client/tls.key",
        ),
        timeout=10,
    )


@pytest.fixture()
def client(pki, gateway):
    with sdk(pki, gateway.port) as sandbox_client:
        yield sandbox_client


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(delay)
        delay = min(delay * 2, 0.3)
    raise AssertionError("condition not met in time")


def condition(ref, kind):
    return next((c for c in ref.conditions if c.type == kind), None)


# Mutual TLS on the main port.


def test_health_answers_a_client_with_the_shared_certificate(client):
    response = client.health()

    assert response.status == openshell_pb2.SERVICE_STATUS_HEALTHY


def _health(channel: grpc.Channel) -> None:
    with channel:
        openshell_pb2_grpc.OpenShellStub(channel).Health(
            openshell_pb2.HealthRequest(), timeout=5
        )


def test_a_plaintext_client_is_refused(gateway):
    with pytest.raises(grpc.RpcError):
        _health(grpc.insecure_channel(f"127.0.0.1:{gateway.port}"))


def test_a_client_without_a_certificate_is_refused(pki, gateway):
    credentials = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes())

    with pytest.raises(grpc.RpcError) as caught:
        _health(grpc.secure_channel(f"localhost:{gateway.port}", credentials))

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_certificate_of_another_ca_is_refused(pki, other_pki, gateway):
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.crt").read_bytes(),
        (other_pki / "client/tls.key").read_bytes(),
        (other_pki / "client/tls.crt").read_bytes(),
    )

    with pytest.raises(grpc.RpcError) as caught:
        _health(grpc.secure_channel(f"localhost:{gateway.port}", credentials))

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_same_port_cannot_be_bound_twice(pki, gateway, driver):
    second = Gateway(
        bind_address="127.0.0.1", port=gateway.port, driver=driver, tls=None
    )

    with pytest.raises(ListenError, match=f"port {gateway.port} on 127.0.0.1"):
        second.bind()


# Sandboxes through the official SDK.


def test_create_starts_a_container_and_reports_provisioning(client, driver):
    spec = openshell_pb2.SandboxSpec(
        environment={"FOO": "bar"},
        template=openshell_pb2.SandboxTemplate(
            image="custom:1", labels={"tier": "t"}, environment={"FOO": "t"}
        ),
    )

    ref = client.create(workspace=WORKSPACE, name="alpha", labels={"a": "b"}, spec=spec)

    assert ref.phase == openshell_pb2.SANDBOX_PHASE_PROVISIONING
    assert ref.name == "alpha" and ref.workspace == WORKSPACE
    assert dict(ref.labels) == {"a": "b"}
    request = driver.requests[-1]
    assert request.id == ref.id
    assert request.image == "custom:1"
    assert request.environment == {"FOO": "bar"}
    assert request.labels == {"tier": "t", "a": "b"}


def test_a_name_is_generated_when_none_is_given(client):
    ref = client.create(workspace=WORKSPACE)

    assert ref.name.startswith("sandbox-")
    assert client.get(ref.name, workspace=WORKSPACE).id == ref.id


def test_a_duplicate_name_is_refused(client):
    client.create(workspace=WORKSPACE, name="twice")

    with pytest.raises(grpc.RpcError) as caught:
        client.create(workspace=WORKSPACE, name="twice")

    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_driver_failure_is_reported_and_leaves_no_sandbox(client, driver):
    driver.fail_with = ImageUnavailableError("image x is not present")

    with pytest.raises(grpc.RpcError) as caught:
        client.create(workspace=WORKSPACE, name="broken")

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "image x is not present" in caught.value.details()
    assert client.list_all(workspace=WORKSPACE) == []


def test_list_filters_by_workspace_and_label(client):
    client.create(workspace=WORKSPACE, name="one", labels={"k": "v"})
    client.create(workspace=WORKSPACE, name="two")
    client.create(workspace="elsewhere", name="three", labels={"k": "v"})

    names = [s.name for s in client.list_all(workspace=WORKSPACE)]
    labelled = [
        s.name for s in client.list_all(workspace=WORKSPACE, label_selector="k=v")
    ]

    assert names == ["one", "two"]
    assert labelled == ["one"]


def test_delete_removes_the_container_and_honours_allow_missing(client, driver):
    ref = client.create(workspace=WORKSPACE, name="gone")

    result = client.delete("gone", workspace=WORKSPACE)
    again = client.delete("gone", workspace=WORKSPACE, allow_missing=True)

    assert result.outcome == openshell.DeletionOutcome.COMPLETED
    assert result.sandbox_id == ref.id
    assert again.outcome == openshell.DeletionOutcome.ALREADY_ABSENT
    assert driver.deleted == ["openshell-sandbox-gone"]
    with pytest.raises(grpc.RpcError) as caught:
        client.delete("gone", workspace=WORKSPACE)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_exited_container_turns_the_sandbox_to_error_with_its_last_line(
    client, driver
):
    client.create(workspace=WORKSPACE, name="dies")
    driver.states["openshell-sandbox-dies"] = ContainerState("exited", False, 1)
    driver.logs["openshell-sandbox-dies"] = (
        "error: connection refused by h:1 (10.0.0.1)"
    )

    ref = client.get("dies", workspace=WORKSPACE)

    assert ref.phase == openshell_pb2.SANDBOX_PHASE_ERROR
    assert ref.status.exit_code == 1
    running = condition(ref, "ContainerRunning")
    assert running.status == "False"
    assert "connection refused by h:1" in running.message


# The supervisor session.


def supervisor_for(pki: Path, port: int, sandbox_id: str) -> Supervisor:
    environ = {
        "OPENSHELL_ENDPOINT": f"https://localhost:{port}",
        "OPENSHELL_SANDBOX_ID": sandbox_id,
        "OPENSHELL_SANDBOX": "s",
        "OPENSHELL_TLS_CA": str(pki / "ca.crt"),
        "OPENSHELL_TLS_CERT": str(pki / "client/tls.crt"),
        "OPENSHELL_TLS_KEY": str(pki / "client/tls.key"),
        "OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT": "3",
    }
    return Supervisor(settings_from_env(environ))


def test_a_supervisor_session_makes_the_sandbox_ready_with_its_peer_subject(
    pki, gateway, client
):
    ref = client.create(workspace=WORKSPACE, name="live")
    supervisor = supervisor_for(pki, gateway.port, ref.id)
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(supervisor.run()))
    thread.start()
    try:
        ready = client.wait_ready("live", workspace=WORKSPACE, timeout_seconds=10)
        connected = condition(ready, "SupervisorConnected")
        assert connected.status == "True"
        assert connected.reason == "SessionAccepted"
        assert connected.message == (
            "peer_subject=CN=openshell-client,OU=openshell-user"
        )

        time.sleep(1.2)
        assert client.get("live", workspace=WORKSPACE).phase == (
            openshell_pb2.SANDBOX_PHASE_READY
        )
    finally:
        supervisor.stop()
        thread.join(10)

    assert outcome == [0]
    after = wait_for(
        lambda: (
            (r := client.get("live", workspace=WORKSPACE)).phase
            == openshell_pb2.SANDBOX_PHASE_PROVISIONING
            and r
        )
    )
    assert condition(after, "SupervisorConnected").status == "False"


def open_session(pki: Path, port: int):
    credentials = grpc.ssl_channel_credentials(
        (pki / "ca.crt").read_bytes(),
        (pki / "client/tls.key").read_bytes(),
        (pki / "client/tls.crt").read_bytes(),
    )
    channel = grpc.secure_channel(f"localhost:{port}", credentials)
    return channel, openshell_pb2_grpc.OpenShellStub(channel)


def test_an_unknown_sandbox_is_rejected(pki, gateway):
    channel, stub = open_session(pki, gateway.port)
    hello = openshell_pb2.SupervisorMessage(
        hello=openshell_pb2.SupervisorHello(sandbox_id="nope", instance_id="i")
    )

    with channel:
        replies = list(stub.ConnectSupervisor(iter([hello]), timeout=5))

    assert len(replies) == 1
    assert "unknown sandbox_id 'nope'" in replies[0].session_rejected.reason


def test_a_first_message_other_than_hello_is_rejected(pki, gateway):
    channel, stub = open_session(pki, gateway.port)
    heartbeat = openshell_pb2.SupervisorMessage(
        heartbeat=openshell_pb2.SupervisorHeartbeat()
    )

    with channel:
        replies = list(stub.ConnectSupervisor(iter([heartbeat]), timeout=5))

    assert replies[0].WhichOneof("payload") == "session_rejected"


def test_the_session_is_accepted_with_an_id_and_a_heartbeat_interval(
    pki, gateway, client
):
    ref = client.create(workspace=WORKSPACE, name="raw")
    channel, stub = open_session(pki, gateway.port)
    hello = openshell_pb2.SupervisorMessage(
        hello=openshell_pb2.SupervisorHello(sandbox_id=ref.id, instance_id="i-1")
    )

    with channel:
        replies = stub.ConnectSupervisor(iter([hello]), timeout=5)
        first = next(replies)
        replies.cancel()

    accepted = first.session_accepted
    assert accepted.session_id
    assert accepted.heartbeat_interval.ToTimedelta().total_seconds() == 0.5


# The health listener.


def test_the_health_listener_answers_in_plaintext(gateway):
    base = f"http://127.0.0.1:{gateway._health.port}"

    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert httpx.get(f"{base}/health").json()["status"] == "healthy"
    assert httpx.get(f"{base}/nope").status_code == 404


def test_readiness_waits_for_the_gateway_to_start(driver, free_port):
    port, health = free_port(), free_port()
    idle = Gateway(
        bind_address="127.0.0.1",
        port=port,
        driver=driver,
        tls=None,
        health_port=health,
    )
    idle.bind()
    idle._health.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{health}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{health}/readyz").status_code == 503
    finally:
        idle.stop()


# Peer identity.


def test_the_peer_subject_is_read_from_the_auth_context():
    assert peer_subject({"x509_subject": [b"CN=a,OU=b"]}) == "CN=a,OU=b"
    assert peer_subject({"x509_common_name": [b"a"]}) == "CN=a"
    assert peer_subject({"transport_security_type": [b"insecure"]}) == ""


def test_a_workspace_is_required(pki, gateway):
    channel, stub = open_session(pki, gateway.port)
    request = openshell_pb2.GetSandboxRequest(
        workspace_scope=datamodel_pb2.WorkspaceSelector(workspace=""), name="x"
    )

    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.GetSandbox(request, timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_supervisor_with_a_foreign_certificate_gives_up_naming_the_cause(
    pki, other_pki, gateway, client, capfd
):
    ref = client.create(workspace=WORKSPACE, name="foreign")
    environ = {
        "OPENSHELL_ENDPOINT": f"https://localhost:{gateway.port}",
        "OPENSHELL_SANDBOX_ID": ref.id,
        "OPENSHELL_TLS_CA": str(pki / "ca.crt"),
        "OPENSHELL_TLS_CERT": str(other_pki / "client/tls.crt"),
        "OPENSHELL_TLS_KEY": str(other_pki / "client/tls.key"),
        "OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT": "1",
    }

    code = Supervisor(settings_from_env(environ)).run()

    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines[-1] == (
        f"error: TLS handshake with localhost:{gateway.port} failed: the gateway "
        "refused the client certificate (it closed the connection after the "
        "handshake); check that OPENSHELL_TLS_CERT is signed by the CA the gateway "
        "trusts"
    )
    assert any("event=connect_retry" in line for line in lines)
    assert client.get("foreign", workspace=WORKSPACE).phase == (
        openshell_pb2.SANDBOX_PHASE_PROVISIONING
    )
