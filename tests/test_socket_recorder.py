"""The recording socket relays bytes both ways and keeps only request lines."""

from __future__ import annotations

import socket
import threading

from openshell_acceptance.socket_recorder import SocketRecorder


def serve_once(path, reply: bytes) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer():
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(4096)
            connection.sendall(reply)
        listener.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def test_requests_pass_through_and_are_recorded(tmp_path):
    upstream = tmp_path / "podman.sock"
    server = serve_once(upstream, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    recorder = SocketRecorder(tmp_path / "recorded.sock", upstream).start()

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(recorder.path))
            client.sendall(
                b"POST /v4.3.1/libpod/containers/create HTTP/1.1\r\nHost: d\r\n\r\n"
            )
            reply = b""
            while not reply.endswith(b"ok"):
                chunk = client.recv(4096)
                if not chunk:
                    break
                reply += chunk
        server.join(timeout=5)
    finally:
        recorder.stop()

    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert recorder.requests() == ["POST /v4.3.1/libpod/containers/create"]
    assert not recorder.path.exists()


def test_nothing_is_recorded_when_nothing_came_through(tmp_path):
    recorder = SocketRecorder(tmp_path / "recorded.sock", tmp_path / "none.sock")
    recorder.start()
    recorder.stop()

    assert recorder.requests() == []
