"""What a run leaves when it is interrupted, killed, or a hook of it raises: nothing.

A run stopped by SIGINT or SIGTERM, or whose hook raises, removes what it
created; what a killed run left, the next run removes.

Each test starts a real behave run of a scenario with a sandbox, waits until
that run's sandbox container exists, and then signals the run. What belongs
to the run is found by its marks: the owner label Podman objects carry, the
claim in its temporary directory, and that directory's path on the command
line of the processes it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from openshell_acceptance import leftovers
from openshell_acceptance._wait import poll
from openshell_acceptance.podman import (
    MANAGED_LABEL,
    OWNER_LABEL,
    HostFacts,
    decide_containers_conf,
    owner_id,
)

pytestmark = pytest.mark.podman

# A scenario that keeps its sandbox for several seconds, so the signal lands
# after the gateway, the Podman service and a sandbox container have all been up.
WITH_SANDBOX = "A supervisor whose gateway is gone retries with growing intervals"
WITHOUT_SANDBOX = "The gateway certificate covers every name and address"
UP_WITHIN = 180.0
EXIT_WITHIN = 120.0


def _podman_names(kind: str, owner: str) -> list[str]:
    """Containers, sandbox containers only, or networks carrying the owner label."""
    label = f"label={OWNER_LABEL}={owner}"
    if kind in ("container", "sandbox"):
        argv = ["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"]
        if kind == "sandbox":
            argv += ["--filter", f"label={MANAGED_LABEL}=true"]
    else:
        argv = ["podman", "network", "ls", "--filter", label, "--format", "{{.Name}}"]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=True
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


def _root_of(tmpdir: Path, owner: str) -> Path | None:
    for root in tmpdir.glob(f"{leftovers.ROOT_PREFIX}*"):
        claim = leftovers.read_claim(root)
        if claim is not None and claim.get("owner") == owner:
            return root
    return None


def _up(run, owner: str) -> tuple[Path, list[leftovers.MarkedProcess]]:
    """The run's directory, once its sandbox container exists, and every
    process of the run seen until then.

    The scenario stops its gateway soon after the sandbox is ready, so the
    gateway and the sandbox may never be seen at the same moment; the
    processes are gathered over the whole wait instead.
    """
    seen: dict[tuple[int, int], leftovers.MarkedProcess] = {}

    def sandbox_up() -> Path | None:
        assert run.process.poll() is None, run.text()
        root = _root_of(run.tmpdir, owner)
        if root is None:
            return None
        for process in leftovers.marked_processes(root):
            seen[(process.pid, process.started)] = process
        if not any(_is_gateway(p) for p in seen.values()):
            return None
        return root if _podman_names("sandbox", owner) else None

    root = poll(sandbox_up, timeout=UP_WITHIN, ceiling=0.5)
    assert root is not None, f"no sandbox within {UP_WITHIN:.0f}s:\n{run.text()}"
    return root, list(seen.values())


def _is_gateway(process: leftovers.MarkedProcess) -> bool:
    return any(arg.endswith("openshell-reference-gateway") for arg in process.argv)


def _is_podman_service(process: leftovers.MarkedProcess) -> bool:
    return "system" in process.argv and "service" in process.argv


def _assert_nothing_left(owner: str, root: Path, processes) -> None:
    assert _podman_names("container", owner) == []
    assert _podman_names("network", owner) == []
    assert not root.exists(), sorted(p.name for p in root.iterdir())
    assert [p.describe() for p in processes if p.alive] == []
    assert leftovers.marked_processes(root) == []


def _end_what_is_left(owner: str, root: Path | None, processes, base: Path) -> None:
    """Remove what a failed test left, with the settings the suite's Podman uses."""
    leftovers.end_processes(processes)
    conf = base / "containers.conf"
    conf.write_text(decide_containers_conf(HostFacts.detect()).text)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    for name in _podman_names("container", owner):
        argv = ["podman", "rm", "-f", "-t", "1", name]
        subprocess.run(argv, env=env, timeout=60, check=False)
    for name in _podman_names("network", owner):
        argv = ["podman", "network", "rm", "-f", name]
        subprocess.run(argv, env=env, timeout=60, check=False)
    if root is not None:
        leftovers.remove_root(root)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_an_interrupted_run_removes_everything_it_created(behave, signum) -> None:
    run = behave.start("-n", WITH_SANDBOX)
    owner = owner_id(run.pid)
    root, processes = None, []
    try:
        root, processes = _up(run, owner)
        assert any(_is_podman_service(p) for p in processes), processes

        os.kill(run.pid, signum)
        code = run.wait(EXIT_WITHIN)

        output = run.text()
        assert code != 0, output
        assert "Traceback" not in output, output
        assert "CLEANUP-ERROR" not in output, output
        _assert_nothing_left(owner, root, processes)
    finally:
        run.stop()
        _end_what_is_left(owner, root, processes, behave.base)


def test_a_killed_run_is_cleaned_up_by_the_next_run(behave) -> None:
    killed = behave.start("-n", WITH_SANDBOX)
    owner = owner_id(killed.pid)
    root, processes = None, []
    try:
        root, processes = _up(killed, owner)
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(EXIT_WITHIN) == -signal.SIGKILL
        assert _podman_names("sandbox", owner), "the killed run left no sandbox"
        assert [p for p in processes if p.alive], "the killed run left no process"

        started = time.monotonic()
        code, output = behave.run("-n", WITHOUT_SANDBOX)

        assert code == 0, output
        assert "leftovers of killed runs removed" in output, output
        assert str(root) in output
        _assert_nothing_left(owner, root, processes)
        assert time.monotonic() - started < 120
    finally:
        killed.stop()
        _end_what_is_left(owner, root, processes, behave.base)


def test_a_hook_that_raises_still_removes_everything(behave) -> None:
    run = behave.start("-n", WITHOUT_SANDBOX, "-n", WITH_SANDBOX)
    owner = owner_id(run.pid)
    root = poll(lambda: _root_of(run.tmpdir, owner), timeout=UP_WITHIN, first=0.005)
    assert root is not None, run.text()
    processes: list[leftovers.MarkedProcess] = []
    try:
        # The second scenario's work directory is taken already, so the
        # before_scenario hook that makes it raises.
        (root / "scenario-002").mkdir()
        code = run.wait(EXIT_WITHIN + UP_WITHIN)

        output = run.text()
        assert code != 0, output
        assert "HOOK-ERROR in before_scenario" in output, output
        assert "FileExistsError" in output, output
        assert "1 scenario passed" in output or "1 scenarios passed" in output
        _assert_nothing_left(owner, root, processes)
    finally:
        run.stop()
        _end_what_is_left(owner, root, leftovers.marked_processes(root), behave.base)
