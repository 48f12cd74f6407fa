"""InterruptGuard: SIGINT and SIGTERM as KeyboardInterrupt, held back in cleanup."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from openshell_acceptance.interrupts import InterruptGuard


@pytest.fixture
def guard() -> Iterator[InterruptGuard]:
    installed = InterruptGuard(notice=lambda line: None).install()
    try:
        yield installed
    finally:
        installed.restore()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_either_signal_raises_keyboard_interrupt(guard, signum) -> None:
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signum)

    assert guard.interrupted == signal.Signals(signum).name


def test_restore_puts_back_the_handlers_that_were_there() -> None:
    before = signal.getsignal(signal.SIGTERM)
    guard = InterruptGuard(notice=lambda line: None).install()
    assert signal.getsignal(signal.SIGTERM) != before

    guard.restore()

    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_during_a_deferred_block_is_raised_when_the_block_ends(
    guard,
) -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with guard.deferred():
            signal.raise_signal(signal.SIGTERM)
            finished.append("cleanup")

    assert finished == ["cleanup"]
    assert guard.pending is None


def test_a_signal_in_a_teardown_phase_waits_for_resume(guard) -> None:
    guard.hold()
    with guard.deferred():
        signal.raise_signal(signal.SIGINT)
    assert guard.pending == "SIGINT"

    with pytest.raises(KeyboardInterrupt):
        guard.resume()
    assert guard.pending is None


def test_once_interrupted_later_signals_do_not_cut_the_cleanup_short(guard) -> None:
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)

    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGTERM)

    assert guard.received == ["SIGINT", "SIGINT", "SIGTERM"]
    assert guard.pending is None
