"""A byte relay from the sandbox network's host address to the gRPC listener.

Sandboxes dial ``host.containers.internal``, the host side of their Podman
bridge. That address exists only while a container is attached to the bridge,
and grpcio binds only addresses that exist, so the relay listens there with
``IP_FREEBIND`` and copies each connection byte for byte to the gateway's
loopback listener. TLS stays end to end: the relay never sees plaintext.
"""

from __future__ import annotations

import errno
import socket
import threading
from dataclasses import dataclass

from .errors import ListenError
from .logs import event

__all__ = ["BridgeRelay", "bind_freebind"]

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
ACCEPT_POLL_SECS = 0.5
CONNECT_TIMEOUT_SECS = 5.0
CHUNK = 65536
# A sandbox removed while connected sends no FIN: its network namespace is
# gone. Keepalive probes find such a peer dead after about 25 s of silence,
# which ends its relayed connection and the two threads that carry it.
KEEPALIVE_IDLE_SECS = 10
KEEPALIVE_INTERVAL_SECS = 5
KEEPALIVE_PROBES = 3


def bind_freebind(host: str, port: int, backlog: int = 64) -> socket.socket:
    """A listening TCP socket on ``host:port``, even if ``host`` is not up yet."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        listener.bind((host, port))
        listener.listen(backlog)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise ListenError(
                f"port {port} on {host} is already in use; stop whatever listens "
                "there or choose another --port"
            ) from None
        raise ListenError(
            f"cannot listen on {host}:{port}: {error.strerror or error}"
        ) from None
    return listener


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECS),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):  # Linux has all three
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


@dataclass
class _Pair:
    downstream: socket.socket
    upstream: socket.socket


class BridgeRelay:
    """Relay connections from ``listen_host:port`` to ``upstream``.

    At most ``max_connections`` are relayed at once (two threads each); a
    connection beyond that is closed at once.
    """

    def __init__(
        self,
        listen_host: str,
        port: int,
        upstream: tuple[str, int],
        *,
        max_connections: int = 64,
    ) -> None:
        self.listen_host = listen_host
        self.port = port
        self.upstream = upstream
        self._slots = threading.BoundedSemaphore(max_connections)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: dict[int, _Pair] = {}
        self._accept_thread: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()

    def bind(self) -> None:
        """Listen on the bridge address; raises ``ListenError`` when it cannot."""
        self._listener = bind_freebind(self.listen_host, self.port)
        self._listener.settimeout(ACCEPT_POLL_SECS)

    def start(self) -> None:
        if self._listener is None:
            self.bind()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="bridge-relay-accept", daemon=True
        )
        self._accept_thread.start()
        event(
            "info",
            "relay_listening",
            address=f"{self.listen_host}:{self.port}",
            upstream=f"{self.upstream[0]}:{self.upstream[1]}",
        )

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                downstream, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                event("warn", "relay_refused", peer=f"{peer[0]}:{peer[1]}", why="busy")
                downstream.close()
                continue
            worker = threading.Thread(
                target=self._open, args=(downstream, peer), daemon=True
            )
            with self._lock:
                self._workers.add(worker)
            worker.start()

    def _open(self, downstream: socket.socket, peer: tuple[str, int]) -> None:
        if self._stopping.is_set():
            downstream.close()
            self._release()
            return
        try:
            upstream = socket.create_connection(
                self.upstream, timeout=CONNECT_TIMEOUT_SECS
            )
        except OSError as error:
            event(
                "warn",
                "relay_upstream_failed",
                peer=f"{peer[0]}:{peer[1]}",
                error=error.strerror or str(error),
            )
            downstream.close()
            self._release()
            return
        upstream.settimeout(None)
        downstream.settimeout(None)
        # TLS records pass through in small writes; Nagle's algorithm would
        # hold each one back for the peer's delayed ACK.
        for side in (downstream, upstream):
            side.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keep_alive(downstream)
        pair = _Pair(downstream, upstream)
        with self._lock:
            stopping = self._stopping.is_set()
            if not stopping:
                self._sockets[id(pair)] = pair
        if stopping:
            self._close_pair(pair)
            self._release()
            return
        event("debug", "relay_connection", peer=f"{peer[0]}:{peer[1]}")
        reverse = threading.Thread(
            target=self._pump, args=(pair, upstream, downstream), daemon=True
        )
        reverse.start()
        self._pump(pair, downstream, upstream)
        reverse.join()
        self._close_pair(pair)
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._workers.discard(threading.current_thread())
        self._slots.release()

    @staticmethod
    def _pump(pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            source.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _close_pair(self, pair: _Pair) -> None:
        with self._lock:
            self._sockets.pop(id(pair), None)
        for sock in (pair.downstream, pair.upstream):
            try:
                sock.close()
            except OSError:
                pass

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, cut every relayed connection, and wait briefly."""
        with self._lock:
            self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        with self._lock:
            pairs = list(self._sockets.values())
            workers = list(self._workers)
        for pair in pairs:
            for sock in (pair.downstream, pair.upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for worker in workers:
            worker.join(timeout)
