"""Bounded polling: intervals that grow, a deadline that holds, no spinning."""

from __future__ import annotations

import itertools
import time

import pytest

from openshell_acceptance._wait import poll


def test_returns_the_first_value_that_is_not_none() -> None:
    answers = iter([None, None, "ready"])

    assert poll(lambda: next(answers), timeout=5.0, first=0.001) == "ready"


def test_gives_up_at_the_deadline_without_overrunning_it() -> None:
    started = time.monotonic()

    assert poll(lambda: None, timeout=0.2, first=0.01, ceiling=0.05) is None
    assert time.monotonic() - started < 0.2 + 0.1


def test_the_interval_grows_up_to_the_ceiling() -> None:
    calls: list[float] = []

    def probe() -> None:
        calls.append(time.monotonic())

    poll(probe, timeout=0.6, first=0.01, growth=2.0, ceiling=0.08)

    # Sleeping never ends early, so each gap is at least its interval; the
    # last one may be cut short by the deadline.
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    intervals = [min(0.01 * 2**index, 0.08) for index in range(len(gaps))]
    assert len(gaps) >= 4
    assert all(g >= i * 0.9 for g, i in zip(gaps[:-1], intervals, strict=False))


@pytest.mark.parametrize(
    "settings",
    [{"first": 0.0}, {"growth": 0.5}, {"first": 0.5, "ceiling": 0.1}],
)
def test_settings_that_could_spin_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="poll needs"):
        poll(lambda: None, timeout=1.0, **settings)
