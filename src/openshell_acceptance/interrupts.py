"""SIGINT and SIGTERM as KeyboardInterrupt, held back while cleanup runs.

A run that is interrupted must still remove what it created. Python turns
SIGINT into KeyboardInterrupt but lets SIGTERM end the process at once, and
either signal arriving a second time would cut the cleanup short. The guard
makes both signals raise KeyboardInterrupt while scenarios run, and only
notes them while cleanup runs, so that the interrupt takes effect once the
cleanup is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["SIGNALS", "InterruptGuard"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """Signal handlers that raise KeyboardInterrupt, except while held.

    ``hold()`` and ``resume()`` mark the teardown phases of a run; the
    ``deferred()`` block protects one cleanup wherever it runs. A signal that
    arrives while held is kept as ``pending`` and raised as KeyboardInterrupt
    when nothing holds any longer. Once one interrupt has been raised the run
    is stopping, and later signals are only noted: a second Ctrl-C does not
    cut the cleanup short.
    """

    def __init__(self, *, notice: Callable[[str], None] | None = None) -> None:
        self._notice = notice or _write_stderr
        self._saved: dict[int, Any] = {}
        self._teardown = False
        self._depth = 0
        self.pending: str | None = None
        self.received: list[str] = []
        self.interrupted: str | None = None

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    @property
    def held(self) -> bool:
        return self._teardown or self._depth > 0

    def install(self) -> InterruptGuard:
        """Put the handlers in place; the previous ones come back on ``restore``."""
        for signum in SIGNALS:
            if signum not in self._saved:
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before ``install``."""
        saved, self._saved = self._saved, {}
        for signum, handler in saved.items():
            signal.signal(signum, handler)

    def hold(self) -> None:
        """Enter a teardown phase: signals are noted, not raised."""
        self._teardown = True

    def resume(self) -> None:
        """Leave the teardown phase; raise a signal that arrived during it."""
        self._teardown = False
        self._raise_pending()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Run the block to its end whatever signal arrives meanwhile."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._raise_pending()

    def take_pending(self) -> str | None:
        """The signal noted while held and not raised yet, forgetting it."""
        pending, self.pending = self.pending, None
        return pending

    def _raise_pending(self) -> None:
        if self.held or self.pending is None:
            return
        self._interrupt(self.take_pending() or "")

    def _interrupt(self, name: str) -> None:
        self.interrupted = name
        raise KeyboardInterrupt(name)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self.held or self.interrupted:
            self._notice(f"{name}: still removing what this run created")
            if not self.interrupted:
                self.pending = self.pending or name
            return
        self._notice(f"{name}: stopping, then removing what this run created")
        self._interrupt(name)


def _write_stderr(line: str) -> None:
    # Unbuffered: a handler that printed through sys.stderr could interrupt
    # a write already in progress on the same buffer.
    with contextlib.suppress(OSError):
        os.write(2, f"{line}\n".encode())
