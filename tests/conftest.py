"""Fixtures that several test modules share: free ports, PKIs, loopback servers."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from openshell_reference.certs import generate_certs

if TYPE_CHECKING:
    from openshell_acceptance.pki import Pki

Handler = Callable[[socket.socket], None]
Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function that finds a loopback port nothing listens on at the moment."""

    def find() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    return find


# PKIs. A module that tests the suite's own PKI defines a ``pki`` of its own,
# which takes the place of this one there.


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKI directory as the reference gateway's ``generate-certs`` writes it."""
    return _generated(tmp_path_factory, "pki")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another such directory, with a CA of its own."""
    return _generated(tmp_path_factory, "other-pki")


def _generated(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    root = tmp_path_factory.mktemp(name) / "pki"
    generate_certs(root)
    return root


@pytest.fixture(scope="session")
def mtls_contexts() -> Callable[..., Contexts]:
    """A function that makes a server and a client context for mutual TLS.

    Both trust the CA of a suite ``Pki``; the server presents its certificate
    and requires a client certificate, and the client presents the given one,
    by default the PKI's own.
    """

    def make(
        material: Pki, client_cert: Path | None = None, client_key: Path | None = None
    ) -> Contexts:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(material.server_cert, material.server_key)
        server.load_verify_locations(material.ca_cert)
        server.verify_mode = ssl.CERT_REQUIRED
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(material.ca_cert)
        client.load_cert_chain(
            client_cert or material.client_cert, client_key or material.client_key
        )
        return server, client

    return make


# Loopback servers


class LocalServer:
    """A TCP listener on loopback that hands each connection to ``handle``."""

    def __init__(self, handle: Handler, host: str = "127.0.0.1") -> None:
        self.handle = handle
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5.0)
            try:
                self.handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.stopped.set()
        self.thread.join(5.0)
        self.listener.close()


@pytest.fixture(scope="session")
def local_server() -> type[LocalServer]:
    """``with local_server(handle) as server:`` serves on ``server.port``."""
    return LocalServer
