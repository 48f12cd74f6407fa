"""The supervisor's traffic on the wire: captured with tshark, read with tshark.

``WireCapture`` runs tshark on the sandbox network for one gateway port while
a sandbox starts; ``analyse`` reads the capture back, one TCP connection at a
time, and says how each one opened, which server name and TLS version it
carried, how many bytes crossed, and whether any HTTP/2 or gRPC cleartext
crossed at all. ``capture_matchers`` states the TLS criteria over that
summary.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import evidence
from ._wait import poll
from .errors import AcceptanceError
from .evidence import Evidence

if TYPE_CHECKING:
    from .deployment import Deployment

__all__ = [
    "CLIENT_HELLO",
    "GRPC_METHOD_PATH",
    "HTTP2_PREFACE",
    "SERVER_HELLO",
    "TLS_1_2",
    "CaptureError",
    "CaptureUnavailable",
    "Cleartext",
    "Connection",
    "WireCapture",
    "WireSummary",
    "analyse",
    "cleartext_found",
    "client_openings",
    "describe",
    "gateway_answers",
    "sandbox_capture",
    "tls_version_name",
    "tls_versions",
]

CLIENT_HELLO = "TLS ClientHello"
SERVER_HELLO = "TLS ServerHello"
HTTP2_PREFACE = "HTTP/2 preface"
GRPC_METHOD_PATH = "gRPC method path"

TLS_1_2 = 0x0303
_TLS_VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}

# Every method of the gateway's gRPC service has a path under this prefix.
_GRPC_SERVICE_PREFIX = "/openshell.v1.OpenShell/"
# Byte patterns whose presence in any payload means HTTP/2 or gRPC in clear.
_CLEARTEXT_PATTERNS = (
    (HTTP2_PREFACE, b"PRI * HTTP/2.0"),
    (GRPC_METHOD_PATH, _GRPC_SERVICE_PREFIX.encode()),
)

_TLS_HANDSHAKE = 0x16
_TLS_RECORD_TYPES = {0x14, 0x15, 0x16, 0x17}
_HANDSHAKE_NAMES = {1: CLIENT_HELLO, 2: SERVER_HELLO}

_OPENING_BYTES = 16
_TSHARK_TIMEOUT = 120.0


# Errors


class CaptureError(AcceptanceError):
    """Capturing or reading the sandbox traffic went wrong."""


class CaptureUnavailable(CaptureError):
    """This host cannot capture here (no tshark, no privilege); says which."""


# What a capture shows


@dataclass(frozen=True)
class Cleartext:
    """One piece of HTTP/2 or gRPC found in clear."""

    kind: str
    connection: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.connection}: {self.detail}"


@dataclass(frozen=True)
class Connection:
    """One TCP connection to the gateway port, as the capture saw it."""

    stream: int
    client: str
    server: str
    syn_seen: bool
    client_opening: str
    server_opening: str
    client_first: bytes
    server_first: bytes
    client_bytes: int
    server_bytes: int
    server_name: str | None
    tls_version: int | None

    @property
    def label(self) -> str:
        return f"{self.client} -> {self.server}"

    @property
    def version_name(self) -> str:
        return tls_version_name(self.tls_version)


@dataclass(frozen=True)
class WireSummary:
    """Every connection to one gateway port in a capture, and any cleartext."""

    port: int
    packets: int
    connections: tuple[Connection, ...]
    cleartext: tuple[Cleartext, ...]
    setup: tuple[tuple[str, str], ...] = ()

    def cleartext_of(self, kind: str) -> list[Cleartext]:
        return [found for found in self.cleartext if found.kind == kind]


def tls_version_name(code: int | None) -> str:
    """``TLS 1.3`` for 0x0304, and so on; ``no TLS version`` when none was seen."""
    if code is None:
        return "no TLS version"
    return _TLS_VERSIONS.get(code, f"unknown TLS version 0x{code:04x}")


# Capturing


class WireCapture:
    """tshark capturing one gateway port on one Podman network, until stopped.

    The bridge of a Podman network exists only while a container is attached
    to it, so tshark cannot open it before the sandbox exists. It captures on
    Linux's ``any`` device instead, with a filter that admits only the gateway
    port on the network's subnets, so it sees the sandbox's first SYN. The
    cooked v2 link type records the interface of every packet, and each
    packet shows up twice, on the sandbox's veth and on the bridge; the
    analysis keeps only the bridge's copy. A watcher thread notes the
    bridge's interface index as soon as Podman creates the bridge, since it
    goes away again with the last container, a failed sandbox's included.

    tshark hands packets over in batches, so ``stop`` first sends a marker
    datagram to a loopback port of its own and waits until tshark has printed
    it: everything on the wire before the marker is in the file by then.
    """

    def __init__(
        self,
        *,
        port: int,
        subnets: Sequence[str],
        bridge: str,
        workdir: Path,
        tshark: str = "tshark",
        duration: int = 120,
        max_kilobytes: int = 16384,
        max_packets: int = 50000,
    ) -> None:
        if not subnets:
            raise CaptureError(f"no subnet to capture on bridge {bridge}")
        self.port = port
        self.subnets = tuple(subnets)
        self.bridge = bridge
        self.workdir = workdir
        self.tshark = tshark
        self.duration = duration
        self.max_kilobytes = max_kilobytes
        self.max_packets = max_packets
        self.interface_index: int | None = None
        self._dir: Path | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._marker: socket.socket | None = None
        self._marker_port: int | None = None
        self._stopped = False
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()
        self.summary: WireSummary | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def pcap(self) -> Path | None:
        """The raw capture file, while this capture holds it."""
        return self._dir / "capture.pcap" if self._dir else None

    @property
    def capture_filter(self) -> str:
        nets = " or ".join(f"net {subnet}" for subnet in self.subnets)
        rule = f"(tcp port {self.port} and ({nets}))"
        if self._marker_port is None:
            return rule
        return f"{rule} or (udp port {self._marker_port} and host 127.0.0.1)"

    def setup(self) -> tuple[tuple[str, str], ...]:
        """What was captured where, for the report."""
        index = "unknown" if self.interface_index is None else self.interface_index
        return (
            ("interface", f"any, keeping bridge {self.bridge} (index {index})"),
            ("capture filter", self.capture_filter),
            (
                "limits",
                f"{self.duration} s, {self.max_kilobytes} kB, "
                f"{self.max_packets} packets",
            ),
        )

    def start(self, timeout: float = 20.0) -> WireCapture:
        """Start tshark and return once it is capturing."""
        binary = shutil.which(self.tshark)
        if binary is None:
            raise CaptureUnavailable(
                f"{self.tshark} is not installed: apt-get install tshark"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="wire-", dir=self.workdir))
        self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._marker.bind(("127.0.0.1", 0))
        self._marker.setblocking(False)
        self._marker_port = self._marker.getsockname()[1]
        assert self.pcap is not None
        argv = [
            binary,
            "-n",
            "-l",
            "-i", "any",
            "-y", "LINUX_SLL2",
            "-f", self.capture_filter,
            "-F", "pcap",
            "-w", str(self.pcap),
            "-a", f"duration:{self.duration}",
            "-a", f"filesize:{self.max_kilobytes}",
            "-c", str(self.max_packets),
            "-P", "-T", "fields", "-e", "udp.payload",
        ]  # fmt: skip
        out = (self._dir / "tshark.out").open("wb")
        err = (self._dir / "tshark.err").open("wb")
        self._files = [out, err]
        try:
            # A session of its own keeps a terminal's Ctrl-C away from tshark;
            # the suite stops it, and its duration limit bounds it otherwise.
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            self.close()
            raise CaptureUnavailable(f"cannot run {binary}: {exc}") from None

        def capturing() -> bool | None:
            # tshark prints "Capturing on" before dumpcap has opened the
            # device, even when it then may not; dumpcap writes the file's
            # header only once the device is open and the filter is set.
            if "Capturing on" in self._stderr() and self._header_written():
                return True
            if self._popen is not None and self._popen.poll() is not None:
                raise self._start_failure()
            return None

        try:
            if poll(capturing, timeout=timeout) is None:
                raise CaptureError(
                    f"tshark was not capturing within {timeout:.0f}s: "
                    f"{self._last_stderr_line()}"
                )
        except BaseException:
            self.close()
            raise
        self._watcher = threading.Thread(
            target=self._watch_bridge, name="wire-bridge-watcher", daemon=True
        )
        self._watcher.start()
        return self

    def stop(self, timeout: float = 20.0) -> Path:
        """Flush what tshark holds into the file, stop it, and return the file."""
        if self._popen is None or self.pcap is None:
            raise CaptureError("the capture was never started")
        if self._stopped:
            return self.pcap
        self._stopped = True
        try:
            self._flush(timeout)
        finally:
            self._end(timeout)
            self._stop_watcher()
        if self.interface_index is None:
            raise CaptureError(
                f"bridge {self.bridge} never came up while the capture ran, so "
                "no sandbox traffic crossed it"
            )
        return self.pcap

    def analyse(self) -> WireSummary:
        """Stop if still running, then read the capture back."""
        pcap = self.stop()
        summary = analyse(
            pcap,
            port=self.port,
            interface_index=self.interface_index,
            tshark=self.tshark,
        )
        self.summary = replace(summary, setup=self.setup())
        return self.summary

    @contextlib.contextmanager
    def watching(
        self, report: Callable[[Evidence], None] | None = None
    ) -> Iterator[WireCapture]:
        """Capture while the block runs, then read the capture into ``summary``.

        ``report`` receives the summary as evidence. When the block fails, the
        capture is still read and reported as far as it goes, and the block's
        own error is the one that propagates.
        """
        if self._popen is None:
            self.start()
        try:
            yield self
        except BaseException:
            with contextlib.suppress(CaptureError):
                self._report(report)
            raise
        self._report(report)

    def keep(self, directory: Path, label: str) -> Path | None:
        """Copy the raw capture into ``directory``, named after ``label``.

        Returns the copy, or None when there is no capture to keep.
        """
        if self._popen is not None and not self._stopped:
            with contextlib.suppress(CaptureError):
                self.stop()
        if self.pcap is None or not self.pcap.is_file():
            return None
        slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:60] or "capture"
        stamp = time.strftime("%Y%m%dT%H%M%S")
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{slug}-{stamp}-{self.port}.pcap"
        shutil.copyfile(self.pcap, target)
        return target

    def close(self) -> None:
        """End tshark if it still runs and remove every file of this capture."""
        self._end()
        self._stop_watcher()
        if self._marker is not None:
            self._marker.close()
            self._marker = None
        for handle in self._files:
            handle.close()
        self._files = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> WireCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _report(self, report: Callable[[Evidence], None] | None) -> None:
        summary = self.analyse()
        if report is not None:
            report(describe(summary))

    def _flush(self, timeout: float) -> None:
        assert self._popen is not None and self._marker is not None
        token = secrets.token_hex(8).encode()
        self._marker.sendto(token, ("127.0.0.1", self._marker_port))
        printed = token.hex()

        def seen() -> bool | None:
            if printed in self._stdout():
                return True
            if self._popen is not None and self._popen.poll() is not None:
                raise CaptureError(
                    "tshark stopped on its own before the sandbox finished "
                    f"starting (limits: {self.duration} s, {self.max_kilobytes} "
                    f"kB, {self.max_packets} packets): {self._last_stderr_line()}"
                )
            return None

        if poll(seen, timeout=timeout) is None:
            raise CaptureError(
                f"tshark did not hand over its packets within {timeout:.0f}s"
            )

    def _watch_bridge(self) -> None:
        def index() -> int | None:
            try:
                return socket.if_nametoindex(self.bridge)
            except OSError:
                return -1 if self._stopping.is_set() else None

        found = poll(index, timeout=self.duration, ceiling=0.05)
        if found is not None and found > 0:
            self.interface_index = found

    def _stop_watcher(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def _end(self, timeout: float = 10.0) -> None:
        popen = self._popen
        if popen is None or popen.poll() is not None:
            return
        # SIGINT makes tshark close the file properly; the group kill also
        # reaches the dumpcap child that does the capturing.
        popen.send_signal(signal.SIGINT)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)

    def _header_written(self) -> bool:
        try:
            return self.pcap is not None and self.pcap.stat().st_size >= 24
        except OSError:
            return False

    def _start_failure(self) -> CaptureError:
        causes = ("permission", "not permitted", "couldn't run")
        for line in self._stderr().splitlines():
            if any(cause in line.lower() for cause in causes):
                return CaptureUnavailable(
                    f"tshark may not capture here ({line.strip()}): run as root "
                    "or let dumpcap capture (dpkg-reconfigure wireshark-common)"
                )
        return CaptureError(
            f"tshark could not start capturing: {self._last_stderr_line()}"
        )

    def _stdout(self) -> str:
        return self._read("tshark.out")

    def _stderr(self) -> str:
        return self._read("tshark.err")

    def _read(self, name: str) -> str:
        if self._dir is None:
            return ""
        try:
            return (self._dir / name).read_text(errors="replace")
        except OSError:
            return ""

    def _last_stderr_line(self) -> str:
        lines = [
            line.strip()
            for line in self._stderr().splitlines()
            if line.strip() and not line.startswith("Running as user")
        ]
        return lines[-1] if lines else "(no output)"


def sandbox_capture(deployment: Deployment, *, tshark: str = "tshark") -> WireCapture:
    """A capture of the traffic between the deployment's sandboxes and gateway."""
    assert deployment.settings is not None, "configure the gateway first"
    podman = deployment.podman
    if podman.rootless():
        raise CaptureUnavailable(
            "rootless Podman keeps the sandbox network in a namespace of its "
            "own, out of tshark's sight: run the suite against rootful Podman"
        )
    bridge = podman.network_interface(deployment.network_name)
    if not bridge:
        raise CaptureUnavailable(
            f"Podman names no bridge interface for network "
            f"{deployment.network_name}, so there is nothing to capture on"
        )
    return WireCapture(
        port=deployment.settings.port,
        subnets=podman.network_subnets(deployment.network_name),
        bridge=bridge,
        workdir=deployment.workdir,
        tshark=tshark,
    )


# Reading a capture back

_FIELDS = (
    "tcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.seq",
    "tcp.payload",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.handshake.version",
    "tls.handshake.extensions.supported_version",
)
_HTTP2_FIELDS = ("tcp.stream", "http2.magic", "http2.headers.path")
_PREFERENCES = (
    "tcp.desegment_tcp_streams:TRUE",
    "tcp.relative_sequence_numbers:TRUE",
    "tls.desegment_ssl_records:TRUE",
)


@dataclass
class _Side:
    segments: list[tuple[int, bytes]]
    syn: bool = False
    hello_name: str | None = None
    hello_seen: bool = False
    versions: tuple[int, ...] = ()


def analyse(
    pcap: Path,
    *,
    port: int,
    interface_index: int | None = None,
    tshark: str = "tshark",
) -> WireSummary:
    """Read ``pcap`` with tshark: each connection to ``port``, and any cleartext.

    With ``interface_index``, only packets captured on that interface count
    (a capture on Linux's ``any`` device holds each bridged packet twice).
    """
    binary = shutil.which(tshark)
    if binary is None:
        raise CaptureUnavailable(
            f"{tshark} is not installed, so the capture cannot be read: "
            "apt-get install tshark"
        )
    with tempfile.TemporaryDirectory(prefix="wire-analysis-") as scratch:
        source = pcap
        if interface_index is not None:
            source = Path(scratch) / "interface.pcap"
            _tshark(
                binary, "-r", str(pcap), "-Y", f"sll.ifindex == {interface_index}",
                "-F", "pcap", "-w", str(source),
            )  # fmt: skip
        # Two readings of the same file, one per dissector: each tshark spends
        # most of its time loading, so they run side by side.
        with futures.ThreadPoolExecutor(max_workers=2) as pool:
            tls_rows = pool.submit(
                _fields, binary, source, port, "tls", f"tcp.port == {port}", _FIELDS
            )
            http2_rows = pool.submit(
                _fields, binary, source, port, "http2",
                f"tcp.port == {port} && (http2.magic || http2.headers.path)",
                _HTTP2_FIELDS,
            )  # fmt: skip
            rows, http2 = tls_rows.result(), http2_rows.result()

    sides: dict[tuple[int, bool], _Side] = {}
    ends: dict[int, tuple[str, str]] = {}
    for row in rows:
        _take(row, port, sides, ends)
    connections = tuple(
        _connection(stream, ends[stream], sides) for stream in sorted(ends)
    )
    labels = {c.stream: c.label for c in connections}
    cleartext = _search_cleartext(sides, labels) + _decoded_cleartext(http2, labels)
    return WireSummary(
        port=port,
        packets=len(rows),
        connections=connections,
        cleartext=tuple(dict.fromkeys(cleartext)),
    )


def _tshark(binary: str, *args: str) -> str:
    argv = [binary, "-n", *args]
    try:
        result = subprocess.run(
            argv, capture_output=True, timeout=_TSHARK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise CaptureError(
            f"tshark did not read the capture within {_TSHARK_TIMEOUT:.0f}s"
        ) from None
    if result.returncode != 0:
        lines = [
            line.strip()
            for line in result.stderr.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("Running as user")
        ]
        raise CaptureError(
            f"tshark could not read the capture (exit code {result.returncode}): "
            f"{lines[-1] if lines else '(no output)'}"
        )
    return result.stdout.decode(errors="replace")


def _fields(
    binary: str,
    pcap: Path,
    port: int,
    decode_as: str,
    display_filter: str,
    fields: Sequence[str],
) -> list[dict[str, str]]:
    args = ["-r", str(pcap), "-d", f"tcp.port=={port},{decode_as}"]
    for preference in _PREFERENCES:
        args += ["-o", preference]
    args += ["-Y", display_filter, "-T", "fields", "-E", "header=n"]
    args += ["-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        args += ["-e", field]
    rows = []
    for line in _tshark(binary, *args).splitlines():
        values = line.split("\t")
        if len(values) == len(fields):
            rows.append(dict(zip(fields, values, strict=True)))
    return rows


def _take(
    row: dict[str, str],
    port: int,
    sides: dict[tuple[int, bool], _Side],
    ends: dict[int, tuple[str, str]],
) -> None:
    if not row["tcp.stream"].isdigit():
        return
    stream = int(row["tcp.stream"])
    src = _endpoint(row["ip.src"] or row["ipv6.src"], row["tcp.srcport"])
    dst = _endpoint(row["ip.dst"] or row["ipv6.dst"], row["tcp.dstport"])
    from_client = row["tcp.dstport"] == str(port)
    if stream not in ends:
        ends[stream] = (src, dst) if from_client else (dst, src)
    side = sides.setdefault((stream, from_client), _Side(segments=[]))

    if _true(row["tcp.flags.syn"]) and not _true(row["tcp.flags.ack"]):
        side.syn = True
    payload = _hex(row["tcp.payload"])
    if payload and row["tcp.seq"].isdigit():
        side.segments.append((int(row["tcp.seq"]), payload))

    kinds = _numbers(row["tls.handshake.type"], base=10)
    if from_client and 1 in kinds and not side.hello_seen:
        side.hello_seen = True
        names = [n for n in row["tls.handshake.extensions_server_name"].split(",") if n]
        side.hello_name = names[0] if names else None
    if not from_client and 2 in kinds:
        chosen = _numbers(row["tls.handshake.extensions.supported_version"], base=16)
        legacy = _numbers(row["tls.handshake.version"], base=16)
        side.versions = tuple(chosen[:1] or legacy[:1])


def _connection(
    stream: int, ends: tuple[str, str], sides: dict[tuple[int, bool], _Side]
) -> Connection:
    client = sides.get((stream, True), _Side(segments=[]))
    server = sides.get((stream, False), _Side(segments=[]))
    client_start, client_bytes = _assemble(client.segments)
    server_start, server_bytes = _assemble(server.segments)
    return Connection(
        stream=stream,
        client=ends[0],
        server=ends[1],
        syn_seen=client.syn,
        client_opening=_opening(client_bytes, client_start, client.syn),
        server_opening=_opening(server_bytes, server_start, client.syn),
        client_first=client_bytes[:_OPENING_BYTES],
        server_first=server_bytes[:_OPENING_BYTES],
        client_bytes=len(client_bytes),
        server_bytes=len(server_bytes),
        server_name=client.hello_name,
        tls_version=server.versions[0] if server.versions else None,
    )


def _assemble(segments: Iterable[tuple[int, bytes]]) -> tuple[int | None, bytes]:
    """The bytes of one direction in sequence order, retransmissions once."""
    ordered = sorted(segments, key=lambda segment: segment[0])
    if not ordered:
        return None, b""
    start = ordered[0][0]
    data = bytearray()
    for seq, payload in ordered:
        offset = seq - start
        if offset > len(data):
            # Bytes the capture missed stay zeros, so offsets keep their meaning.
            data.extend(b"\x00" * (offset - len(data)))
        data.extend(payload[len(data) - offset :])
    return start, bytes(data)


def _opening(data: bytes, start: int | None, syn_seen: bool) -> str:
    """What the first bytes of one direction of a connection are."""
    if not data:
        return "nothing"
    if not syn_seen:
        return "unknown: the connection opened before the capture started"
    if start != 1:
        return "unknown: the first bytes are missing from the capture"
    if len(data) >= 6 and data[0] == _TLS_HANDSHAKE and data[1] == 0x03:
        return _HANDSHAKE_NAMES.get(data[5], f"TLS handshake type {data[5]}")
    if len(data) >= 3 and data[0] in _TLS_RECORD_TYPES and data[1] == 0x03:
        return f"TLS record type 0x{data[0]:02x}"
    for kind, pattern in _CLEARTEXT_PATTERNS:
        if data.startswith(pattern):
            return kind
    return f"cleartext bytes {data[:8].hex(' ')}"


def _search_cleartext(
    sides: dict[tuple[int, bool], _Side], labels: dict[int, str]
) -> list[Cleartext]:
    found = []
    for (stream, from_client), side in sorted(sides.items()):
        sender = "client" if from_client else "gateway"
        _, data = _assemble(side.segments)
        chunks = [data, *(payload for _, payload in side.segments)]
        for kind, pattern in _CLEARTEXT_PATTERNS:
            if any(pattern in chunk for chunk in chunks):
                offset = data.find(pattern)
                where = f"at byte {offset}" if offset >= 0 else "in one segment"
                found.append(
                    Cleartext(kind, labels[stream], f"sent by the {sender} {where}")
                )
    return found


def _decoded_cleartext(
    rows: list[dict[str, str]], labels: dict[int, str]
) -> list[Cleartext]:
    """What tshark's HTTP/2 dissector decoded, Huffman-coded headers included."""
    found = []
    for row in rows:
        if not row["tcp.stream"].isdigit():
            continue
        label = labels.get(int(row["tcp.stream"]), f"stream {row['tcp.stream']}")
        if row["http2.magic"]:
            found.append(Cleartext(HTTP2_PREFACE, label, "decoded as HTTP/2"))
        for path in row["http2.headers.path"].split(","):
            if path.startswith(_GRPC_SERVICE_PREFIX):
                found.append(
                    Cleartext(GRPC_METHOD_PATH, label, f"decoded as HTTP/2: {path}")
                )
    return found


def _endpoint(address: str, port: str) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _true(value: str) -> bool:
    return value.strip() in ("1", "True", "true")


def _hex(value: str) -> bytes:
    digits = re.sub(r"[^0-9a-fA-F]", "", value)
    return bytes.fromhex(digits) if len(digits) % 2 == 0 else b""


def _numbers(value: str, *, base: int) -> list[int]:
    numbers = []
    for part in value.split(","):
        with contextlib.suppress(ValueError):
            numbers.append(int(part.strip(), base))
    return numbers


# Evidence


def describe(summary: WireSummary) -> Evidence:
    """The capture summary as the report shows it."""
    rows: list[tuple[str, object]] = [
        ("gateway port", summary.port),
        *summary.setup,
        ("packets read", summary.packets),
        ("connections", len(summary.connections)),
    ]
    for connection in summary.connections:
        rows += [
            ("connection", connection.label),
            ("  client SYN seen", "yes" if connection.syn_seen else "no"),
            (
                "  client opened with",
                f"{connection.client_opening} ({connection.client_first.hex(' ')})",
            ),
            ("  server name (SNI)", connection.server_name or "none"),
            (
                "  gateway answered with",
                f"{connection.server_opening} ({connection.server_first.hex(' ')})",
            ),
            ("  negotiated", connection.version_name),
            (
                "  bytes client/gateway",
                f"{connection.client_bytes} / {connection.server_bytes}",
            ),
        ]
    if summary.cleartext:
        rows += [("cleartext", str(found)) for found in summary.cleartext]
    else:
        rows.append(("cleartext", "none found"))
    return evidence.table("Wire capture of the sandbox traffic", rows)


def client_openings(summary: WireSummary) -> Evidence:
    """How each connection opened, and the server name it asked for."""
    return evidence.table(
        "First bytes each client sent",
        [
            (
                c.label,
                f"{c.client_opening} naming {c.server_name or 'no server'} "
                f"({c.client_first.hex(' ')})",
            )
            for c in summary.connections
        ]
        or [("connections", "none captured")],
    )


def gateway_answers(summary: WireSummary) -> Evidence:
    """What the gateway sent first on each connection."""
    return evidence.table(
        "First bytes the gateway answered with",
        [
            (c.label, f"{c.server_opening} ({c.server_first.hex(' ')})")
            for c in summary.connections
        ]
        or [("connections", "none captured")],
    )


def tls_versions(summary: WireSummary) -> Evidence:
    """The TLS version each connection's ServerHello chose."""
    return evidence.table(
        "TLS version negotiated",
        [(c.label, c.version_name) for c in summary.connections]
        or [("connections", "none captured")],
    )


def cleartext_found(summary: WireSummary) -> Evidence:
    """Every piece of HTTP/2 or gRPC found in clear, or that there was none."""
    searched = sum(c.client_bytes + c.server_bytes for c in summary.connections)
    patterns = [kind for kind, _ in _CLEARTEXT_PATTERNS]
    rows: list[tuple[str, object]] = [
        ("connections searched", len(summary.connections)),
        ("bytes searched", searched),
        ("looked for", ", ".join([*patterns, "HTTP/2 headers as tshark decodes them"])),
    ]
    found = [(f.kind, f"{f.connection}: {f.detail}") for f in summary.cleartext]
    rows += found or [("found", "nothing")]
    return evidence.table("HTTP/2 and gRPC cleartext on the wire", rows)
