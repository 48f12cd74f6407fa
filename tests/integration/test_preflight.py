"""A host that cannot run the suite gets one ERROR line, before any scenario.

The first two need no Podman: one hides it, one puts a broken podman first
on PATH. The third asks a real Podman for an image it does not have; the
last builds the image without the tool it needs (the image is present here,
so a behave run would not build it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from openshell_acceptance import PreflightError, leftovers
from openshell_acceptance.image import Recipe, build_sandbox_image
from openshell_acceptance.podman import PodmanService

BROKEN_PODMAN = """#!/bin/sh
echo "Error: cannot open the container storage: database is locked" >&2
exit 125
"""


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR:")]


def _assert_one_error_before_any_scenario(code: int, output: str) -> str:
    errors = _error_lines(output)
    assert code != 0, output
    assert len(errors) == 1, output
    assert "Traceback" not in output, output
    assert "0 scenarios passed, 0 failed" in output, output
    return errors[0]


def _assert_nothing_left(tmpdir: Path) -> None:
    roots = list(tmpdir.glob(f"{leftovers.ROOT_PREFIX}*"))
    assert roots == []


def test_without_podman_the_line_names_the_package(behave) -> None:
    code, output = behave.run(env={"PATH": "/nonexistent"})

    line = _assert_one_error_before_any_scenario(code, output)
    assert line == "ERROR: podman is not installed: apt-get install podman"
    _assert_nothing_left(behave.tmpdir)


def test_a_podman_service_that_dies_is_named_with_its_last_words(behave) -> None:
    bin_dir = behave.base / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "podman"
    fake.write_text(BROKEN_PODMAN)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)

    code, output = behave.run(env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})

    line = _assert_one_error_before_any_scenario(code, output)
    assert "podman system service exited with code 125" in line
    assert "database is locked" in line
    assert "podman info" in line
    _assert_nothing_left(behave.tmpdir)


@pytest.mark.podman
def test_a_missing_sandbox_image_says_how_to_get_one(behave) -> None:
    code, output = behave.run("-D", "sandbox_image=does-not-exist:1")

    line = _assert_one_error_before_any_scenario(code, output)
    assert "-D sandbox_image=does-not-exist:1 is not in local storage" in line
    assert "podman load -i FILE" in line
    _assert_nothing_left(behave.tmpdir)


def test_an_image_build_without_its_tool_is_one_preflight_line(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(PreflightError) as raised:
        build_sandbox_image(PodmanService(), Recipe.load())

    assert (
        str(raised.value) == "mmdebstrap is not installed: apt-get install mmdebstrap"
    )
