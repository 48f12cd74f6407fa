"""PyHamcrest matchers for what the wire capture shows, in the criteria's words.

Each one needs at least one captured connection: a capture that saw nothing
proves nothing, so it never passes a check.
"""

from __future__ import annotations

from collections.abc import Sequence

from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description

from .capture import (
    CLIENT_HELLO,
    GRPC_METHOD_PATH,
    HTTP2_PREFACE,
    SERVER_HELLO,
    TLS_1_2,
    Cleartext,
    WireSummary,
    tls_version_name,
)

__all__ = [
    "answered_with_server_hello",
    "negotiates_at_least",
    "no_cleartext",
    "opens_with_client_hello",
    "shows_cleartext",
]


class _WireMatcher(BaseMatcher[WireSummary]):
    """Checks each connection; a capture without connections never matches."""

    what = ""

    def problems(self, summary: WireSummary) -> list[str]:
        raise NotImplementedError

    def _matches(self, item: WireSummary) -> bool:
        return bool(item.connections) and not self.problems(item)

    def describe_to(self, description: Description) -> None:
        description.append_text(self.what)

    def describe_mismatch(self, item: WireSummary, description: Description) -> None:
        if not item.connections:
            description.append_text(
                f"no connection to gateway port {item.port} was captured"
            )
            return
        description.append_text("; ".join(self.problems(item)))


class _OpensWithClientHello(_WireMatcher):
    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        self.what = (
            f"every connection opening with a {CLIENT_HELLO} naming {server_name!r}"
        )

    def problems(self, summary: WireSummary) -> list[str]:
        return [
            f"{c.label} opened with {c.client_opening} naming "
            f"{c.server_name or 'no server'}"
            for c in summary.connections
            if c.client_opening != CLIENT_HELLO or c.server_name != self.server_name
        ]


def opens_with_client_hello(server_name: str) -> BaseMatcher[WireSummary]:
    """Every connection's first client bytes are a ClientHello for the name."""
    return _OpensWithClientHello(server_name)


class _AnsweredWithServerHello(_WireMatcher):
    what = f"the gateway answering every {CLIENT_HELLO} with a {SERVER_HELLO}"

    def problems(self, summary: WireSummary) -> list[str]:
        return [
            f"{c.label} opened with {c.client_opening}, "
            f"the gateway answered with {c.server_opening}"
            for c in summary.connections
            if c.client_opening != CLIENT_HELLO or c.server_opening != SERVER_HELLO
        ]


def answered_with_server_hello() -> BaseMatcher[WireSummary]:
    """Every connection's gateway answers its ClientHello with a ServerHello."""
    return _AnsweredWithServerHello()


class _NegotiatesAtLeast(_WireMatcher):
    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.what = f"every connection negotiating {tls_version_name(minimum)} or newer"

    def problems(self, summary: WireSummary) -> list[str]:
        return [
            f"{c.label} negotiated {c.version_name}"
            for c in summary.connections
            if c.tls_version is None or c.tls_version < self.minimum
        ]


def negotiates_at_least(minimum: int = TLS_1_2) -> BaseMatcher[WireSummary]:
    """Every connection's ServerHello chose ``minimum`` or a newer TLS version."""
    return _NegotiatesAtLeast(minimum)


class _NoCleartext(BaseMatcher[WireSummary]):
    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = tuple(kinds)

    def _matches(self, item: WireSummary) -> bool:
        return bool(item.connections) and not self._found(item)

    def _found(self, item: WireSummary) -> list[Cleartext]:
        return [found for found in item.cleartext if found.kind in self.kinds]

    def describe_to(self, description: Description) -> None:
        description.append_text(
            f"connections to the gateway with no {' and no '.join(self.kinds)} in clear"
        )

    def describe_mismatch(self, item: WireSummary, description: Description) -> None:
        if not item.connections:
            description.append_text(
                f"no connection to gateway port {item.port} was captured"
            )
            return
        description.append_text("; ".join(str(found) for found in self._found(item)))


def no_cleartext(
    *kinds: str,
) -> BaseMatcher[WireSummary]:
    """No payload holds the kinds of cleartext named (by default both)."""
    return _NoCleartext(kinds or (HTTP2_PREFACE, GRPC_METHOD_PATH))


class _ShowsCleartext(BaseMatcher[WireSummary]):
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _matches(self, item: WireSummary) -> bool:
        return bool(item.cleartext_of(self.kind))

    def describe_to(self, description: Description) -> None:
        description.append_text(f"a capture showing the {self.kind} in clear")

    def describe_mismatch(self, item: WireSummary, description: Description) -> None:
        openings = ", ".join(
            f"{c.label} opened with {c.client_opening}" for c in item.connections
        )
        count = len(item.connections)
        description.append_text(
            f"no {self.kind} in {count} connection{'' if count == 1 else 's'}"
            + (f" ({openings})" if openings else "")
        )


def shows_cleartext(kind: str) -> BaseMatcher[WireSummary]:
    """Some payload holds the named kind of cleartext."""
    return _ShowsCleartext(kind)
