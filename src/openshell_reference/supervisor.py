#!/usr/bin/python3
"""The sandbox supervisor: dial the gateway and hold a ConnectSupervisor session.

It runs inside the sandbox container as /opt/openshell/bin/openshell-sandbox,
a single file bind-mounted there, so it depends on nothing but the standard
library, grpcio and the generated protos of the ``openshell`` package.

Environment: OPENSHELL_ENDPOINT (``http://`` or ``https://HOST:PORT``),
OPENSHELL_SANDBOX_ID, OPENSHELL_SANDBOX, and with ``https://`` the client
identity in OPENSHELL_TLS_CA, OPENSHELL_TLS_CERT and OPENSHELL_TLS_KEY.
OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT bounds the retries, in seconds.

Exit codes: 0 when stopped by a signal, 1 when the gateway cannot be reached
or refuses the session, 2 when the environment is incomplete.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import ssl
import sys
import threading
import time
import types
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ENV_ENDPOINT = "OPENSHELL_ENDPOINT"
ENV_SANDBOX = "OPENSHELL_SANDBOX"
ENV_SANDBOX_ID = "OPENSHELL_SANDBOX_ID"
ENV_TLS_CA = "OPENSHELL_TLS_CA"
ENV_TLS_CERT = "OPENSHELL_TLS_CERT"
ENV_TLS_KEY = "OPENSHELL_TLS_KEY"
ENV_CONNECT_TIMEOUT = "OPENSHELL_SUPERVISOR_CONNECT_TIMEOUT"

DEFAULT_CONNECT_TIMEOUT_SECS = 20.0
ATTEMPT_TIMEOUT_SECS = 3.0
PROBE_TIMEOUT_SECS = 2.0
ACCEPT_TIMEOUT_SECS = 5.0
BACKOFF_FIRST_SECS = 0.25
BACKOFF_MAX_SECS = 3.0
DEFAULT_HEARTBEAT_SECS = 5.0
HEARTBEAT_MISSES = 3

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


# Log lines. The gateway formats its own lines with this function too, since
# this file is the one part of the package that must stand alone.


def redact(text: str) -> str:
    """``text``, or a placeholder when it carries PEM private key material."""
    if "PRIVATE KEY" in text and "-----BEGIN" in text:
        return "[redacted]"
    return text


def _quote(value: object) -> str:
    text = redact(str(value))
    if text and not any(c in text for c in ' "=\t\n\r\\'):
        return text
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def format_event(level: str, name: str, fields: Mapping[str, object]) -> str:
    """One logfmt line: ``level=... event=... key=value``, no trailing newline."""
    parts = [f"level={level}", f"event={_quote(name)}"]
    parts.extend(
        f"{key}={_quote(value)}" for key, value in fields.items() if value is not None
    )
    return " ".join(parts)


def log(level: str, name: str, /, **fields: object) -> None:
    print(format_event(level, name, fields), file=sys.stderr, flush=True)


# Errors.


class SupervisorError(Exception):
    """The supervisor cannot go on; the message is the one-line cause."""

    exit_code = 1


class EnvironmentIncomplete(SupervisorError):
    """A required variable is missing or names a file that cannot be read."""

    exit_code = 2


class ConnectFailed(SupervisorError):
    """The gateway could not be reached, or the transport to it failed."""


class SessionRefused(SupervisorError):
    """The gateway answered the hello with SessionRejected."""


# Settings from the environment.


@dataclass(frozen=True)
class Endpoint:
    """The gateway endpoint the supervisor dials."""

    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``http(s)://HOST:PORT``; raises ``EnvironmentIncomplete``."""
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnvironmentIncomplete(
            f"{ENV_ENDPOINT}={text!r} is not an http:// or https:// endpoint"
        )
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return Endpoint(parts.scheme, parts.hostname, port)


@dataclass(frozen=True)
class ClientIdentity:
    """The CA to trust and the certificate and key to present, as PEM bytes."""

    ca_path: str
    cert_path: str
    key_path: str
    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class Settings:
    endpoint: Endpoint
    sandbox_id: str
    sandbox_name: str
    identity: ClientIdentity | None
    connect_timeout: float


def _required(environ: Mapping[str, str], name: str, why: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise EnvironmentIncomplete(f"{name} is not set ({why})")
    return value


def _read_file(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise EnvironmentIncomplete(
            f"cannot read {name}={path}: {error.strerror or error}"
        ) from None


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """Read and check the supervisor's environment and the files it names."""
    endpoint = parse_endpoint(
        _required(environ, ENV_ENDPOINT, "the gateway endpoint to dial")
    )
    sandbox_id = _required(environ, ENV_SANDBOX_ID, "the sandbox to announce")
    identity = None
    if endpoint.tls:
        why = "required with an https:// endpoint"
        paths = {
            name: _required(environ, name, why)
            for name in (ENV_TLS_CA, ENV_TLS_CERT, ENV_TLS_KEY)
        }
        contents = {name: _read_file(name, path) for name, path in paths.items()}
        identity = ClientIdentity(
            ca_path=paths[ENV_TLS_CA],
            cert_path=paths[ENV_TLS_CERT],
            key_path=paths[ENV_TLS_KEY],
            ca=contents[ENV_TLS_CA],
            cert=contents[ENV_TLS_CERT],
            key=contents[ENV_TLS_KEY],
        )
        _check_identity(identity)
    raw_timeout = environ.get(ENV_CONNECT_TIMEOUT, "")
    try:
        timeout = float(raw_timeout) if raw_timeout else DEFAULT_CONNECT_TIMEOUT_SECS
    except ValueError:
        timeout = -1.0
    if timeout <= 0:
        raise EnvironmentIncomplete(
            f"{ENV_CONNECT_TIMEOUT}={raw_timeout!r} is not a positive number of seconds"
        )
    return Settings(
        endpoint=endpoint,
        sandbox_id=sandbox_id,
        sandbox_name=environ.get(ENV_SANDBOX, ""),
        identity=identity,
        connect_timeout=timeout,
    )


def _tls_context(identity: ClientIdentity) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=identity.ca.decode("ascii", "replace"))
    context.load_cert_chain(identity.cert_path, identity.key_path)
    context.set_alpn_protocols(["h2"])
    return context


def _check_identity(identity: ClientIdentity) -> None:
    try:
        _tls_context(identity)
    except ssl.SSLError as error:
        raise EnvironmentIncomplete(
            f"{ENV_TLS_CA}, {ENV_TLS_CERT} and {ENV_TLS_KEY} do not form a usable "
            f"client identity: {_ssl_reason(error)}"
        ) from None
    except OSError as error:
        raise EnvironmentIncomplete(
            f"cannot load the client identity: {error.strerror or error}"
        ) from None


# Diagnosis: why a connection attempt failed, in one line.


def _ssl_reason(error: ssl.SSLError) -> str:
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(error)


def _first_address(host: str, port: int) -> tuple[int, str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, _, _, _, address = infos[0]
    return family, str(address[0])


def diagnose(
    endpoint: Endpoint,
    identity: ClientIdentity | None,
    timeout: float = PROBE_TIMEOUT_SECS,
) -> str | None:
    """Probe the endpoint with plain sockets and ``ssl``; the cause, or None.

    None means TCP and TLS work, so the failure lies in the gRPC session.
    """
    where = endpoint.target
    try:
        family, ip = _first_address(endpoint.host, endpoint.port)
    except socket.gaierror as error:
        return f"cannot resolve {endpoint.host}: {error.strerror or error}"
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    try:
        raw.connect((ip, endpoint.port))
    except ConnectionRefusedError:
        raw.close()
        return f"connection refused by {where} ({ip})"
    except TimeoutError:
        raw.close()
        return f"connection to {where} ({ip}) timed out after {timeout:g}s"
    except OSError as error:
        raw.close()
        return f"cannot connect to {where} ({ip}): {error.strerror or error}"

    if identity is None:
        return _probe_plaintext(raw, where)
    try:
        with _tls_context(identity).wrap_socket(
            raw, server_hostname=endpoint.host
        ) as tls:
            tls.sendall(_H2_PREFACE + _H2_EMPTY_SETTINGS)
            reply = tls.recv(9)
    except ssl.SSLCertVerificationError as error:
        message = str(error.verify_message or _ssl_reason(error)).rstrip(".")
        return (
            f"TLS handshake with {where} failed: certificate verify failed: {message}"
        )
    except ssl.SSLError as error:
        reason = _ssl_reason(error)
        if "alert" in reason and any(
            word in reason for word in ("certificate", "unknown ca", "bad cert")
        ):
            return (
                f"TLS handshake with {where} failed: the gateway refused the client "
                f"certificate ({reason})"
            )
        if "wrong version number" in reason:
            return (
                f"TLS handshake with {where} failed: the gateway does not speak TLS "
                f"there ({reason}); use an http:// endpoint or enable TLS"
            )
        return f"TLS handshake with {where} failed: {reason}"
    except TimeoutError:
        return f"TLS handshake with {where} timed out after {timeout:g}s"
    except OSError as error:
        return (
            f"TLS handshake with {where} failed: the gateway closed the connection "
            f"({error.strerror or error})"
        )
    finally:
        raw.close()
    if not reply:
        # A gateway that requires client certificates completes the handshake
        # and then closes the connection when it does not trust the one shown.
        return (
            f"TLS handshake with {where} failed: the gateway refused the client "
            f"certificate (it closed the connection after the handshake); check "
            f"that {ENV_TLS_CERT} is signed by the CA the gateway trusts"
        )
    return None


def _probe_plaintext(raw: socket.socket, where: str) -> str | None:
    try:
        raw.sendall(_H2_PREFACE + _H2_EMPTY_SETTINGS)
        reply = raw.recv(9)
    except TimeoutError:
        reply = b"?"
    except OSError:
        reply = b""
    finally:
        raw.close()
    if not reply or reply[:1] == b"\x15":
        return (
            f"the gateway at {where} closed the plaintext connection; it expects "
            "TLS, so use an https:// endpoint with guest TLS"
        )
    return None


# The session.


def _load_grpc() -> tuple[Any, Any, Any]:
    """Import grpc and the generated protos, without the rest of the SDK.

    Importing ``openshell._proto`` normally runs ``openshell/__init__``, which
    loads the whole client SDK and its dependencies; the supervisor needs only
    the generated modules, so it gives the package an empty stand-in first.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        import grpc
    except ImportError:
        raise EnvironmentIncomplete(
            "grpcio is not installed in this image; install it for /usr/bin/python3"
        ) from None
    if "openshell" not in sys.modules:
        spec = importlib.util.find_spec("openshell")
        if spec is None or not spec.submodule_search_locations:
            raise EnvironmentIncomplete(
                "the openshell package is not installed in this image; install "
                "its wheel for /usr/bin/python3"
            )
        package = types.ModuleType("openshell")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["openshell"] = package
    from openshell._proto import openshell_pb2, openshell_pb2_grpc

    return grpc, openshell_pb2, openshell_pb2_grpc


class _Outbound:
    """The supervisor's side of the stream: the hello, then heartbeats."""

    def __init__(self, pb2: Any, hello: Any) -> None:
        self._pb2 = pb2
        self._hello = hello
        self._interval = DEFAULT_HEARTBEAT_SECS
        self._accepted = threading.Event()
        self._closed = threading.Event()

    def accept(self, interval: float) -> None:
        self._interval = interval
        self._accepted.set()

    def close(self) -> None:
        self._closed.set()
        self._accepted.set()

    def __iter__(self) -> Iterator[Any]:
        yield self._pb2.SupervisorMessage(hello=self._hello)
        self._accepted.wait()
        while not self._closed.wait(self._interval):
            yield self._pb2.SupervisorMessage(heartbeat=self._pb2.SupervisorHeartbeat())


class Supervisor:
    """Connect, hold the session, reconnect within the bound, or give up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instance_id = str(uuid.uuid4())
        self._grpc, self._pb2, self._pb2_grpc = _load_grpc()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._outbound: _Outbound | None = None
        self._epoch = 0

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._outbound is not None:
                self._outbound.close()
            if self._call is not None:
                self._call.cancel()

    def _channel(self) -> Any:
        grpc = self._grpc
        identity = self.settings.identity
        target = self.settings.endpoint.target
        if identity is None:
            return grpc.insecure_channel(target)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=identity.ca,
            private_key=identity.key,
            certificate_chain=identity.cert,
        )
        return grpc.secure_channel(target, credentials)

    def _wait_ready(self, channel: Any, timeout: float) -> str | None:
        """Wait for READY; None on success, else what the channel reached."""
        grpc = self._grpc
        outcome: list[str] = []
        settled = threading.Event()

        def watch(state: Any) -> None:
            if state == grpc.ChannelConnectivity.READY:
                outcome.append("ready")
                settled.set()
            elif state in (
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                grpc.ChannelConnectivity.SHUTDOWN,
            ):
                outcome.append("failed")
                settled.set()

        channel.subscribe(watch, try_to_connect=True)
        try:
            if not settled.wait(timeout):
                return f"no connection within {timeout:g}s"
        finally:
            channel.unsubscribe(watch)
        return None if outcome and outcome[0] == "ready" else "connection failed"

    def _cause(self, fallback: str) -> str:
        found = diagnose(self.settings.endpoint, self.settings.identity)
        return found or fallback

    def _connect(self, remaining: float) -> Any:
        channel = self._channel()
        failure = self._wait_ready(
            channel, max(0.5, min(ATTEMPT_TIMEOUT_SECS, remaining))
        )
        if failure is not None:
            channel.close()
            raise ConnectFailed(
                self._cause(f"{failure} to {self.settings.endpoint.target}")
            )
        return channel

    def _hold_session(self, channel: Any) -> None:
        """Run one session; return when it ends, raise when it never began."""
        grpc, pb2 = self._grpc, self._pb2
        self._epoch += 1
        hello = pb2.SupervisorHello(
            sandbox_id=self.settings.sandbox_id,
            instance_id=self.instance_id,
            connection_epoch=self._epoch,
        )
        outbound = _Outbound(pb2, hello)
        stub = self._pb2_grpc.OpenShellStub(channel)
        call = stub.ConnectSupervisor(iter(outbound))
        with self._lock:
            self._call, self._outbound = call, outbound
        if self._stopping.is_set():
            call.cancel()
        timer = threading.Timer(ACCEPT_TIMEOUT_SECS, call.cancel)
        timer.start()
        try:
            first = next(call)
        except grpc.RpcError as error:
            outbound.close()
            if self._stopping.is_set():
                return
            detail = f"{error.code().name}: {error.details()}"
            raise ConnectFailed(self._cause(f"the session failed: {detail}")) from None
        except StopIteration:
            outbound.close()
            raise ConnectFailed(
                "the gateway closed the session before answering"
            ) from None
        finally:
            timer.cancel()

        kind = first.WhichOneof("payload")
        if kind == "session_rejected":
            outbound.close()
            raise SessionRefused(
                f"the gateway rejected the session: {first.session_rejected.reason}"
            )
        if kind != "session_accepted":
            outbound.close()
            raise ConnectFailed(f"the gateway answered the hello with {kind}")
        accepted = first.session_accepted
        interval = accepted.heartbeat_interval.ToTimedelta().total_seconds()
        interval = interval if interval > 0 else DEFAULT_HEARTBEAT_SECS
        log(
            "info",
            "session_accepted",
            session_id=accepted.session_id,
            sandbox_id=self.settings.sandbox_id,
            heartbeat_interval=f"{interval:g}s",
        )
        outbound.accept(interval)
        self._receive(call, outbound, interval)

    def _receive(self, call: Any, outbound: _Outbound, interval: float) -> None:
        grpc = self._grpc
        last_seen = [time.monotonic()]
        done = threading.Event()

        def watchdog() -> None:
            limit = interval * HEARTBEAT_MISSES
            while not done.wait(interval):
                if time.monotonic() - last_seen[0] > limit:
                    log("warn", "heartbeat_timeout", silent_for=f"{limit:g}s")
                    call.cancel()
                    return

        threading.Thread(target=watchdog, daemon=True).start()
        try:
            for message in call:
                last_seen[0] = time.monotonic()
                if message.WhichOneof("payload") == "session_rejected":
                    log(
                        "warn",
                        "session_revoked",
                        reason=message.session_rejected.reason,
                    )
                    return
        except grpc.RpcError as error:
            if not self._stopping.is_set():
                log(
                    "warn",
                    "session_lost",
                    code=error.code().name,
                    details=error.details(),
                )
            return
        finally:
            done.set()
            outbound.close()
        log("warn", "session_lost", code="OK", details="the gateway ended the stream")

    def run(self) -> int:
        endpoint = self.settings.endpoint
        log(
            "info",
            "supervisor_starting",
            endpoint=f"{endpoint.scheme}://{endpoint.target}",
            sandbox=self.settings.sandbox_name,
            sandbox_id=self.settings.sandbox_id,
            instance_id=self.instance_id,
            tls="on" if endpoint.tls else "off",
        )
        bound = self.settings.connect_timeout
        deadline = time.monotonic() + bound
        backoff = BACKOFF_FIRST_SECS
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            try:
                channel = self._connect(deadline - time.monotonic())
                try:
                    self._hold_session(channel)
                finally:
                    channel.close()
            except ConnectFailed as error:
                remaining = deadline - time.monotonic()
                if self._stopping.is_set():
                    break
                if remaining <= 0:
                    log("error", "connect_failed", attempts=attempt, cause=str(error))
                    print(f"error: {error}", file=sys.stderr, flush=True)
                    return 1
                delay = min(backoff, remaining)
                log(
                    "warn",
                    "connect_retry",
                    attempt=attempt,
                    cause=str(error),
                    retry_in=f"{delay:.2f}s",
                )
                self._stopping.wait(delay)
                backoff = min(backoff * 2, BACKOFF_MAX_SECS)
                continue
            if self._stopping.is_set():
                break
            deadline = time.monotonic() + bound
            backoff = BACKOFF_FIRST_SECS
            attempt = 0
            log("info", "reconnecting", within=f"{bound:g}s")
        log("info", "supervisor_stopped")
        return 0


def main(argv: list[str] | None = None) -> int:
    """Run the supervisor; the exit code follows the module's docstring."""
    try:
        settings = settings_from_env(os.environ)
        supervisor = Supervisor(settings)
    except SupervisorError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code

    def on_signal(signum: int, frame: object) -> None:
        log("info", "signal", name=signal.Signals(signum).name)
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return supervisor.run()
    except SessionRefused as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
