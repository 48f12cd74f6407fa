"""``openshell-reference-gateway``: the same flags as ``openshell-gateway``.

Without a subcommand it runs the gateway; ``generate-certs`` writes the PKI.
Every configuration or usage error is one ``error:`` line and exit code 2,
before anything listens and before Podman is called.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .config import (
    SETTINGS,
    GatewayConfig,
    config_path,
    load_config_file,
    resolve_gateway_config,
)
from .errors import GatewayError
from .logs import configure_logging, event

if TYPE_CHECKING:
    from .driver import PodmanDriver

__all__ = ["build_parser", "main"]

PROG = "openshell-reference-gateway"
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
SHUTDOWN_POLL_SECS = 0.5


class UsageError(Exception):
    """argparse refused the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The command line: gateway flags, and the ``generate-certs`` subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Reference OpenShell gateway with a Podman compute driver.",
    )
    parser.add_argument("--version", action="version", version=__version__)

    def flag(name: str, metavar: str | None, text: str) -> None:
        setting = SETTINGS[name]
        parser.add_argument(
            setting.flag,
            dest=name,
            metavar=metavar,
            default=None,
            help=f"{text} [env: {setting.env}]",
        )

    flag("config", "PATH", "TOML configuration file")
    flag("bind_address", "IP", "address of the gRPC listener (default 127.0.0.1)")
    flag("port", "N", "port of the gRPC listener (default 17670)")
    flag("health_port", "N", "port of the plaintext health listener; 0 for none")
    flag("tls_cert", "PATH", "server certificate (PEM)")
    flag("tls_key", "PATH", "server private key (PEM)")
    flag("tls_client_ca", "PATH", "CA that client certificates must chain to")
    parser.add_argument(
        SETTINGS["disable_tls"].flag,
        dest="disable_tls",
        action="store_const",
        const=True,
        default=None,
        help=f"serve plaintext gRPC [env: {SETTINGS['disable_tls'].env}]",
    )
    flag("drivers", "NAMES", "compute drivers, comma-separated (only podman)")
    flag("db_url", "URL", "database URL (accepted; state is kept in memory)")
    flag("log_level", "LEVEL", "trace, debug, info, warn or error (default info)")
    parser.add_argument(
        SETTINGS["sandbox_listener"].flag,
        dest="sandbox_listener",
        choices=("bridge", "none"),
        default=None,
        help=(
            "also listen on the sandbox network's host address (bridge, the "
            "default) or only on --bind-address (none) "
            f"[env: {SETTINGS['sandbox_listener'].env}]"
        ),
    )

    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    certs = commands.add_parser(
        "generate-certs", help="write a CA, a server and a client certificate"
    )
    certs.add_argument("--output-dir", required=True, metavar="DIR", type=Path)
    certs.add_argument(
        "--server-san",
        action="append",
        default=[],
        metavar="NAME",
        help="extra server name or IP address; repeatable",
    )
    return parser


def _generate_certs(args: argparse.Namespace) -> int:
    from .certs import generate_certs

    outcome = generate_certs(args.output_dir, args.server_san)
    files = outcome.files
    names = ", ".join(files.relative(path) for path in files.all())
    if outcome.generated:
        print(
            f"generated the PKI in {files.root} ({names}); server SANs: "
            f"{', '.join(outcome.server_sans)}"
        )
    else:
        print(
            f"{files.root} already holds a complete PKI ({names}); skipping generation"
        )
    return EXIT_OK


def _announce(config: GatewayConfig, driver: PodmanDriver) -> None:
    event(
        "info",
        "gateway_starting",
        version=__version__,
        config=config.config_source,
        drivers=",".join(config.drivers),
        tls="off" if config.disable_tls else ("mtls" if config.client_auth else "tls"),
        sandbox_listener=config.sandbox_listener,
    )
    if config.disable_tls and (config.tls_cert or config.tls_key):
        event("warn", "tls_files_ignored", reason="--disable-tls is set")
    if config.db_url:
        # Limitation: sandboxes live in memory; --db-url is accepted, not used.
        event("info", "db_url_ignored", reason="the reference keeps state in memory")
    podman = config.podman
    if podman.supervisor_image:
        event(
            "info",
            "supervisor_image_not_mounted",
            image=podman.supervisor_image,
            present=str(driver.image_present(podman.supervisor_image)).lower(),
            reason="the reference bind-mounts its own supervisor",
        )
    if podman.guest_tls is not None and config.disable_tls:
        event(
            "warn",
            "tls_mismatch",
            reason="guest TLS is on but the gateway serves plaintext",
        )
    if podman.guest_tls is None and not config.disable_tls:
        event(
            "warn",
            "tls_mismatch",
            reason="the gateway serves TLS but guest TLS is off",
        )


def _serve(config: GatewayConfig) -> int:
    # Imported once the configuration holds: a refusal of it exits without
    # loading cryptography, podman-py or gRPC.
    from .certs import load_server_tls
    from .driver import PodmanDriver

    tls = None
    if not config.disable_tls:
        assert config.tls_cert is not None and config.tls_key is not None
        tls = load_server_tls(config.tls_cert, config.tls_key, config.tls_client_ca)
    driver = PodmanDriver(config.podman)
    driver.check_files()

    podman_version = driver.connect()
    network = driver.ensure_network()

    from .server import Gateway

    gateway = Gateway(
        bind_address=config.bind_address,
        port=config.port,
        driver=driver,
        tls=tls,
        health_address=config.health_address,
        health_port=config.health_port,
        bridge_address=(
            network.sandbox_address
            if config.sandbox_listener == "bridge"
            and network.sandbox_address != config.bind_address
            else None
        ),
    )
    try:
        gateway.bind()
        leftovers = driver.managed_containers()
    except GatewayError:
        if network.created:
            driver.remove_network()
        driver.close()
        raise

    _announce(config, driver)
    event(
        "info",
        "driver_started",
        driver="podman",
        socket=config.podman.socket_path,
        socket_origin=config.podman.socket_origin,
        podman_version=podman_version,
        network=network.name,
        network_created=str(network.created).lower(),
        gateway_ip=network.gateway_ip,
        rootless=str(network.rootless).lower(),
        sandbox_address=network.sandbox_address,
        grpc_endpoint=config.podman.grpc_endpoint,
        guest_tls="on" if config.podman.guest_tls else "off",
        selinux=str(driver.selinux).lower(),
        image_pull_policy=config.podman.image_pull_policy,
    )
    gateway.adopt(leftovers)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        event("info", "signal", name=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    gateway.start()
    while not stop.wait(SHUTDOWN_POLL_SECS):
        pass
    gateway.stop()
    driver.close()
    return EXIT_OK


def _run_gateway(args: argparse.Namespace) -> int:
    cli = {name: getattr(args, name) for name in SETTINGS}
    path = config_path(cli, os.environ)
    file = load_config_file(path) if path is not None else None
    config = resolve_gateway_config(
        cli, os.environ, file, uid=os.getuid(), cwd=Path.cwd()
    )
    if config.log_level not in ("debug", "trace"):
        # grpcio's C core writes its own unstructured lines; the gateway logs
        # the events that matter itself.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    configure_logging(config.log_level)
    return _serve(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``openshell-reference-gateway``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        return _fail(str(error))
    try:
        if args.command == "generate-certs":
            return _generate_certs(args)
        return _run_gateway(args)
    except GatewayError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return EXIT_RUNTIME
    except Exception as error:  # one line, never a traceback
        print(
            f"{PROG}: error: unexpected {type(error).__name__}: {error}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_RUNTIME
