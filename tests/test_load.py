"""Reading the reference's log lines: sessions, and a supervisor's retries."""

from __future__ import annotations

from openshell_acceptance import load, logfmt
from openshell_reference.supervisor import format_event


def _line(name: str, **fields: object) -> str:
    return format_event("info", name, fields)


def test_logfmt_reads_quoted_values_with_escapes() -> None:
    line = _line(
        "supervisor_connected",
        session_id="s-1",
        peer_subject="CN=openshell-client,OU=openshell-user",
        cause='said "no"\nthen left',
    )

    fields = logfmt.parse(line)

    assert fields["event"] == "supervisor_connected"
    assert fields["peer_subject"] == "CN=openshell-client,OU=openshell-user"
    assert fields["cause"] == 'said "no"\nthen left'


def test_sessions_come_from_the_gateway_log_in_order() -> None:
    log = "\n".join(
        [
            _line("gateway_ready", version="1"),
            _line("supervisor_connected", sandbox_id="a", session_id="1",
                  peer_subject="CN=x", transport="ssl"),
            _line("supervisor_connected", sandbox_id="b", session_id="2",
                  peer_subject="CN=x", transport="ssl"),
        ]
    )  # fmt: skip

    found = load.sessions(log)

    assert [(s.sandbox_id, s.session_id) for s in found] == [("a", "1"), ("b", "2")]
    assert {s.transport for s in found} == {"ssl"}


def _supervisor_log(delays: list[float], attempts: int) -> list[str]:
    lines = [
        _line("session_accepted", session_id="1"),
        _line("connect_retry", attempt=1, retry_in="0.25s"),
        _line("session_lost", code="UNAVAILABLE"),
        _line("reconnecting", within="8s"),
    ]
    lines += [
        _line("connect_retry", attempt=i, cause="refused", retry_in=f"{d:.2f}s")
        for i, d in enumerate(delays, 1)
    ]
    lines.append(_line("connect_failed", attempts=attempts, cause="refused"))
    lines.append("error: connection refused by host.containers.internal:1 (10.0.0.1)")
    return lines


def test_the_retries_after_the_last_lost_session_are_read() -> None:
    schedule = load.retry_schedule(_supervisor_log([0.25, 0.5, 1.0, 2.0, 1.2], 6))

    assert schedule.delays == (0.25, 0.5, 1.0, 2.0, 1.2)
    assert schedule.gave_up_after == 6
    assert schedule.last_line.startswith("error: connection refused")
    assert schedule.growing


def test_intervals_that_stay_flat_from_the_start_do_not_count_as_growing() -> None:
    assert not load.retry_schedule(_supervisor_log([0.5, 0.5, 0.5, 0.5], 5)).growing
    assert not load.retry_schedule(_supervisor_log([0.25, 1.0, 0.5, 2.0], 5)).growing


def test_a_capped_backoff_still_grows() -> None:
    schedule = load.retry_schedule(_supervisor_log([0.25, 0.5, 1.0, 2.0, 3.0, 3.0], 7))

    assert schedule.growing
