"""The wire analysis tells TLS from cleartext, and its checks can fail.

The captures are pcap files written here byte by byte: real TLS records
from Python's ``ssl`` module driven through memory buffers, or HTTP/2 frames
as a plaintext gRPC client sends them, wrapped in TCP, IPv4 and a link layer.
tshark reads them back; no Podman and no network are involved, except in the
capturing tests at the end, which run tshark on loopback where this host lets
them and are skipped where it does not.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import stat
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hamcrest import assert_that, contains_string, is_not
from hamcrest.core.string_description import StringDescription

from openshell_acceptance import capture
from openshell_acceptance.capture import (
    CLIENT_HELLO,
    GRPC_METHOD_PATH,
    HTTP2_PREFACE,
    SERVER_HELLO,
    CaptureError,
    CaptureUnavailable,
    WireCapture,
    analyse,
)
from openshell_acceptance.capture_matchers import (
    answered_with_server_hello,
    negotiates_at_least,
    no_cleartext,
    opens_with_client_hello,
    shows_cleartext,
)
from openshell_acceptance.pki import Pki, create_pki

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark is not installed"
)

PORT = 17670
SANDBOX = ("10.89.0.2", 41000)
GATEWAY = ("10.89.0.1", PORT)
HOST_ALIAS = "host.containers.internal"
METHOD = b"/openshell.v1.OpenShell/ConnectSupervisor"

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276

Flight = tuple[str, bytes]


# Building pcaps


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_tcp(
    src: tuple[str, int],
    dst: tuple[str, int],
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    tcp = struct.pack(
        "!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0
    )
    length = 20 + len(tcp) + len(payload)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, length, 1, 0x4000, 64, 6, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + tcp + payload


def _ethernet(ip: bytes) -> bytes:
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip


def _sll2(ip: bytes, ifindex: int) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, 0, 6, b"\x02" * 6) + ip


def _tcp_session(
    flights: Sequence[Flight],
    *,
    client: tuple[str, int] = SANDBOX,
    server: tuple[str, int] = GATEWAY,
    syn: bool = True,
    segment: int = 1400,
) -> list[bytes]:
    """IPv4 packets of one connection: handshake, then each flight, acked."""
    syn_flag, ack_flag, psh_flag = 0x02, 0x10, 0x08
    client_seq, server_seq = 1000, 5000
    packets = []
    if syn:
        packets += [
            _ipv4_tcp(client, server, seq=client_seq, ack=0, flags=syn_flag),
            _ipv4_tcp(
                server, client, seq=server_seq, ack=client_seq + 1,
                flags=syn_flag | ack_flag,
            ),
        ]  # fmt: skip
        client_seq, server_seq = client_seq + 1, server_seq + 1
        packets.append(
            _ipv4_tcp(client, server, seq=client_seq, ack=server_seq, flags=ack_flag)
        )
    for who, data in flights:
        if who == "client":
            src, dst, seq, ack = client, server, client_seq, server_seq
        else:
            src, dst, seq, ack = server, client, server_seq, client_seq
        for start in range(0, len(data), segment):
            chunk = data[start : start + segment]
            packets.append(
                _ipv4_tcp(
                    src, dst, seq=seq, ack=ack, flags=ack_flag | psh_flag,
                    payload=chunk,
                )
            )  # fmt: skip
            seq += len(chunk)
        if who == "client":
            client_seq = seq
        else:
            server_seq = seq
        packets.append(_ipv4_tcp(dst, src, seq=ack, ack=seq, flags=ack_flag))
    return packets


def _write_pcap(path: Path, frames: Sequence[bytes], linktype: int) -> Path:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    records = []
    for number, frame in enumerate(frames):
        records.append(struct.pack("<IIII", 1700000000, number, len(frame), len(frame)))
        records.append(frame)
    path.write_bytes(header + b"".join(records))
    return path


def _pcap(path: Path, *sessions: list[bytes]) -> Path:
    frames = [_ethernet(ip) for session in sessions for ip in session]
    return _write_pcap(path, frames, LINKTYPE_ETHERNET)


# Conversations


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return create_pki(tmp_path_factory.mktemp("wire") / "pki")


@pytest.fixture(scope="module")
def tls_flights(pki: Pki, mtls_contexts) -> list[Flight]:
    return _tls_conversation(mtls_contexts(pki))


@pytest.fixture(scope="module")
def tls_summary(
    tmp_path_factory: pytest.TempPathFactory, tls_flights: list[Flight]
) -> capture.WireSummary:
    pcap = _pcap(tmp_path_factory.mktemp("tls") / "tls.pcap", _tcp_session(tls_flights))
    return analyse(pcap, port=PORT)


@pytest.fixture(scope="module")
def plaintext_summary(
    tmp_path_factory: pytest.TempPathFactory,
) -> capture.WireSummary:
    session = _tcp_session(_plaintext_conversation())
    return analyse(
        _pcap(tmp_path_factory.mktemp("plain") / "plain.pcap", session), port=PORT
    )


def _tls_conversation(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    *,
    server_name: str = HOST_ALIAS,
    version: ssl.TLSVersion | None = None,
) -> list[Flight]:
    """The TLS records of a mutual TLS handshake, then encrypted HTTP/2."""
    server_context, client_context = contexts
    client_context.check_hostname = False
    if version is not None:
        for context in (server_context, client_context):
            context.minimum_version = context.maximum_version = version

    buffers = {name: ssl.MemoryBIO() for name in ("c_in", "c_out", "s_in", "s_out")}
    client = client_context.wrap_bio(
        buffers["c_in"], buffers["c_out"], server_hostname=server_name
    )
    server = server_context.wrap_bio(
        buffers["s_in"], buffers["s_out"], server_side=True
    )
    ends = [
        ("client", client, buffers["c_out"], buffers["s_in"]),
        ("server", server, buffers["s_out"], buffers["c_in"]),
    ]
    flights: list[Flight] = []
    done = {"client": False, "server": False}

    def exchange() -> None:
        for who, end, outgoing, peer in ends:
            if not done[who]:
                try:
                    end.do_handshake()
                    done[who] = True
                except ssl.SSLWantReadError:
                    pass
            data = outgoing.read()
            if data:
                flights.append((who, data))
                peer.write(data)

    for _ in range(10):
        exchange()
        if all(done.values()):
            break
    assert all(done.values()), "the in-memory TLS handshake did not finish"

    client.write(_plaintext_client_request())
    exchange()
    server.read(65536)
    server.write(_settings_frame())
    exchange()
    return flights


def _settings_frame() -> bytes:
    return b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _plaintext_client_request() -> bytes:
    """The HTTP/2 preface, SETTINGS and a HEADERS frame naming the gRPC method."""
    block = b"\x83\x86" + b"\x04" + bytes([len(METHOD)]) + METHOD
    headers = struct.pack("!I", len(block))[1:] + b"\x01\x04" + b"\x00\x00\x00\x01"
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    return preface + _settings_frame() + headers + block


def _plaintext_conversation() -> list[Flight]:
    return [("client", _plaintext_client_request()), ("server", _settings_frame())]


def _older_server_hello(flights: list[Flight], legacy: bytes) -> list[Flight]:
    """The same flights, with the ServerHello claiming another version."""
    first = next(i for i, (who, _) in enumerate(flights) if who == "server")
    who, data = flights[first]
    assert data[5] == 2, "the gateway's first flight starts with a ServerHello"
    # Record header (5 bytes) and handshake header (4) precede server_version.
    patched = (who, data[:9] + legacy + data[11:])
    return [*flights[:first], patched, *flights[first + 1 :]]


def _mismatch(matcher, item) -> str:
    description = StringDescription()
    matcher.describe_mismatch(item, description)
    return str(description)


ENCRYPTED_CHECKS = {
    "opens with a ClientHello": lambda: opens_with_client_hello(HOST_ALIAS),
    "answered with a ServerHello": answered_with_server_hello,
    "TLS 1.2 or newer": negotiates_at_least,
    "no cleartext": no_cleartext,
}


# A TLS capture


def test_a_tls_capture_passes_the_encrypted_checks(tls_summary, tls_flights):
    for check in ENCRYPTED_CHECKS.values():
        assert_that(tls_summary, check())
    (connection,) = tls_summary.connections
    sent = {"client": 0, "server": 0}
    for who, data in tls_flights:
        sent[who] += len(data)
    assert connection.client_opening == CLIENT_HELLO
    assert connection.server_opening == SERVER_HELLO
    assert connection.server_name == HOST_ALIAS
    assert connection.version_name == "TLS 1.3"
    assert (connection.client_bytes, connection.server_bytes) == (
        sent["client"],
        sent["server"],
    )
    assert connection.label == "10.89.0.2:41000 -> 10.89.0.1:17670"


def test_a_tls_capture_fails_the_plaintext_contrast(tls_summary):
    assert_that(tls_summary, is_not(shows_cleartext(HTTP2_PREFACE)))
    assert "opened with TLS ClientHello" in _mismatch(
        shows_cleartext(HTTP2_PREFACE), tls_summary
    )


def test_tls_1_2_is_named_and_accepted(tmp_path, pki, mtls_contexts):
    flights = _tls_conversation(mtls_contexts(pki), version=ssl.TLSVersion.TLSv1_2)
    summary = analyse(_pcap(tmp_path / "tls12.pcap", _tcp_session(flights)), port=PORT)

    assert summary.connections[0].version_name == "TLS 1.2"
    assert_that(summary, negotiates_at_least())


def test_a_version_older_than_tls_1_2_fails(tmp_path, pki, mtls_contexts):
    flights = _tls_conversation(mtls_contexts(pki), version=ssl.TLSVersion.TLSv1_2)
    older = _older_server_hello(flights, b"\x03\x02")
    summary = analyse(_pcap(tmp_path / "tls11.pcap", _tcp_session(older)), port=PORT)

    assert_that(summary, is_not(negotiates_at_least()))
    assert_that(_mismatch(negotiates_at_least(), summary), contains_string("TLS 1.1"))


def test_another_server_name_fails(tmp_path, pki, mtls_contexts):
    flights = _tls_conversation(
        mtls_contexts(pki), server_name="host.openshell.internal"
    )
    summary = analyse(_pcap(tmp_path / "sni.pcap", _tcp_session(flights)), port=PORT)

    assert_that(summary, is_not(opens_with_client_hello(HOST_ALIAS)))
    assert_that(
        _mismatch(opens_with_client_hello(HOST_ALIAS), summary),
        contains_string("naming host.openshell.internal"),
    )


# A plaintext capture


def test_a_plaintext_capture_fails_every_encrypted_check(plaintext_summary):
    for name, check in ENCRYPTED_CHECKS.items():
        assert not check().matches(plaintext_summary), f"{name} passed on plaintext"
    assert_that(
        _mismatch(opens_with_client_hello(HOST_ALIAS), plaintext_summary),
        contains_string("opened with HTTP/2 preface"),
    )
    assert_that(
        _mismatch(no_cleartext(), plaintext_summary),
        contains_string("gRPC method path in 10.89.0.2:41000 -> 10.89.0.1:17670"),
    )


def test_a_plaintext_capture_shows_the_preface_and_the_method(plaintext_summary):
    assert_that(plaintext_summary, shows_cleartext(HTTP2_PREFACE))
    assert_that(plaintext_summary, shows_cleartext(GRPC_METHOD_PATH))
    details = [found.detail for found in plaintext_summary.cleartext]
    assert "sent by the client at byte 0" in details
    assert f"decoded as HTTP/2: {METHOD.decode()}" in details


def test_a_preface_split_across_segments_is_still_found(tmp_path):
    session = _tcp_session(_plaintext_conversation(), segment=5)
    summary = analyse(_pcap(tmp_path / "split.pcap", session), port=PORT)

    assert_that(summary, shows_cleartext(HTTP2_PREFACE))
    assert summary.connections[0].client_opening == HTTP2_PREFACE


# What the analysis keeps out


def test_an_empty_capture_fails_every_check(tmp_path):
    summary = analyse(_pcap(tmp_path / "empty.pcap"), port=PORT)

    for name, check in ENCRYPTED_CHECKS.items():
        assert not check().matches(summary), f"{name} passed with no connection"
        assert "no connection to gateway port 17670" in _mismatch(check(), summary)


def test_a_connection_whose_start_was_not_captured_is_not_trusted(
    tmp_path, tls_flights
):
    session = _tcp_session(tls_flights, syn=False)
    summary = analyse(_pcap(tmp_path / "late.pcap", session), port=PORT)

    assert summary.connections[0].client_opening.startswith("unknown")
    assert_that(summary, is_not(opens_with_client_hello(HOST_ALIAS)))


def test_only_the_bridge_copies_count(tmp_path, tls_flights):
    bridge, veth = 5, 9
    frames = []
    for ip in _tcp_session(tls_flights):
        frames += [_sll2(ip, veth), _sll2(ip, bridge)]
    pcap = _write_pcap(tmp_path / "any.pcap", frames, LINKTYPE_LINUX_SLL2)

    summary = analyse(pcap, port=PORT, interface_index=bridge)

    assert summary.packets == len(frames) // 2
    (connection,) = summary.connections
    assert connection.server_name == HOST_ALIAS
    for check in ENCRYPTED_CHECKS.values():
        assert_that(summary, check())


def test_other_ports_are_left_out(tmp_path):
    other = _tcp_session(_plaintext_conversation(), server=("10.89.0.1", 8080))
    summary = analyse(_pcap(tmp_path / "other.pcap", other), port=PORT)

    assert summary.connections == ()
    assert summary.cleartext == ()


def test_the_evidence_names_each_connection(tls_summary):
    text = capture.describe(tls_summary).text

    assert "10.89.0.2:41000 -> 10.89.0.1:17670" in text
    assert re.search(rf"server name \(SNI\) +{HOST_ALIAS}", text)
    assert re.search(r"negotiated +TLS 1.3", text)
    assert re.search(r"cleartext +none found", text)


# Capturing


def test_a_missing_tshark_makes_capture_unavailable(tmp_path):
    wire = WireCapture(
        port=PORT, subnets=["10.89.0.0/24"], bridge="podman9", workdir=tmp_path,
        tshark="no-such-tshark",
    )  # fmt: skip
    with pytest.raises(CaptureUnavailable, match="apt-get install tshark"):
        wire.start()


def test_no_capture_privilege_makes_capture_unavailable(tmp_path):
    # What tshark prints without the privilege: "Capturing on" comes first.
    fake = tmp_path / "tshark"
    fake.write_text(
        "#!/bin/sh\n"
        "echo \"Capturing on 'any'\" >&2\n"
        "echo 'tshark: You do not have permission to capture on device \"any\".' >&2\n"
        "echo '(socket: Operation not permitted)' >&2\n"
        "echo '0 packets captured' >&2\n"
        "exit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    wire = WireCapture(
        port=PORT, subnets=["10.89.0.0/24"], bridge="podman9", workdir=tmp_path,
        tshark=str(fake),
    )  # fmt: skip

    with pytest.raises(CaptureUnavailable, match="do not have permission") as raised:
        wire.start()
    assert "\n" not in str(raised.value)
    assert wire.pcap is None


def _start_or_skip(wire: WireCapture) -> None:
    try:
        wire.start()
    except CaptureUnavailable as exc:
        pytest.skip(str(exc))


def test_a_tls_connection_on_loopback_is_captured_and_read(tmp_path, pki):
    work = tmp_path / "work"
    work.mkdir()
    listener = socket.create_server(("127.0.0.1", 0))
    wire = WireCapture(
        port=listener.getsockname()[1], subnets=["127.0.0.0/8"], bridge="lo",
        workdir=work,
    )  # fmt: skip
    reports = []
    try:
        _start_or_skip(wire)
        with wire.watching(report=reports.append):
            _serve_one_tls_exchange(listener, pki)
        kept = wire.keep(tmp_path / "kept", "A scenario: its name!")
    finally:
        listener.close()
        wire.close()

    summary = wire.summary
    assert wire.pid is not None and not _running(wire.pid)
    assert list(work.iterdir()) == []
    assert kept is not None and kept.name.startswith("A-scenario-its-name-")
    assert kept.stat().st_size > 0
    assert [item.caption for item in reports] == ["Wire capture of the sandbox traffic"]
    assert_that(summary, opens_with_client_hello("localhost"))
    assert_that(summary, answered_with_server_hello())
    assert_that(summary, negotiates_at_least())
    assert_that(summary, no_cleartext())


def test_a_bridge_that_never_came_up_is_reported(tmp_path):
    wire = WireCapture(
        port=PORT, subnets=["127.0.0.0/8"], bridge="nosuchbridge0", workdir=tmp_path
    )
    try:
        _start_or_skip(wire)
        with pytest.raises(CaptureError, match="nosuchbridge0 never came up"):
            wire.stop()
    finally:
        wire.close()

    assert wire.pid is not None and not _running(wire.pid)
    assert list(tmp_path.iterdir()) == []


def _serve_one_tls_exchange(listener: socket.socket, pki: Pki) -> None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)

    def serve() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(_settings_frame())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(pki.ca_cert)
    address = listener.getsockname()
    with socket.create_connection(address, timeout=10) as raw:
        with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(_plaintext_client_request())
            tls.recv(65536)
    thread.join(timeout=10)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
