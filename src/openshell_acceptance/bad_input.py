"""Bad input for a gateway that must refuse it: broken files, a taken port.

``prepare`` configures a deployment as for a working mTLS gateway, then spoils
one input: it writes the broken file into the deployment's work directory and
points the gateway at it, or takes the gateway's port. What the gateway's one
line must name comes back with it, under the words a reader would use.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import evidence
from .deployment import Deployment
from .evidence import Evidence
from .gateway import GatewaySettings, ServerTls, gateway_config
from .pki import Pki

__all__ = ["FAULTS", "BadInput", "prepare", "what_is_left"]

UNKNOWN_KEY = "guest_tls_certificate"
NEWER_VERSION = 2
# The gateway's TLS file flags, and the field of ``ServerTls`` each one sets.
_TLS_FLAGS = {"--tls-cert": "cert", "--tls-key": "key", "--tls-client-ca": "client_ca"}


@dataclass
class BadInput:
    """One spoiled input, what the refusal must name, and how to undo it."""

    fault: str
    description: str
    named: dict[str, str]
    shown: dict[str, str] = field(default_factory=dict)
    _blocker: socket.socket | None = field(default=None, repr=False)

    def names(self, phrase: str) -> str:
        """The text the refusal must hold for ``phrase`` ("the key path", ...)."""
        if phrase not in self.named:
            known = ", ".join(sorted(self.named))
            raise KeyError(f"{phrase!r} is not named by {self.fault}; known: {known}")
        return self.named[phrase]

    def evidence(self) -> list[Evidence]:
        items = [evidence.table("Bad input", [("fault", self.description)])]
        items += [evidence.text(caption, body) for caption, body in self.shown.items()]
        return items

    def release(self) -> None:
        """Let go of anything held to spoil the input (a port)."""
        blocker, self._blocker = self._blocker, None
        if blocker is not None:
            blocker.close()


def prepare(deployment: Deployment, fault: str) -> BadInput:
    """Configure ``deployment`` for mTLS with one input spoiled as ``fault`` says."""
    if fault not in FAULTS:
        raise ValueError(f"unknown bad input {fault!r}; known: {', '.join(FAULTS)}")
    deployment.configure()
    return FAULTS[fault](deployment)


def what_is_left(deployment: Deployment, bad: BadInput) -> dict[str, list[str]]:
    """Ports of the gateway that still answer, and sandbox containers that exist.

    A port held to spoil the input is let go first, so that only what the
    gateway itself left can answer.
    """
    bad.release()
    settings = _settings(deployment)
    ports = sorted({settings.port, settings.health_port})
    return {
        "listening ports": [str(p) for p in ports if deployment.listening(p)],
        "sandbox containers": deployment.managed_containers(),
    }


# The faults

_Fault = Callable[[Deployment], BadInput]
# Spoils one TLS file: its path, and what is wrong with it.
_Spoil = Callable[[Deployment], tuple[Path, str]]


def _tls_file(fault: str, flag: str, named: str) -> Callable[[_Spoil], _Fault]:
    """Make a fault that gives the gateway's ``flag`` a bad file.

    The decorated function spoils the file and returns its path and what is
    wrong with it; the refusal must name the path, as ``named`` says.
    """

    def decorate(spoil: _Spoil) -> _Fault:
        @functools.wraps(spoil)
        def spoiled(deployment: Deployment) -> BadInput:
            path, what = spoil(deployment)
            _serve_with(deployment, **{_TLS_FLAGS[flag]: path})
            return BadInput(fault, f"{flag} names {path}, {what}", {named: str(path)})

        return spoiled

    return decorate


def _config_not_toml(deployment: Deployment) -> BadInput:
    text = _config_text(_settings(deployment))
    broken = text.replace("[openshell.drivers.podman]", "[openshell.drivers.podman")
    path = _override_config(deployment, "not-toml.toml", broken)
    return BadInput(
        "config-not-toml",
        "the configuration file has a table header without its closing bracket",
        {"the configuration file": str(path)},
        {f"Configuration file given to the gateway ({path.name})": broken},
    )


def _config_unknown_key(deployment: Deployment) -> BadInput:
    settings = _settings(deployment)
    table = {**settings.driver_table, UNKNOWN_KEY: str(_pki(deployment).client_cert)}
    deployment.settings = replace(settings, driver_table=table)
    return BadInput(
        "config-unknown-key",
        f"the driver table sets {UNKNOWN_KEY}, which no gateway knows",
        {
            "the key": UNKNOWN_KEY,
            "the configuration file": str(deployment.workdir / "gateway.toml"),
        },
    )


def _config_newer_version(deployment: Deployment) -> BadInput:
    document = gateway_config(_settings(deployment))
    document["openshell"]["version"] = NEWER_VERSION
    text = tomli_w.dumps(document)
    path = _override_config(deployment, "newer-version.toml", text)
    return BadInput(
        "config-newer-version",
        f"the configuration file declares version {NEWER_VERSION}",
        {
            "the version": f"version {NEWER_VERSION}",
            "the configuration file": str(path),
        },
        {f"Configuration file given to the gateway ({path.name})": text},
    )


@_tls_file("cert-missing", "--tls-cert", "the certificate path")
def _cert_missing(deployment: Deployment) -> tuple[Path, str]:
    return deployment.workdir / "no-such-dir" / "tls.crt", "where no file exists"


@_tls_file("key-unreadable", "--tls-key", "the key path")
def _key_unreadable(deployment: Deployment) -> tuple[Path, str]:
    path = deployment.workdir / "tls.key"
    path.mkdir(mode=0o700)
    return path, "a directory, which cannot be read as a file"


def _key_mismatch(deployment: Deployment) -> BadInput:
    material = _pki(deployment)
    _serve_with(deployment, key=material.client_key)
    return BadInput(
        "key-mismatch",
        "--tls-key names the client's key, which belongs to another certificate",
        {
            "the key": str(material.client_key),
            "the certificate": str(material.server_cert),
        },
    )


@_tls_file("cert-not-pem", "--tls-cert", "the certificate file")
def _cert_not_pem(deployment: Deployment) -> tuple[Path, str]:
    pem = _pki(deployment).server_cert.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    path = deployment.workdir / "server-der.crt"
    path.write_bytes(der)
    return path, "the gateway certificate in DER form"


@_tls_file("client-ca-leaf", "--tls-client-ca", "the client CA file")
def _client_ca_leaf(deployment: Deployment) -> tuple[Path, str]:
    return _pki(deployment).server_cert, "the gateway's own leaf certificate"


@_tls_file("cert-empty", "--tls-cert", "the certificate file")
def _cert_empty(deployment: Deployment) -> tuple[Path, str]:
    path = deployment.workdir / "empty.crt"
    path.write_bytes(b"")
    return path, "an empty file"


def _port_taken(deployment: Deployment) -> BadInput:
    settings = _settings(deployment)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((settings.bind_address, settings.port))
        blocker.listen(1)
    except OSError:
        blocker.close()
        raise
    return BadInput(
        "port-taken",
        f"another listener holds {settings.bind_address}:{settings.port}",
        {"the port": f"port {settings.port}"},
        _blocker=blocker,
    )


FAULTS: Mapping[str, _Fault] = {
    "config-not-toml": _config_not_toml,
    "config-unknown-key": _config_unknown_key,
    "config-newer-version": _config_newer_version,
    "cert-missing": _cert_missing,
    "key-unreadable": _key_unreadable,
    "key-mismatch": _key_mismatch,
    "cert-not-pem": _cert_not_pem,
    "client-ca-leaf": _client_ca_leaf,
    "cert-empty": _cert_empty,
    "port-taken": _port_taken,
}


# Helpers


def _settings(deployment: Deployment) -> GatewaySettings:
    assert deployment.settings is not None, "configure the deployment first"
    return deployment.settings


def _pki(deployment: Deployment) -> Pki:
    assert deployment.pki is not None, "create the PKI first"
    return deployment.pki


def _config_text(settings: GatewaySettings) -> str:
    return tomli_w.dumps(gateway_config(settings))


def _override_config(deployment: Deployment, name: str, text: str) -> Path:
    """Point the gateway at ``text`` instead of the file the deployment writes.

    The gateway reads the last ``--config`` it is given, as a command line
    usually works; the deployment's own file still names the same settings.
    """
    path = deployment.workdir / name
    path.write_text(text, encoding="utf-8")
    settings = _settings(deployment)
    flags = (*settings.extra_flags, "--config", str(path))
    deployment.settings = replace(settings, extra_flags=flags)
    return path


def _serve_with(
    deployment: Deployment,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    client_ca: Path | None = None,
) -> None:
    settings = _settings(deployment)
    tls = settings.server_tls
    assert tls is not None, "a bad TLS file needs a TLS gateway"
    served = ServerTls(cert or tls.cert, key or tls.key, client_ca or tls.client_ca)
    deployment.settings = replace(settings, server_tls=served)
