"""Run ``behave`` on the feature in a subprocess, the way a maintainer does.

Each run gets a directory of its own: a pyproject.toml there points the
reports at it (so the repository's reports/ stay as they are), and TMPDIR
points there too, so that the run's temporary directory, and the leftovers
a later run sweeps, are this test's alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

REPO = Path(__file__).resolve().parents[2]
FEATURE = REPO / "features" / "podman_mtls.feature"
BEHAVE = REPO / ".venv" / "bin" / "behave"


@dataclass
class BehaveRun:
    """One behave subprocess and the directory its reports go to."""

    process: subprocess.Popen[bytes]
    workdir: Path
    tmpdir: Path
    output: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class Behave:
    """Starts behave runs below one short directory, and ends any still running."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.tmpdir = base / "tmp"
        self.tmpdir.mkdir()
        self.runs: list[BehaveRun] = []

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> BehaveRun:
        workdir = Path(tempfile.mkdtemp(prefix="run-", dir=self.base))
        _write_config(workdir)
        output = workdir / "behave.out"
        environment = {**os.environ, "TMPDIR": str(self.tmpdir), **(env or {})}
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [str(BEHAVE), str(FEATURE), *args],
                cwd=workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        run = BehaveRun(process, workdir, self.tmpdir, output)
        self.runs.append(run)
        return run

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
    ) -> tuple[int, str]:
        started = self.start(*args, env=env)
        code = started.wait(timeout)
        return code, started.text()


def _write_config(workdir: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    settings = dict(project["tool"]["behave"])
    formats = list(settings.get("format", []))
    settings["paths"] = [str(FEATURE.parent)]
    # The console keeps behave's default formatter; the reports go here.
    settings["outfiles"] = [
        str(workdir / f"report-{i}-{name}") for i, name in enumerate(formats)
    ]
    settings["junit_directory"] = str(workdir / "junit")
    (workdir / "pyproject.toml").write_text(
        tomli_w.dumps({"tool": {"behave": settings}})
    )


@pytest.fixture
def behave() -> Iterator[Behave]:
    # A short base keeps the Podman socket path below its length limit.
    base = Path(tempfile.mkdtemp(prefix="oa-it-"))
    runner = Behave(base)
    try:
        yield runner
    finally:
        for run in runner.runs:
            run.stop()
        shutil.rmtree(base, ignore_errors=True)
