"""Bounded polling: a short, growing interval and a hard deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Deadline:
    """A point in monotonic time after which waiting stops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    @property
    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._end


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    first: float = 0.02,
    growth: float = 1.5,
    ceiling: float = 0.5,
) -> T | None:
    """Call ``probe`` until it returns something other than None, or time runs out.

    The interval starts at ``first`` seconds and grows by ``growth`` up to
    ``ceiling``; the last call happens no later than the deadline. Returns the
    probe's value, or None when the deadline passed first. An interval that
    could shrink towards zero, and so spin, is refused.
    """
    if first <= 0 or growth < 1 or ceiling < first:
        raise ValueError(
            f"poll needs first > 0, growth >= 1 and ceiling >= first, not "
            f"first={first}, growth={growth}, ceiling={ceiling}"
        )
    deadline = Deadline(timeout)
    interval = first
    while True:
        value = probe()
        if value is not None:
            return value
        if deadline.expired:
            return None
        time.sleep(min(interval, deadline.remaining))
        interval = min(interval * growth, ceiling)
