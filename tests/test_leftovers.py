"""Run directories and processes found by the run's marks, and stale runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from openshell_acceptance import leftovers
from openshell_acceptance._wait import poll
from openshell_acceptance.podman import owner_id

SLEEPER = "import time; time.sleep(60)"


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)


def _sleep_naming(
    sleepers: list[subprocess.Popen[bytes]], *args: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", SLEEPER, *args])
    sleepers.append(process)
    # Popen returns once exec has begun; the new command line shows a moment
    # later.
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    assert poll(lambda: True if cmdline.read_bytes() else None, timeout=10)
    return process


def test_a_claim_names_the_run_and_this_process(tmp_path: Path) -> None:
    leftovers.claim_root(tmp_path, "run-1")

    claim = leftovers.read_claim(tmp_path)

    assert claim == {"run": "run-1", "owner": owner_id()}
    assert leftovers.owner_alive(claim["owner"])


def test_processes_are_found_by_a_path_below_the_root_only(
    tmp_path: Path, sleepers
) -> None:
    root = tmp_path / "openshell-acceptance-abc"
    marked = _sleep_naming(sleepers, f"--config={root}/scenario-001/gateway.toml")
    _sleep_naming(sleepers, f"{root}x/other")
    _sleep_naming(sleepers, "unrelated")

    found = leftovers.marked_processes(root)

    assert [process.pid for process in found] == [marked.pid]


def test_ending_processes_is_bounded_and_by_pid(tmp_path: Path, sleepers) -> None:
    root = tmp_path / "openshell-acceptance-abc"
    process = _sleep_naming(sleepers, f"unix://{root}/podman/podman.sock")
    found = leftovers.marked_processes(root)

    ended = leftovers.end_processes(found, term_timeout=5.0)

    assert [p.pid for p in ended] == [process.pid]
    assert process.wait(timeout=5) == -15


def test_a_pid_that_now_names_another_process_is_left_alone(sleepers) -> None:
    process = _sleep_naming(sleepers)
    impostor = leftovers.MarkedProcess(process.pid, started=1, argv=("gone",))

    ended = leftovers.end_processes([impostor], term_timeout=0.1)

    assert ended == []
    assert process.poll() is None


def _dead_owner() -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    owner = owner_id(child.pid)
    child.communicate(timeout=10)
    return owner


def test_only_claimed_directories_of_dead_owners_are_stale(tmp_path: Path) -> None:
    dead = tmp_path / "openshell-acceptance-dead"
    live = tmp_path / "openshell-acceptance-live"
    unclaimed = tmp_path / "openshell-acceptance-unclaimed"
    for root in (dead, live, unclaimed):
        root.mkdir()
    claim = {"run": "a", "owner": _dead_owner()}
    (dead / leftovers.CLAIM).write_text(json.dumps(claim))
    leftovers.claim_root(live, "b")

    stale = leftovers.stale_runs(tmp_path)

    assert [run.root for run in stale] == [dead]
    assert stale[0].run_id == "a"


def test_the_current_run_is_never_stale(tmp_path: Path) -> None:
    root = tmp_path / "openshell-acceptance-mine"
    root.mkdir()
    claim = {"run": "me", "owner": _dead_owner()}
    (root / leftovers.CLAIM).write_text(json.dumps(claim))

    assert leftovers.stale_runs(tmp_path, keep=lambda run: run == "me") == []
