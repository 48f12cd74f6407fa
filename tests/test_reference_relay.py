"""The bridge relay and the log line format, on loopback only."""

from __future__ import annotations

import io
import logging
import socket
import time

import pytest

from openshell_reference.errors import ListenError
from openshell_reference.logs import LogfmtFormatter, configure_logging, event
from openshell_reference.relay import BridgeRelay, bind_freebind


@pytest.fixture()
def upstream(local_server):
    """An upstream that answers each line in upper case, then closes on EOF."""

    def answer_in_upper_case(conn: socket.socket) -> None:
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(data.upper())

    with local_server(answer_in_upper_case) as server:
        yield server.port


def test_bytes_are_relayed_both_ways_and_half_close_is_passed_on(upstream):
    relay = BridgeRelay("127.0.0.2", upstream, ("127.0.0.1", upstream))
    relay.start()
    try:
        with socket.create_connection(("127.0.0.2", upstream), timeout=5) as conn:
            payload = b"hello through the relay\n" * 1000
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
    finally:
        relay.close()

    assert received == payload.upper()


def test_an_unreachable_upstream_closes_the_connection(upstream, free_port):
    dead = free_port()
    relay = BridgeRelay("127.0.0.2", dead, ("127.0.0.1", dead))
    relay.start()
    try:
        with socket.create_connection(("127.0.0.2", dead), timeout=5) as conn:
            assert conn.recv(1) == b""
    finally:
        relay.close()


def test_freebind_listens_on_an_address_the_host_does_not_have_yet(free_port):
    listener = bind_freebind("192.0.2.1", free_port())
    try:
        assert listener.getsockname()[0] == "192.0.2.1"
    finally:
        listener.close()


def test_a_port_in_use_is_a_listen_error():
    with socket.create_server(("127.0.0.2", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"port {port} on 127.0.0.2"):
            bind_freebind("127.0.0.2", port)


def received_or_reset(conn: socket.socket) -> bytes | None:
    try:
        return conn.recv(100)
    except ConnectionResetError:
        return None


def test_close_cuts_a_connection_waiting_to_be_relayed(upstream):
    relay = BridgeRelay("127.0.0.2", upstream, ("127.0.0.1", upstream))
    relay.start()
    conn = socket.create_connection(("127.0.0.2", upstream), timeout=5)

    relay.close(timeout=2)

    assert received_or_reset(conn) in (b"", None)
    conn.close()


def test_close_cuts_a_relayed_connection(upstream):
    relay = BridgeRelay("127.0.0.2", upstream, ("127.0.0.1", upstream))
    relay.start()
    conn = socket.create_connection(("127.0.0.2", upstream), timeout=5)
    conn.sendall(b"pending")
    deadline = time.monotonic() + 5
    while not relay._sockets and time.monotonic() < deadline:
        time.sleep(0.01)
    assert relay._sockets, "the relay never opened its upstream connection"

    relay.close(timeout=2)

    assert received_or_reset(conn) in (b"", None)
    conn.close()


def test_a_relayed_sandbox_connection_is_probed_for_a_peer_that_vanished(upstream):
    relay = BridgeRelay("127.0.0.2", upstream, ("127.0.0.1", upstream))
    relay.start()
    conn = socket.create_connection(("127.0.0.2", upstream), timeout=5)
    try:
        deadline = time.monotonic() + 5
        while not relay._sockets and time.monotonic() < deadline:
            time.sleep(0.01)
        (pair,) = relay._sockets.values()
        downstream = pair.downstream

        def option(level: int, name: int) -> int:
            return downstream.getsockopt(level, name)

        assert option(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert option(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert option(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
        assert option(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert option(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        conn.close()
        relay.close(timeout=2)


# Log lines.


@pytest.fixture()
def log_stream():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("info", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def test_events_are_one_logfmt_line_each(log_stream):
    event("info", "sandbox_created", sandbox="alpha", workspace="team a")
    event("debug", "hidden_at_info")

    assert log_stream.getvalue() == (
        'level=info event=sandbox_created sandbox=alpha workspace="team a"\n'
    )


def test_library_records_are_logfmt_lines_without_tracebacks(log_stream):
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("grpc._server").exception("Exception calling application")

    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("level=error event=library_log logger=grpc._server")
    assert 'error="ValueError: bad\\nthing"' in lines[0]


def test_key_material_never_reaches_a_line():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "event", None, None)
    record.fields = {"pem": "-----BEGIN EC PRIVATE KEY" + "-----\nAAA\n"}

    assert LogfmtFormatter().format(record) == "level=info event=event pem=[redacted]"
