"""Checks run inside a sandbox container, with what the container itself holds."""

from __future__ import annotations

from dataclasses import dataclass

from .container import GUEST_TLS_PATHS
from .podman import PodmanService

# Runs under the container's own Python with the guest TLS files it was given:
# resolve the alias, handshake with only the guest CA, send the HTTP/2 preface
# and wait for the server's first frame. One line out: "ok ..." or "fail ...".
_TLS_PROBE = """
import socket, ssl, sys
host, port, ca, cert, key = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
try:
    address = socket.gethostbyname(host)
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((address, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + bytes(9))
            frame = tls.recv(9)
            if len(frame) < 9 or frame[3] != 4:
                raise OSError("the gateway closed the connection")
            print("ok", address, tls.version())
except Exception as exc:
    print("fail", type(exc).__name__, exc)
"""


@dataclass(frozen=True)
class AliasAnswer:
    """What the sandbox saw when it dialled one host alias."""

    alias: str
    ok: bool
    line: str


def dial_alias(
    podman: PodmanService, container: str, alias: str, port: int
) -> AliasAnswer:
    """Dial ``alias:port`` from inside ``container`` over its own mutual TLS."""
    command = [
        "/usr/bin/python3",
        "-c",
        _TLS_PROBE,
        alias,
        str(port),
        GUEST_TLS_PATHS["guest_tls_ca"],
        GUEST_TLS_PATHS["guest_tls_cert"],
        GUEST_TLS_PATHS["guest_tls_key"],
    ]
    _, output = podman.exec(container, command)
    line = output.strip().splitlines()[-1] if output.strip() else "(no output)"
    return AliasAnswer(alias, line.startswith("ok "), line)


def try_write(podman: PodmanService, container: str, path: str) -> tuple[int, str]:
    """Append to ``path`` from inside the container; exit code and output."""
    code, output = podman.exec(container, ["/bin/sh", "-c", f": >> '{path}'"])
    return code, output.strip()
