"""A Unix socket in front of Podman's API that records which requests came through.

It shows which socket a driver really used: the gateway is pointed at the
recorder, and the requests it relays are the proof.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

_REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")
# Enough of each connection's client side to hold many request lines; bodies
# beyond it are relayed but not kept.
_KEEP_BYTES = 1 << 20


class SocketRecorder:
    """Relay ``path`` to ``upstream`` byte for byte, keeping the request lines."""

    def __init__(self, path: Path, upstream: Path) -> None:
        self.path = path
        self.upstream = upstream
        self._listener: socket.socket | None = None
        self._streams: list[bytearray] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> SocketRecorder:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(16)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def requests(self) -> list[str]:
        """``METHOD path`` of every request seen so far, in order."""
        with self._lock:
            streams = [bytes(stream) for stream in self._streams]
        return [
            f"{m.group(1).decode()} {m.group(2).decode(errors='replace')}"
            for stream in streams
            for m in _REQUEST_LINE.finditer(stream)
        ]

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # Closing alone does not wake a thread blocked in accept() on
            # Linux; shutting the listener down does, so the join is prompt.
            _close(listener)
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        listener = self._listener
        while listener is not None and self._listener is listener:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(str(self.upstream))
            except OSError:
                _close(client)
                _close(upstream)
                continue
            stream = bytearray()
            with self._lock:
                self._streams.append(stream)
                self._open.update((client, upstream))
            for source, sink, keep in (
                (client, upstream, stream),
                (upstream, client, None),
            ):
                threading.Thread(
                    target=self._pump, args=(source, sink, keep), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bytearray | None):
        try:
            while chunk := source.recv(65536):
                if keep is not None and len(keep) < _KEEP_BYTES:
                    with self._lock:
                        keep.extend(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
