"""PyHamcrest matchers for what the gateway's listener answered, or refused."""

from __future__ import annotations

from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description

from . import probes
from .probes import GrpcAttempt, HealthAnswer, HttpAttempt, TlsExchange

# httpx raises these once TCP is up and the server ends the connection
# without a well-formed HTTP answer: it closed, or sent bytes that are not HTTP.
_NO_RESPONSE_FAILURES = ("RemoteProtocolError", "ReadError")

# How a server may end a TLS session it refuses once the client's side of the
# handshake is done: an alert, a close, or a reset.
_SERVER_ENDINGS = (probes.ALERTED, probes.CLOSED, probes.RESET)

_TLS_VERSIONS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _exchange(item: TlsExchange, description: Description) -> None:
    description.append_text(f"it ended at the {item.stage or 'start'}: {item.outcome}")
    if item.alert:
        description.append_text(f", alert {item.alert}")
    if item.error:
        description.append_text(f" ({item.error})")


class _HealthStatus(BaseMatcher[HealthAnswer]):
    def __init__(self, status: int) -> None:
        self.status = status

    def _matches(self, item: HealthAnswer) -> bool:
        return item.url.startswith("http://") and item.status_code == self.status

    def describe_to(self, description: Description) -> None:
        description.append_text(f"a plaintext answer with HTTP status {self.status}")

    def describe_mismatch(self, item: HealthAnswer, description: Description) -> None:
        description.append_text(
            f"{item.url} answered {item.status_code}: {item.body.strip()!r}"
        )


def health_status(status: int) -> BaseMatcher[HealthAnswer]:
    return _HealthStatus(status)


class _NoHttpResponse(BaseMatcher[HttpAttempt]):
    def _matches(self, item: HttpAttempt) -> bool:
        return item.status_code is None and item.failure in _NO_RESPONSE_FAILURES

    def describe_to(self, description: Description) -> None:
        description.append_text(
            "a connection the server ended without an HTTP response"
        )

    def describe_mismatch(self, item: HttpAttempt, description: Description) -> None:
        if item.status_code is not None:
            description.append_text(
                f"{item.url} answered HTTP {item.status_code}: {item.detail!r}"
            )
        elif not item.connected:
            description.append_text(
                f"no TCP connection to {item.url} ({item.failure}: {item.detail})"
            )
        else:
            description.append_text(f"{item.failure}: {item.detail}")


def no_http_response() -> BaseMatcher[HttpAttempt]:
    return _NoHttpResponse()


class _GrpcFailure(BaseMatcher[GrpcAttempt]):
    def __init__(self, code: str) -> None:
        self.code = code

    def _matches(self, item: GrpcAttempt) -> bool:
        return item.status is None and item.code == self.code

    def describe_to(self, description: Description) -> None:
        description.append_text(f"a gRPC call that failed with {self.code}")

    def describe_mismatch(self, item: GrpcAttempt, description: Description) -> None:
        if item.status is not None:
            description.append_text(f"{item.target} answered {item.status}")
        else:
            description.append_text(f"it failed with {item.code}: {item.details}")


def grpc_failure(code: str) -> BaseMatcher[GrpcAttempt]:
    return _GrpcFailure(code)


class _Refusal(BaseMatcher[TlsExchange]):
    """A refused session; a mismatch tells how the exchange went instead."""

    def describe_mismatch(self, item: TlsExchange, description: Description) -> None:
        if item.accepted:
            description.append_text("the server accepted it and sent HTTP/2 SETTINGS")
            return
        _exchange(item, description)


class _RefusedAtHandshake(_Refusal):
    def _matches(self, item: TlsExchange) -> bool:
        if item.accepted or item.outcome not in _SERVER_ENDINGS:
            return False
        return item.outcome == probes.ALERTED or item.handshake_completed

    def describe_to(self, description: Description) -> None:
        description.append_text(
            "a TLS session the server ended before its first HTTP/2 frame"
        )


def refused_at_handshake() -> BaseMatcher[TlsExchange]:
    """The server, not the network or the client, ended the session unserved."""
    return _RefusedAtHandshake()


class _RefusedWithAlert(_Refusal):
    def _matches(self, item: TlsExchange) -> bool:
        return (
            not item.accepted
            and item.outcome == probes.ALERTED
            and item.alert not in (None, "close_notify")
        )

    def describe_to(self, description: Description) -> None:
        description.append_text("a handshake the server refused with a fatal TLS alert")


def refused_with_tls_alert() -> BaseMatcher[TlsExchange]:
    return _RefusedWithAlert()


class _Served(BaseMatcher[TlsExchange]):
    def _matches(self, item: TlsExchange) -> bool:
        return item.accepted

    def describe_to(self, description: Description) -> None:
        description.append_text(
            "a TLS session on which the server sent HTTP/2 SETTINGS"
        )

    def describe_mismatch(self, item: TlsExchange, description: Description) -> None:
        _exchange(item, description)


def served() -> BaseMatcher[TlsExchange]:
    return _Served()


class _TlsVersionAtLeast(BaseMatcher[str | None]):
    def __init__(self, minimum: str) -> None:
        name = minimum.replace("TLS ", "TLSv")
        if name not in _TLS_VERSIONS:
            raise ValueError(f"unknown TLS version {minimum!r}")
        self.minimum = name

    def _matches(self, item: str | None) -> bool:
        if item not in _TLS_VERSIONS:
            return False
        return _TLS_VERSIONS.index(item) >= _TLS_VERSIONS.index(self.minimum)

    def describe_to(self, description: Description) -> None:
        description.append_text(f"{self.minimum} or newer")

    def describe_mismatch(self, item: str | None, description: Description) -> None:
        description.append_text(
            f"the session used {item}" if item else "no TLS session was established"
        )


def tls_version_at_least(minimum: str) -> BaseMatcher[str | None]:
    """``minimum`` as the ssl module names it (``TLSv1.2``) or as ``TLS 1.2``."""
    return _TlsVersionAtLeast(minimum)
