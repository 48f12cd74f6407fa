"""The processes and temporary directory of a run, found by the run's marks.

Every run works below a temporary directory of its own, and every process it
starts (the gateway, its Podman service, a packet capture) names a path below
that directory on its command line. That path is the run's mark: processes
are found by it, never by their names. The directory also holds a claim that
names the run and the process that owns it, so that a later run can tell the
directory of a killed run from the one of a run that is still going.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ._wait import poll
from .podman import owner_id

__all__ = [
    "CLAIM",
    "ROOT_PREFIX",
    "MarkedProcess",
    "StaleRun",
    "claim_root",
    "end_processes",
    "marked_processes",
    "owner_alive",
    "read_claim",
    "remove_root",
    "stale_runs",
]

ROOT_PREFIX = "openshell-acceptance-"
CLAIM = ".run.json"
TERM_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0


@dataclass(frozen=True)
class MarkedProcess:
    """A process whose command line names a path below a run's directory."""

    pid: int
    started: int
    argv: tuple[str, ...]

    @property
    def alive(self) -> bool:
        return _running_since(self.pid) == self.started

    def describe(self) -> str:
        return f"process {self.pid} ({' '.join(self.argv)[:120]})"


@dataclass(frozen=True)
class StaleRun:
    """The directory of a run whose owner is gone, and the processes it left."""

    root: Path
    run_id: str
    processes: tuple[MarkedProcess, ...]


def claim_root(root: Path, run_id: str) -> Path:
    """Write the claim that ties ``root`` to this run and this process."""
    claim = root / CLAIM
    claim.write_text(json.dumps({"run": run_id, "owner": owner_id()}), encoding="utf-8")
    return claim


def read_claim(root: Path) -> dict[str, str] | None:
    """The claim in ``root``, or None when there is none to read."""
    try:
        data = json.loads((root / CLAIM).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(key): str(value) for key, value in data.items()}


def marked_processes(root: Path, proc: Path = Path("/proc")) -> list[MarkedProcess]:
    """Processes of this user whose command line names ``root`` or a path below.

    Only the command line counts. The environment does not: Podman's helpers
    (aardvark-dns, conmon) inherit a run's CONTAINERS_CONF but serve every
    run, so they must not be taken for this run's own.
    """
    mark = str(root).rstrip("/")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        if not any(arg == mark or f"{mark}/" in arg for arg in argv):
            continue
        started = _running_since(int(entry.name))
        if started is not None:
            found.append(MarkedProcess(int(entry.name), started, argv))
    return found


def end_processes(
    processes: Iterable[MarkedProcess],
    *,
    term_timeout: float = TERM_TIMEOUT,
    kill_timeout: float = KILL_TIMEOUT,
) -> list[MarkedProcess]:
    """SIGTERM each process, SIGKILL what outlives ``term_timeout``; the ended.

    A process is signalled only while its start time still matches, so a PID
    that the kernel gave to someone else in the meantime is left alone.
    """
    targets = [process for process in processes if process.alive]
    for process in targets:
        _signal(process, signal.SIGTERM)
    remaining = _wait_gone(targets, term_timeout)
    for process in remaining:
        _signal(process, signal.SIGKILL)
    _wait_gone(remaining, kill_timeout)
    return targets


def stale_runs(
    tmpdir: Path | None = None, *, keep: Callable[[str], bool] = lambda run: False
) -> list[StaleRun]:
    """Directories of runs whose owning process is gone, oldest claims first.

    A directory without a claim is left alone: nothing says whose it is.
    """
    base = Path(tmpdir or tempfile.gettempdir())
    stale = []
    for root in sorted(base.glob(f"{ROOT_PREFIX}*")):
        claim = read_claim(root) if root.is_dir() else None
        if claim is None or keep(claim.get("run", "")):
            continue
        if owner_alive(claim.get("owner", "")):
            continue
        processes = tuple(marked_processes(root))
        stale.append(StaleRun(root, claim.get("run", ""), processes))
    return stale


def remove_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def owner_alive(owner: str) -> bool:
    """Whether the process an owner value names (``pid:start``) still runs."""
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit():
        return False
    return str(_running_since(int(pid_text))) == started


def _running_since(pid: int) -> int | None:
    """The start time of a process that runs, in clock ticks; None if none does.

    A zombie has ended: only its exit status is left to collect.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields follow the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _signal(process: MarkedProcess, signum: int) -> None:
    if not process.alive:
        return
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(processes: list[MarkedProcess], timeout: float) -> list[MarkedProcess]:
    if not processes:
        return []

    def gone() -> bool | None:
        return True if not any(p.alive for p in processes) else None

    poll(gone, timeout=timeout, ceiling=0.2)
    return [process for process in processes if process.alive]
