"""The gateway as a process: its TOML, its flags, its start, its health, its stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import tomli_w

from ._wait import poll
from .errors import GatewayExited, GatewayNotHealthy

GUEST_TLS_KEYS = ("guest_tls_ca", "guest_tls_cert", "guest_tls_key")

# Seconds between health probes at most, once the interval has grown.
HEALTH_POLL_CEILING = 0.05

# The names the Podman driver gives the guest TLS settings in its errors.
DRIVER_FIELD_NAMES = {
    "guest_tls_ca": "--podman-tls-ca / OPENSHELL_PODMAN_TLS_CA",
    "guest_tls_cert": "--podman-tls-cert / OPENSHELL_PODMAN_TLS_CERT",
    "guest_tls_key": "--podman-tls-key / OPENSHELL_PODMAN_TLS_KEY",
}


@dataclass(frozen=True)
class ServerTls:
    """The gateway's own TLS material and the CA its clients must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None


@dataclass(frozen=True)
class GatewaySettings:
    """Everything that decides how one gateway is configured and launched."""

    port: int
    health_port: int
    network_name: str
    socket_path: Path
    default_image: str
    server_tls: ServerTls | None
    gateway_table: Mapping[str, object] = field(default_factory=dict)
    driver_table: Mapping[str, object] = field(default_factory=dict)
    bind_address: str = "127.0.0.1"
    log_level: str = "info"
    extra_flags: Sequence[str] = ()

    @property
    def disable_tls(self) -> bool:
        return self.server_tls is None


def gateway_config(settings: GatewaySettings) -> dict:
    """The TOML document, as a dict, for ``--config``."""
    gateway = {"compute_drivers": ["podman"], **settings.gateway_table}
    driver = {
        "network_name": settings.network_name,
        "gateway_port": settings.port,
        "default_image": settings.default_image,
        "image_pull_policy": "never",
        "socket_path": str(settings.socket_path),
        **settings.driver_table,
    }
    return {
        "openshell": {
            "version": 1,
            "gateway": _stringify(gateway),
            "drivers": {"podman": _stringify(driver)},
        }
    }


def write_gateway_config(settings: GatewaySettings, path: Path) -> str:
    """Write the TOML for ``settings`` to ``path`` and return its text."""
    text = tomli_w.dumps(gateway_config(settings))
    path.write_text(text, encoding="utf-8")
    return text


def gateway_flags(settings: GatewaySettings, config_path: Path) -> list[str]:
    """The command-line flags the upstream harness passes, in its order."""
    flags = ["--config", str(config_path), "--drivers", "podman"]
    flags += ["--bind-address", settings.bind_address]
    flags += ["--port", str(settings.port), "--health-port", str(settings.health_port)]
    if settings.server_tls is None:
        flags.append("--disable-tls")
    else:
        flags += ["--tls-cert", str(settings.server_tls.cert)]
        flags += ["--tls-key", str(settings.server_tls.key)]
        if settings.server_tls.client_ca is not None:
            flags += ["--tls-client-ca", str(settings.server_tls.client_ca)]
    flags += ["--log-level", settings.log_level]
    flags += list(settings.extra_flags)
    return flags


def _stringify(table: Mapping[str, object]) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in table.items()}


class GatewayProcess:
    """One gateway process, its log file, and the ports it was told to use."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        health_port: int,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.health_port = health_port
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            # A session of its own: Ctrl-C on the suite reaches only the suite,
            # which then stops the gateway in order.
            self._process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def last_line(self) -> str:
        lines = [line for line in self.log().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Return once ``/healthz`` answers 200; raise if the process ends first.

        One client serves every probe: building one costs tens of milliseconds
        of CPU (its TLS context), which a probe per interval would take from
        the gateway while it starts. With that, probing often is cheap, so the
        interval stays short and the wait ends soon after the gateway is up.
        """
        url = f"http://127.0.0.1:{self.health_port}/healthz"

        with httpx.Client(timeout=1.0) as http:

            def healthy() -> bool | None:
                self._raise_if_exited("while starting")
                try:
                    return http.get(url).status_code == 200 or None
                except httpx.TransportError:
                    return None

            answered = poll(healthy, timeout=timeout, ceiling=HEALTH_POLL_CEILING)
        if answered is None:
            self._raise_if_exited("while starting")
            raise GatewayNotHealthy(
                f"gateway did not answer {url} within {timeout:.0f}s; "
                f"last log line: {self.last_line() or '(none)'}"
            )

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        """The exit code once the process ends, or None if it is still running.

        Waiting on the child itself returns the moment it exits, where a
        polling loop would add up to one interval to every refusal.
        """
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """End the process by its id: SIGTERM, then SIGKILL after ``timeout``."""
        if self._process is None or self._process.poll() is not None:
            return self.returncode
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait(timeout=timeout)

    def _raise_if_exited(self, doing: str) -> None:
        code = self.returncode
        if code is not None:
            raise GatewayExited(
                f"gateway exited with code {code} {doing}: "
                f"{self.last_line() or '(no output)'}",
                returncode=code,
                output=self.log(),
            )


@dataclass(frozen=True)
class Registration:
    """Where the CLI registration of a gateway lives on disk."""

    config_home: Path
    name: str

    @property
    def gateway_dir(self) -> Path:
        return self.config_home / "openshell" / "gateways" / self.name

    @property
    def metadata(self) -> Path:
        return self.gateway_dir / "metadata.json"

    @property
    def mtls_dir(self) -> Path:
        return self.gateway_dir / "mtls"

    @property
    def endpoint(self) -> str:
        metadata = json.loads(self.metadata.read_text(encoding="utf-8"))
        return metadata["gateway_endpoint"]


def register_gateway(
    config_home: Path,
    name: str,
    *,
    port: int,
    ca: Path,
    cert: Path | None,
    key: Path | None,
    scheme: str = "https",
) -> Registration:
    """Write the CLI registration that ``SandboxClient.from_active_cluster`` reads."""
    registration = Registration(config_home, name)
    registration.mtls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    metadata = {
        "name": name,
        "gateway_endpoint": f"{scheme}://127.0.0.1:{port}",
        "is_remote": False,
        "gateway_port": port,
    }
    registration.metadata.write_text(json.dumps(metadata, indent=2), encoding="utf-8")

    if scheme == "https":
        material = {"ca.crt": ca, "tls.crt": cert, "tls.key": key}
        for file_name, source in material.items():
            if source is None:
                continue
            target = registration.mtls_dir / file_name
            target.write_bytes(Path(source).read_bytes())
            os.chmod(target, 0o600)

    active = config_home / "openshell" / "active_gateway"
    active.write_text(name, encoding="utf-8")
    return registration


def wait_port_closed(host: str, port: int, timeout: float = 5.0) -> bool:
    """True once nothing accepts TCP connections on ``host:port``."""

    def closed() -> bool | None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            return True if probe.connect_ex((host, port)) != 0 else None

    return bool(poll(closed, timeout=timeout))


__all__ = [
    "DRIVER_FIELD_NAMES",
    "GUEST_TLS_KEYS",
    "GatewayProcess",
    "GatewaySettings",
    "Registration",
    "ServerTls",
    "gateway_config",
    "gateway_flags",
    "register_gateway",
    "wait_port_closed",
    "write_gateway_config",
]
