"""One gateway and its sandboxes, set up for one scenario and torn down after it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from openshell import SandboxClient, SandboxRef
from openshell._proto import openshell_pb2

from . import evidence, probes
from . import pki as pki_module
from ._env import environment
from ._wait import Deadline, poll
from .container import GUEST_TLS_PATHS, ContainerView
from .errors import GatewayExited, SandboxNotReady
from .evidence import Evidence
from .gateway import (
    GUEST_TLS_KEYS,
    GatewayProcess,
    GatewaySettings,
    Registration,
    ServerTls,
    gateway_flags,
    register_gateway,
    write_gateway_config,
)
from .podman import OWNER_LABEL, RUN_LABEL, PodmanService, owner_id
from .socket_recorder import SocketRecorder
from .targets import Target

WORKSPACE = "default"
HOST_ALIASES = ("host.openshell.internal", "host.containers.internal")
# What the suite adds to the gateway's default SANs: both host aliases, as the
# upstream harness does, and IPv6 loopback for a CLI that dials ::1.
HARNESS_SERVER_SANS = (*HOST_ALIASES, "::1")

# Where the guest TLS keys go in the TOML: one table, the other, or split.
PLACEMENTS = ("driver", "gateway", "split")


@dataclass(frozen=True)
class Sandbox:
    """A sandbox this deployment asked the gateway for."""

    name: str
    id: str


@dataclass(frozen=True)
class Refusal:
    """How a gateway that was expected to refuse to start ended."""

    returncode: int
    output: str
    listening: tuple[int, ...]


def generate_certs_argv(target: Target, root: Path) -> list[str]:
    """The gateway's ``generate-certs`` call, with the harness's extra names."""
    argv = target.gateway_argv("generate-certs", "--output-dir", str(root))
    for name in HARNESS_SERVER_SANS:
        argv += ["--server-san", name]
    return argv


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that nothing on loopback is using right now.

    All are held open together while they are chosen, so none repeats.
    """
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            probe = held.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


class Deployment:
    """The PKI, configuration, gateway process and sandboxes of one scenario."""

    def __init__(
        self,
        *,
        target: Target,
        podman: PodmanService,
        workdir: Path,
        network_name: str,
        run_id: str,
    ) -> None:
        self.target = target
        self.podman = podman
        self.workdir = workdir
        self.network_name = network_name
        self.run_id = run_id
        self.pki: pki_module.Pki | None = None
        self.settings: GatewaySettings | None = None
        self.config_text = ""
        self.gateway: GatewayProcess | None = None
        self.registration: Registration | None = None
        self.sandboxes: list[Sandbox] = []
        self.gateway_env: dict[str, str] = {}
        self._client: SandboxClient | None = None
        self._server_pair: tuple[Path, Path] | None = None
        self._server_issuer: Path | None = None
        self._recorder: SocketRecorder | None = None

    # PKI

    def create_pki(self) -> pki_module.Pki:
        """The CA, server and client certificates, from the target's chosen source."""
        root = self.workdir / "pki"
        if self.target.pki_source == "gateway":
            self.generate_certs(root)
            self.pki = pki_module.Pki.at(root)
        else:
            self.pki = pki_module.create_pki(root)
        return self.pki

    def generate_certs(self, root: Path) -> pki_module.Pki:
        """Run the gateway's own ``generate-certs`` the way the harness does."""
        argv = generate_certs_argv(self.target, root)
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise GatewayExited(
                f"generate-certs exited with code {result.returncode}: "
                f"{last[0] if last else '(no output)'}",
                returncode=result.returncode,
                output=result.stdout + result.stderr,
            )
        return pki_module.Pki.at(root)

    def use_flawed_server_certificate(self, flaw: str) -> Path:
        """Serve a certificate the supervisor must not accept; its path.

        ``flaw`` is ``missing-alias`` (no host alias among its names) or
        ``foreign-ca`` (signed by a CA the sandboxes do not trust). The CLI is
        registered with whichever CA signed it, so only the sandboxes object.
        """
        assert self.pki is not None, "create the PKI first"
        directory = self.workdir / f"server-{flaw}"
        if flaw == "missing-alias":
            sans = [s for s in pki_module.SUITE_SERVER_SANS if s not in HOST_ALIASES]
            issuer: pki_module.Pki | pki_module.CertificateAuthority = self.pki
        elif flaw == "foreign-ca":
            sans = list(pki_module.SUITE_SERVER_SANS)
            issuer = pki_module.create_foreign_ca(self.workdir / "foreign-ca")
            self._server_issuer = issuer.cert
        else:
            raise ValueError(f"unknown server certificate flaw {flaw!r}")
        self._server_pair = pki_module.issue_server_certificate(
            issuer, directory, sans=sans
        )
        return self._server_pair[0]

    def record_podman_socket(self) -> SocketRecorder:
        """Put a recording socket in front of Podman for the gateway to use.

        The gateway's CONTAINER_HOST then names a socket that does not exist, so
        a driver that ignored the configured socket would find no Podman.
        """
        self._recorder = SocketRecorder(
            self.workdir / "recorded-podman.sock", self.podman.socket_path
        ).start()
        self.gateway_env["CONTAINER_HOST"] = (
            f"unix://{self.workdir / 'no-such-podman.sock'}"
        )
        return self._recorder

    def recorded_podman_requests(self) -> list[str]:
        """The Podman API requests that came through the recording socket."""
        return self._recorder.requests() if self._recorder else []

    # Configuration

    def configure(
        self,
        *,
        guest_tls: Sequence[str] = GUEST_TLS_KEYS,
        placement: str = "driver",
        server_tls: bool = True,
        client_auth: bool = True,
        extra_flags: Sequence[str] = (),
        socket_path: Path | None = None,
        health_port_equals_port: bool = False,
    ) -> GatewaySettings:
        """Settings for a gateway on fresh ports; ``guest_tls`` picks the keys set."""
        assert self.pki is not None, "create the PKI before configuring the gateway"
        gateway_table, driver_table = self._place_guest_tls(guest_tls, placement)
        tls = None
        if server_tls:
            client_ca = self.pki.ca_cert if client_auth else None
            cert, key = self._server_pair or (self.pki.server_cert, self.pki.server_key)
            tls = ServerTls(cert, key, client_ca)
        if self.target.supervisor_image:
            gateway_table["supervisor_image"] = self.target.supervisor_image

        port, health_port = free_ports(2)
        self.settings = GatewaySettings(
            port=port,
            health_port=port if health_port_equals_port else health_port,
            network_name=self.network_name,
            socket_path=socket_path or self.podman.socket_path,
            default_image=self.target.sandbox_image,
            server_tls=tls,
            gateway_table=gateway_table,
            driver_table=driver_table,
            extra_flags=tuple(extra_flags),
        )
        return self.settings

    def _place_guest_tls(
        self, keys: Sequence[str], placement: str
    ) -> tuple[dict[str, object], dict[str, object]]:
        assert self.pki is not None
        paths = {
            "guest_tls_ca": self.pki.ca_cert,
            "guest_tls_cert": self.pki.client_cert,
            "guest_tls_key": self.pki.client_key,
        }
        gateway_table: dict[str, object] = {}
        driver_table: dict[str, object] = {}
        for index, key in enumerate(keys):
            if placement == "gateway" or (placement == "split" and index % 2 == 0):
                gateway_table[key] = paths[key]
            else:
                driver_table[key] = paths[key]
        return gateway_table, driver_table

    # The gateway process

    def launch(self) -> GatewayProcess:
        """Write the TOML and start the gateway, without waiting for it."""
        assert self.settings is not None, "configure the gateway before launching it"
        config_path = self.workdir / "gateway.toml"
        self.config_text = write_gateway_config(self.settings, config_path)
        argv = self.target.gateway_argv(*gateway_flags(self.settings, config_path))
        env = {**os.environ, **self.podman.env, **self.gateway_env}
        env.pop("OPENSHELL_GATEWAY_CONFIG", None)
        self.gateway = GatewayProcess(
            argv,
            env=env,
            log_path=self.workdir / "gateway.log",
            health_port=self.settings.health_port,
        )
        self.gateway.start()
        return self.gateway

    def start_gateway(self, timeout: float = 30.0) -> GatewayProcess:
        """Launch the gateway, wait until healthy, and register it for the CLI."""
        gateway = self.launch()
        gateway.wait_healthy(timeout)
        self.register()
        return gateway

    def expect_refusal(self, timeout: float = 30.0) -> Refusal:
        """Launch a gateway that should refuse to start, and see how it ended."""
        gateway = self.launch()
        code = gateway.wait_exit(timeout)
        assert self.settings is not None
        ports = sorted({self.settings.port, self.settings.health_port})
        listening = tuple(port for port in ports if self.listening(port))
        if code is None:
            gateway.stop()
            return Refusal(-1, gateway.log(), listening)
        return Refusal(code, gateway.log(), listening)

    @staticmethod
    def listening(port: int, host: str = "127.0.0.1") -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            return probe.connect_ex((host, port)) == 0

    def register(self) -> Registration:
        assert self.settings is not None and self.pki is not None
        scheme = "http" if self.settings.disable_tls else "https"
        self.registration = register_gateway(
            self.workdir / "xdg",
            f"acceptance-{self.run_id[:8]}",
            port=self.settings.port,
            ca=self._server_issuer or self.pki.ca_cert,
            cert=self.pki.client_cert,
            key=self.pki.client_key,
            scheme=scheme,
        )
        return self.registration

    # Sandboxes, through the official SDK

    def client(self) -> SandboxClient:
        """The SDK client the CLI registration describes, as a user would get it."""
        if self._client is None:
            assert self.registration is not None, "register the gateway first"
            with environment(XDG_CONFIG_HOME=str(self.registration.config_home)):
                self._client = SandboxClient.from_active_cluster(
                    cluster=self.registration.name, timeout=15.0
                )
        return self._client

    def start_sandbox(
        self,
        *,
        environment: Mapping[str, str] | None = None,
        user_namespaces: bool = False,
    ) -> Sandbox:
        """Ask the gateway for a sandbox; ``user_namespaces`` remaps its user IDs."""
        name = f"acc-{uuid.uuid4().hex[:10]}"
        spec = openshell_pb2.SandboxSpec(environment=dict(environment or {}))
        if user_namespaces:
            spec.template.user_namespaces = True
        ref = self.client().create(
            workspace=WORKSPACE,
            name=name,
            labels={RUN_LABEL: self.run_id, OWNER_LABEL: owner_id()},
            spec=spec,
        )
        sandbox = Sandbox(name=ref.name or name, id=ref.id)
        self.sandboxes.append(sandbox)
        return sandbox

    def wait_ready(
        self,
        sandbox: Sandbox,
        timeout: float = 60.0,
        diagnose_after: float = 1.0,
        inspect_every: float = 0.5,
    ) -> SandboxRef:
        """The sandbox once ready; otherwise SandboxNotReady with a one-line cause.

        Past ``diagnose_after`` seconds the suite dials the gateway the way the
        sandbox does; a definite fault there (a refused connection, a failed
        certificate check) ends the wait at once instead of at the deadline.

        The phase is asked of the gateway at every poll. The container is
        inspected (and, late in the wait, the gateway dialled) at most every
        ``inspect_every`` seconds while the gateway still says PROVISIONING,
        and at once when it says anything else: those checks cost Podman and
        the host CPU that sandboxes starting at the same time need.
        """
        ready = openshell_pb2.SANDBOX_PHASE_READY
        provisioning = openshell_pb2.SANDBOX_PHASE_PROVISIONING
        deadline = Deadline(timeout)
        next_inspection = 0.0

        def check() -> SandboxRef | None:
            nonlocal next_inspection
            ref = self.client().get(sandbox.name, workspace=WORKSPACE)
            if ref.status.phase == ready:
                return ref
            waited = timeout - deadline.remaining
            if ref.status.phase == provisioning and waited < next_inspection:
                return None
            next_inspection = waited + inspect_every
            container = self.container(sandbox)
            exited = container is not None and not container["State"]["Running"]
            if exited and container["State"]["Status"] in ("exited", "stopped"):
                raise SandboxNotReady(self._failure_cause(sandbox, container))
            if container is not None and waited >= diagnose_after:
                cause = self.diagnose(container)
                if cause is not None:
                    raise SandboxNotReady(cause)
            return None

        ref = poll(check, timeout=timeout, ceiling=0.25)
        if ref is None:
            last = self.supervisor_log(sandbox)[-1:] or ["(nothing)"]
            raise SandboxNotReady(
                f"sandbox {sandbox.name} was not ready within {timeout:.0f}s; "
                f"supervisor said: {last[0]}"
            )
        return ref

    def diagnose(self, inspect: dict) -> str | None:
        """Dial the sandbox's endpoint from the host as the sandbox would.

        The one-line cause of a definite fault, or None when the gateway answers.
        """
        view = ContainerView(inspect)
        endpoint = urlsplit(view.environment.get("OPENSHELL_ENDPOINT", ""))
        host, port = endpoint.hostname or "", endpoint.port or 0
        address = view.host_address(host) or host
        if endpoint.scheme == "https":
            mounts = view.mounts
            answer = probes.tls_exchange(
                address,
                port,
                ca=Path(mounts[GUEST_TLS_PATHS["guest_tls_ca"]].source),
                cert=Path(mounts[GUEST_TLS_PATHS["guest_tls_cert"]].source),
                key=Path(mounts[GUEST_TLS_PATHS["guest_tls_key"]].source),
                server_name=host,
            )
        else:
            answer = probes.plaintext_exchange(address, port)
        if answer.accepted:
            return None
        if answer.error and "refused" in answer.error.lower():
            return f"connection refused by {host}:{port} ({address})"
        return f"TLS handshake with {host}:{port} ({address}) failed: {answer.error}"

    def _failure_cause(self, sandbox: Sandbox, inspect: dict) -> str:
        cause = self.diagnose(inspect)
        if cause is not None:
            return cause
        lines = [line for line in self.supervisor_log(sandbox) if line.strip()]
        return (
            f"supervisor exited with code {inspect['State']['ExitCode']}: "
            f"{lines[-1] if lines else '(no output)'}"
        )

    def container(self, sandbox: Sandbox) -> dict | None:
        """The container's inspect document, or None while it does not exist."""
        found = self.podman.containers_with_label(
            f"openshell.ai/sandbox-id={sandbox.id}"
        )
        return self.podman.inspect(found[0]) if found else None

    def supervisor_log(self, sandbox: Sandbox) -> list[str]:
        container = self.container(sandbox)
        if container is None:
            return []
        return self.podman.container_logs(container["Id"]).splitlines()

    def managed_containers(self) -> list[str]:
        """Managed containers on this run's network."""
        return self.podman.managed_containers(self.network_name)

    def peer_subject(self, sandbox: Sandbox) -> str | None:
        """The client certificate subject the gateway recorded for the session.

        The reference gateway reports it as a ``SupervisorConnected`` condition.
        """
        ref = self.client().get(sandbox.name, workspace=WORKSPACE)
        for condition in ref.status.conditions:
            if condition.type == "SupervisorConnected" and condition.status == "True":
                return condition.message.removeprefix("peer_subject=")
        return None

    # Evidence

    def command_line(self) -> str:
        return " ".join(self.gateway.argv) if self.gateway else "(not launched)"

    def failure_evidence(self) -> list[Evidence]:
        """The gateway log and every sandbox's supervisor log, for a failed scenario."""
        items = []
        if self.gateway is not None:
            items.append(evidence.text("Gateway log", self.gateway.log()[-20000:]))
        for sandbox in self.sandboxes:
            log = "\n".join(self.supervisor_log(sandbox)[-200:])
            items.append(evidence.text(f"Supervisor log of {sandbox.name}", log))
        return items

    # Teardown

    def delete_sandboxes(self, sandboxes: Sequence[Sandbox] | None = None) -> None:
        """Delete sandboxes through the gateway, all at once.

        Each deletion waits for Podman to stop and remove a container; done
        one after another, a scenario with many sandboxes pays for each.
        A sandbox the gateway no longer knows, or a refused call, is left to
        the removal by label that follows in ``close``.
        """
        chosen = list(self.sandboxes if sandboxes is None else sandboxes)
        if not chosen:
            return
        client = self.client()

        def delete(sandbox: Sandbox) -> None:
            with contextlib.suppress(grpc.RpcError):
                client.delete(sandbox.name, workspace=WORKSPACE, allow_missing=True)

        with futures.ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            list(pool.map(delete, chosen))

    def close(self) -> None:
        """Delete sandboxes, stop the gateway, remove what is left of them."""
        if (
            self._client is not None
            and self.gateway
            and self.gateway.returncode is None
        ):
            self.delete_sandboxes()
        if self._client is not None:
            self._client.close()
        if self.gateway is not None:
            self.gateway.stop()
        if self._recorder is not None:
            self._recorder.stop()
        for sandbox in self.sandboxes:
            self.podman.remove_containers(label=f"openshell.ai/sandbox-id={sandbox.id}")
