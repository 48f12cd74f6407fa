"""Gateway configuration from flags, environment variables and the TOML file.

Each setting is taken from its command-line flag, else its environment
variable, else the TOML file, else the built-in default. Everything in this
module is pure except ``load_config_file``, which reads the file, so a
configuration is refused before anything listens or Podman is called.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import (
    ConfigError,
    ConfigFileError,
    PartialGuestTLSError,
    UnknownKeyError,
    UnsupportedVersionError,
)

__all__ = [
    "CONFIG_VERSION",
    "ConfigFile",
    "DEFAULT_PORT",
    "GUEST_TLS_DRIVER_NAMES",
    "GatewayConfig",
    "GatewayTable",
    "GuestTLS",
    "INHERITED_KEYS",
    "PULL_POLICIES",
    "PodmanConfig",
    "PodmanTable",
    "SETTINGS",
    "Setting",
    "config_path",
    "default_socket_path",
    "derive_grpc_endpoint",
    "guest_tls_from",
    "inherit_driver_table",
    "load_config_file",
    "parse_config",
    "resolve_gateway_config",
    "resolve_podman_config",
]

CONFIG_VERSION = 1
DEFAULT_BIND_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 17670
DEFAULT_HEALTH_PORT = 0
DEFAULT_NETWORK = "openshell"
DEFAULT_PULL_POLICY = "missing"
DEFAULT_STOP_TIMEOUT_SECS = 15
DEFAULT_LOG_LEVEL = "info"
PULL_POLICIES = ("always", "missing", "never", "newer")
SUPPORTED_DRIVERS = ("podman",)
SANDBOX_LISTENERS = ("bridge", "none")
LOG_LEVEL_NAMES = ("trace", "debug", "info", "warn", "warning", "error")
ENDPOINT_HOST = "host.containers.internal"

GUEST_TLS_KEYS = ("guest_tls_ca", "guest_tls_cert", "guest_tls_key")
GUEST_TLS_DRIVER_NAMES: Mapping[str, str] = {
    "guest_tls_ca": "--podman-tls-ca / OPENSHELL_PODMAN_TLS_CA",
    "guest_tls_cert": "--podman-tls-cert / OPENSHELL_PODMAN_TLS_CERT",
    "guest_tls_key": "--podman-tls-key / OPENSHELL_PODMAN_TLS_KEY",
}
INHERITED_KEYS = ("default_image", "supervisor_image", *GUEST_TLS_KEYS)

GATEWAY_TABLE = "openshell.gateway"
PODMAN_TABLE = "openshell.drivers.podman"
_NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


# The TOML file.


def _kind_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _expect_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _expect_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _expect_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _expect_str_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


_EXPECTATIONS: Mapping[Callable[[object], Any], str] = {
    _expect_str: "a string",
    _expect_int: "an integer",
    _expect_bool: "a boolean",
    _expect_str_list: "an array of strings",
}


@dataclass(frozen=True)
class GatewayTable:
    """The keys of ``[openshell.gateway]`` as written; None when absent."""

    compute_drivers: tuple[str, ...] | None = None
    bind_address: str | None = None
    health_bind_address: str | None = None
    log_level: str | None = None
    disable_tls: bool | None = None
    default_image: str | None = None
    supervisor_image: str | None = None
    guest_tls_ca: str | None = None
    guest_tls_cert: str | None = None
    guest_tls_key: str | None = None


@dataclass(frozen=True)
class PodmanTable:
    """The keys of ``[openshell.drivers.podman]`` as written; None when absent."""

    network_name: str | None = None
    gateway_port: int | None = None
    default_image: str | None = None
    image_pull_policy: str | None = None
    stop_timeout_secs: int | None = None
    supervisor_image: str | None = None
    socket_path: str | None = None
    grpc_endpoint: str | None = None
    guest_tls_ca: str | None = None
    guest_tls_cert: str | None = None
    guest_tls_key: str | None = None


_GATEWAY_SCHEMA: Mapping[str, Callable[[object], Any]] = {
    "compute_drivers": _expect_str_list,
    "bind_address": _expect_str,
    "health_bind_address": _expect_str,
    "log_level": _expect_str,
    "disable_tls": _expect_bool,
    "default_image": _expect_str,
    "supervisor_image": _expect_str,
    "guest_tls_ca": _expect_str,
    "guest_tls_cert": _expect_str,
    "guest_tls_key": _expect_str,
}
_PODMAN_SCHEMA: Mapping[str, Callable[[object], Any]] = {
    "network_name": _expect_str,
    "gateway_port": _expect_int,
    "default_image": _expect_str,
    "image_pull_policy": _expect_str,
    "stop_timeout_secs": _expect_int,
    "supervisor_image": _expect_str,
    "socket_path": _expect_str,
    "grpc_endpoint": _expect_str,
    "guest_tls_ca": _expect_str,
    "guest_tls_cert": _expect_str,
    "guest_tls_key": _expect_str,
}


@dataclass(frozen=True)
class ConfigFile:
    """A parsed and checked TOML configuration."""

    source: str = "<no config file>"
    version: int = CONFIG_VERSION
    gateway: GatewayTable = field(default_factory=GatewayTable)
    podman: PodmanTable = field(default_factory=PodmanTable)

    def origin(self, table: str, key: str) -> str:
        return f"{key} in [{table}] of {self.source}"


def _where(table: str | None, source: str) -> str:
    return f"in [{table}] of {source}" if table else f"at the top level of {source}"


def _table(value: object, table: str, source: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"[{table}] of {source} must be a table, not {_kind_name(value)}"
        )
    return value


def _check_keys(
    document: Mapping[str, object],
    known: Sequence[str],
    table: str | None,
    source: str,
) -> None:
    for key in document:
        if key not in known:
            raise UnknownKeyError(
                f"unknown key '{key}' {_where(table, source)}; "
                f"known keys there: {', '.join(known)}"
            )


def _typed_table(
    document: Mapping[str, object],
    schema: Mapping[str, Callable[[object], Any]],
    table: str,
    source: str,
) -> dict[str, Any]:
    _check_keys(document, list(schema), table, source)
    values: dict[str, Any] = {}
    for key, raw in document.items():
        expect = schema[key]
        value = expect(raw)
        if value is None:
            raise ConfigError(
                f"invalid value for {key} in [{table}] of {source}: expected "
                f"{_EXPECTATIONS[expect]}, got {_kind_name(raw)}"
            )
        values[key] = value
    return values


def parse_config(
    document: Mapping[str, object], source: str = "<config>"
) -> ConfigFile:
    """Check a decoded TOML document and return its tables.

    Unknown keys at any level and a version newer than ``CONFIG_VERSION`` are
    errors that name the key.
    """
    _check_keys(document, ["openshell"], None, source)
    root = _table(document.get("openshell", {}), "openshell", source)
    _check_keys(root, ["version", "gateway", "drivers"], "openshell", source)

    version = root.get("version", CONFIG_VERSION)
    if _expect_int(version) is None:
        raise ConfigError(
            f"invalid value for version in [openshell] of {source}: expected an "
            f"integer, got {_kind_name(version)}"
        )
    assert isinstance(version, int)
    if version > CONFIG_VERSION:
        raise UnsupportedVersionError(
            f"version {version} in [openshell] of {source} is newer than this "
            f"gateway understands (it knows version {CONFIG_VERSION}); "
            f"write version = {CONFIG_VERSION} or use a newer gateway"
        )
    if version < 1:
        raise UnsupportedVersionError(
            f"version {version} in [openshell] of {source} is not a configuration "
            f"version; write version = {CONFIG_VERSION}"
        )

    gateway = _typed_table(
        _table(root.get("gateway", {}), GATEWAY_TABLE, source),
        _GATEWAY_SCHEMA,
        GATEWAY_TABLE,
        source,
    )
    drivers = _table(root.get("drivers", {}), "openshell.drivers", source)
    _check_keys(drivers, list(SUPPORTED_DRIVERS), "openshell.drivers", source)
    podman = _typed_table(
        _table(drivers.get("podman", {}), PODMAN_TABLE, source),
        _PODMAN_SCHEMA,
        PODMAN_TABLE,
        source,
    )
    return ConfigFile(
        source=source,
        version=version,
        gateway=GatewayTable(**gateway),
        podman=PodmanTable(**podman),
    )


def load_config_file(path: Path | str) -> ConfigFile:
    """Read and parse the TOML file at ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(
            f"configuration file {path} does not exist; fix --config / "
            "OPENSHELL_GATEWAY_CONFIG"
        ) from None
    except OSError as error:
        raise ConfigFileError(
            f"cannot read configuration file {path}: {error.strerror or error}"
        ) from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigFileError(f"configuration file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(
            f"configuration file {path} is not valid TOML: {error}"
        ) from None
    return parse_config(document, str(path))


# Flags and environment variables.


@dataclass(frozen=True)
class Setting:
    """A gateway setting's command-line flag and environment variable."""

    name: str
    flag: str
    env: str


SETTINGS: Mapping[str, Setting] = {
    setting.name: setting
    for setting in (
        Setting("config", "--config", "OPENSHELL_GATEWAY_CONFIG"),
        Setting("bind_address", "--bind-address", "OPENSHELL_BIND_ADDRESS"),
        Setting("port", "--port", "OPENSHELL_SERVER_PORT"),
        Setting("health_port", "--health-port", "OPENSHELL_HEALTH_PORT"),
        Setting("tls_cert", "--tls-cert", "OPENSHELL_TLS_CERT"),
        Setting("tls_key", "--tls-key", "OPENSHELL_TLS_KEY"),
        Setting("tls_client_ca", "--tls-client-ca", "OPENSHELL_TLS_CLIENT_CA"),
        Setting("disable_tls", "--disable-tls", "OPENSHELL_DISABLE_TLS"),
        Setting("drivers", "--drivers", "OPENSHELL_DRIVERS"),
        Setting("db_url", "--db-url", "OPENSHELL_DB_URL"),
        Setting("log_level", "--log-level", "OPENSHELL_LOG_LEVEL"),
        Setting(
            "sandbox_listener",
            "--sandbox-listener",
            "OPENSHELL_REFERENCE_SANDBOX_LISTENER",
        ),
    )
}


def _from_cli_or_env(
    name: str, cli: Mapping[str, object], environ: Mapping[str, str]
) -> tuple[object, str] | None:
    setting = SETTINGS[name]
    value = cli.get(name)
    if value is not None:
        return value, setting.flag
    if setting.env in environ:
        return environ[setting.env], setting.env
    return None


def config_path(cli: Mapping[str, object], environ: Mapping[str, str]) -> Path | None:
    """The TOML file to read, from ``--config`` or OPENSHELL_GATEWAY_CONFIG."""
    found = _from_cli_or_env("config", cli, environ)
    if found is None or found[0] == "":
        return None
    return Path(str(found[0]))


def _port(value: object, origin: str, *, allow_zero: bool) -> int:
    text = str(value).strip()
    lowest = 0 if allow_zero else 1
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ConfigError(
            f"{origin} {text!r} is not a port number; give an integer from "
            f"{lowest} to 65535"
        )
    return int(text)


def _bool(value: object, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(f"{origin} {value!r} is not a boolean; give true or false")


def _ip(value: str, origin: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(
            f"{origin} {value!r} is not an IP address; give one such as 127.0.0.1"
        ) from None
    if address.is_unspecified:
        raise ConfigError(
            f"{origin} {value} would listen on all addresses, which this gateway "
            "refuses; give a specific address such as 127.0.0.1"
        )
    return str(address)


def _address_with_port(value: str, origin: str) -> tuple[str, int | None]:
    """Split ``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` as TOML address keys hold."""
    text = value.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return _ip(text, origin), None
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ConfigError(f"{origin} {value!r} is not an address; give IP or IP:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return _ip(host, origin), _port(port, origin, allow_zero=False)


def _drivers(value: object, origin: str) -> tuple[str, ...]:
    if isinstance(value, (tuple, list)):
        names = tuple(str(item).strip() for item in value)
    else:
        names = tuple(part.strip() for part in str(value).split(","))
    names = tuple(name for name in names if name)
    if not names:
        raise ConfigError(f"{origin} names no compute driver; give podman")
    for name in names:
        if name not in SUPPORTED_DRIVERS:
            raise ConfigError(
                f"{origin} names compute driver {name!r}, which the reference "
                f"gateway does not implement; give {', '.join(SUPPORTED_DRIVERS)}"
            )
    return names


def _choice(value: object, origin: str, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(f"{origin} {value!r} is not one of: {', '.join(choices)}")
    return text


# The Podman driver table.


@dataclass(frozen=True)
class GuestTLS:
    """Host paths of the client identity mounted into every sandbox."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class PodmanConfig:
    """The Podman driver's settings after inheritance, defaults and checks."""

    network_name: str = DEFAULT_NETWORK
    gateway_port: int = DEFAULT_PORT
    default_image: str | None = None
    image_pull_policy: str = DEFAULT_PULL_POLICY
    stop_timeout_secs: int = DEFAULT_STOP_TIMEOUT_SECS
    supervisor_image: str | None = None
    socket_path: Path = Path("/run/podman/podman.sock")
    socket_origin: str = "the default for root"
    grpc_endpoint: str = f"http://{ENDPOINT_HOST}:{DEFAULT_PORT}"
    guest_tls: GuestTLS | None = None


def inherit_driver_table(
    gateway: GatewayTable | Mapping[str, object],
    driver: PodmanTable | Mapping[str, object],
) -> dict[str, object]:
    """Return the driver table's keys, with inherited gateway keys filled in.

    Each of ``INHERITED_KEYS`` that the driver table does not set itself is
    copied from the gateway table, key by key.
    """
    gateway_values = _as_dict(gateway)
    merged = {
        key: value for key, value in _as_dict(driver).items() if value is not None
    }
    for key in INHERITED_KEYS:
        if key not in merged and gateway_values.get(key) is not None:
            merged[key] = gateway_values[key]
    return merged


def _as_dict(table: Any) -> dict[str, object]:
    if isinstance(table, Mapping):
        return dict(table)
    return {item.name: getattr(table, item.name) for item in fields(table)}


def _path(value: str, cwd: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else cwd / path


def guest_tls_from(
    merged: Mapping[str, object], cwd: Path = Path("/")
) -> GuestTLS | None:
    """Guest TLS from the merged driver table: all three paths, or none.

    One or two set is a ``PartialGuestTLSError`` naming every missing field
    with the driver's flag and variable names. An empty string counts as unset.
    """
    present = {key: str(merged[key]) for key in GUEST_TLS_KEYS if merged.get(key)}
    if not present:
        return None
    missing = [key for key in GUEST_TLS_KEYS if key not in present]
    if missing:
        names = ", ".join(GUEST_TLS_DRIVER_NAMES[key] for key in missing)
        raise PartialGuestTLSError(
            f"partial guest TLS configuration: missing {names} "
            "(set all three guest_tls_* keys, or none)"
        )
    return GuestTLS(
        ca=_path(present["guest_tls_ca"], cwd),
        cert=_path(present["guest_tls_cert"], cwd),
        key=_path(present["guest_tls_key"], cwd),
    )


def derive_grpc_endpoint(gateway_port: int, guest_tls: bool) -> str:
    """The endpoint sandboxes dial when ``grpc_endpoint`` is not configured."""
    scheme = "https" if guest_tls else "http"
    return f"{scheme}://{ENDPOINT_HOST}:{gateway_port}"


def _check_endpoint(endpoint: str, guest_tls: bool, origin: str) -> str:
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise ConfigError(
            f"{origin} {endpoint!r} is not an endpoint; give "
            "https://HOST:PORT (or http://HOST:PORT without guest TLS)"
        )
    if parts.scheme == "https" and not guest_tls:
        raise ConfigError(
            f"{origin} {endpoint} is https:// but guest TLS is off; set "
            "guest_tls_ca, guest_tls_cert and guest_tls_key, or use http://"
        )
    if parts.scheme == "http" and guest_tls:
        raise ConfigError(
            f"{origin} {endpoint} is http:// although guest TLS is configured, "
            "which would send sandbox traffic in plaintext; use https://"
        )
    return endpoint


def default_socket_path(environ: Mapping[str, str], uid: int) -> tuple[Path, str]:
    """The Podman socket when ``socket_path`` is not configured, and its origin."""
    container_host = environ.get("CONTAINER_HOST", "")
    if container_host:
        if not container_host.startswith("unix://"):
            raise ConfigError(
                f"CONTAINER_HOST {container_host!r} is not a unix:// socket; set "
                f"socket_path in [{PODMAN_TABLE}] to the Podman API socket"
            )
        return Path(container_host[len("unix://") :]), "CONTAINER_HOST"
    if uid == 0:
        return Path("/run/podman/podman.sock"), "the default for root"
    runtime_dir = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    return Path(runtime_dir) / "podman" / "podman.sock", "the default for this user"


def resolve_podman_config(
    file: ConfigFile,
    *,
    server_port: int,
    environ: Mapping[str, str],
    uid: int,
    cwd: Path = Path("/"),
) -> PodmanConfig:
    """Apply inheritance, defaults and checks to the Podman driver table."""
    merged = inherit_driver_table(file.gateway, file.podman)

    def origin(key: str) -> str:
        return file.origin(PODMAN_TABLE, key)

    guest_tls = guest_tls_from(merged, cwd)

    network_name = str(merged.get("network_name", DEFAULT_NETWORK))
    if not _NETWORK_NAME.match(network_name):
        raise ConfigError(
            f"{origin('network_name')} {network_name!r} is not a network name; "
            "use letters, digits, '.', '_' and '-'"
        )
    gateway_port = merged.get("gateway_port", server_port)
    if not isinstance(gateway_port, int) or not 1 <= gateway_port <= 65535:
        raise ConfigError(
            f"{origin('gateway_port')} {gateway_port} is not a port number; "
            "give an integer from 1 to 65535"
        )
    policy = _choice(
        merged.get("image_pull_policy", DEFAULT_PULL_POLICY),
        origin("image_pull_policy"),
        PULL_POLICIES,
    )
    stop_timeout = merged.get("stop_timeout_secs", DEFAULT_STOP_TIMEOUT_SECS)
    if not isinstance(stop_timeout, int) or stop_timeout < 0:
        raise ConfigError(
            f"{origin('stop_timeout_secs')} {stop_timeout} is negative; give a "
            "number of seconds, 0 or more"
        )

    socket_value = str(merged.get("socket_path") or "")
    if socket_value:
        raw = socket_value.removeprefix("unix://")
        if not raw.startswith("/"):
            raise ConfigError(
                f"{origin('socket_path')} {socket_value!r} is not an absolute "
                "path; give the Podman API socket, e.g. /run/podman/podman.sock"
            )
        socket_path, socket_origin = Path(raw), origin("socket_path")
    else:
        socket_path, socket_origin = default_socket_path(environ, uid)

    endpoint_value = str(merged.get("grpc_endpoint") or "")
    if endpoint_value:
        grpc_endpoint = _check_endpoint(
            endpoint_value, guest_tls is not None, origin("grpc_endpoint")
        )
    else:
        grpc_endpoint = derive_grpc_endpoint(gateway_port, guest_tls is not None)

    default_image = merged.get("default_image") or None
    supervisor_image = merged.get("supervisor_image") or None
    return PodmanConfig(
        network_name=network_name,
        gateway_port=gateway_port,
        default_image=str(default_image) if default_image else None,
        image_pull_policy=policy,
        stop_timeout_secs=stop_timeout,
        supervisor_image=str(supervisor_image) if supervisor_image else None,
        socket_path=socket_path,
        socket_origin=socket_origin,
        grpc_endpoint=grpc_endpoint,
        guest_tls=guest_tls,
    )


# The whole gateway.


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway process needs, checked and with defaults applied."""

    bind_address: str = DEFAULT_BIND_ADDRESS
    port: int = DEFAULT_PORT
    health_address: str = DEFAULT_BIND_ADDRESS
    health_port: int = DEFAULT_HEALTH_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    disable_tls: bool = False
    drivers: tuple[str, ...] = SUPPORTED_DRIVERS
    db_url: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    sandbox_listener: str = "bridge"
    config_source: str | None = None
    podman: PodmanConfig = field(default_factory=PodmanConfig)

    @property
    def tls_enabled(self) -> bool:
        return not self.disable_tls

    @property
    def client_auth(self) -> bool:
        return self.tls_enabled and self.tls_client_ca is not None


def resolve_gateway_config(
    cli: Mapping[str, object],
    environ: Mapping[str, str],
    file: ConfigFile | None = None,
    *,
    uid: int = 0,
    cwd: Path = Path("/"),
) -> GatewayConfig:
    """Combine flags, environment and TOML into a checked ``GatewayConfig``.

    ``cli`` maps setting names (see ``SETTINGS``) to flag values, None when a
    flag was not given.
    """
    file = file or ConfigFile()
    table = file.gateway

    def pick(name: str, toml_key: str | None = None) -> tuple[object, str] | None:
        found = _from_cli_or_env(name, cli, environ)
        if found is not None:
            return found
        if toml_key is not None and getattr(table, toml_key) is not None:
            return getattr(table, toml_key), file.origin(GATEWAY_TABLE, toml_key)
        return None

    drivers_found = pick("drivers", "compute_drivers")
    drivers = _drivers(*drivers_found) if drivers_found else SUPPORTED_DRIVERS

    level_found = pick("log_level", "log_level")
    log_level = (
        _choice(*level_found, LOG_LEVEL_NAMES) if level_found else DEFAULT_LOG_LEVEL
    )
    listener_found = pick("sandbox_listener")
    sandbox_listener = (
        _choice(*listener_found, SANDBOX_LISTENERS) if listener_found else "bridge"
    )

    bind_address, toml_port = DEFAULT_BIND_ADDRESS, None
    address_found = pick("bind_address")
    if address_found is not None:
        bind_address = _ip(str(address_found[0]).strip(), address_found[1])
    elif table.bind_address is not None:
        bind_address, toml_port = _address_with_port(
            table.bind_address, file.origin(GATEWAY_TABLE, "bind_address")
        )
    port_found = pick("port")
    if port_found is not None:
        port = _port(*port_found, allow_zero=False)
    else:
        port = toml_port or DEFAULT_PORT

    health_address, health_port = bind_address, DEFAULT_HEALTH_PORT
    if table.health_bind_address is not None:
        health_address, toml_health = _address_with_port(
            table.health_bind_address,
            file.origin(GATEWAY_TABLE, "health_bind_address"),
        )
        health_port = toml_health or DEFAULT_HEALTH_PORT
    health_found = pick("health_port")
    if health_found is not None:
        health_port = _port(*health_found, allow_zero=True)
    if health_port and health_port == port:
        raise ConfigError(
            f"--port and --health-port are both {port}; the health listener needs "
            "a port of its own"
        )

    disable_found = pick("disable_tls", "disable_tls")
    disable_tls = _bool(*disable_found) if disable_found else False
    paths: dict[str, Path | None] = {}
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        found = pick(name)
        paths[name] = (
            _path(str(found[0]), cwd) if found is not None and found[0] != "" else None
        )
    if disable_tls and paths["tls_client_ca"] is not None:
        raise ConfigError(
            "--disable-tls cannot be combined with --tls-client-ca: client "
            "certificate verification needs TLS; drop one of them"
        )
    if not disable_tls:
        for name in ("tls_cert", "tls_key"):
            if paths[name] is None:
                setting = SETTINGS[name]
                raise ConfigError(
                    f"TLS is on but {setting.flag} / {setting.env} is not set; pass "
                    "--tls-cert and --tls-key, or --disable-tls for plaintext"
                )

    db_found = pick("db_url")
    podman = resolve_podman_config(
        file, server_port=port, environ=environ, uid=uid, cwd=cwd
    )
    return GatewayConfig(
        bind_address=bind_address,
        port=port,
        health_address=health_address,
        health_port=health_port,
        tls_cert=paths["tls_cert"],
        tls_key=paths["tls_key"],
        tls_client_ca=paths["tls_client_ca"],
        disable_tls=disable_tls,
        drivers=drivers,
        db_url=str(db_found[0]) if db_found else None,
        log_level="warn" if log_level == "warning" else log_level,
        sandbox_listener=sandbox_listener,
        config_source=file.source if file.source != ConfigFile().source else None,
        podman=podman,
    )
