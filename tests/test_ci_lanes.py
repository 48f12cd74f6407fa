"""Each CI lane tells .ci/run which it is; the rootless lane has its preparation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "acceptance.yml"
PREPARE = ROOT / "scripts" / "prepare-rootless-host"


def job() -> dict:
    (only,) = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"].values()
    return only


def test_the_matrix_has_a_rootless_lane_beside_the_rootful_one():
    lanes = [row["lane"] for row in job()["strategy"]["matrix"]["include"]]

    assert {"rootful", "rootless"} <= set(lanes)


def test_every_lane_passes_its_name_to_ci_run():
    assert job()["env"]["CI_LANE"] == "${{ matrix.lane }}"


def test_ci_run_refuses_a_lane_it_does_not_know_before_doing_anything():
    result = subprocess.run(
        [str(ROOT / ".ci" / "run")],
        env={**os.environ, "CI_LANE": "sideways"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ERROR: CI_LANE=sideways is unknown: use rootful or rootless, or leave it unset"
    )


def test_the_rootless_preparation_is_an_executable_shell_script_that_parses():
    assert os.access(PREPARE, os.X_OK)
    subprocess.run(["bash", "-n", str(PREPARE)], check=True, timeout=30)


def test_the_rootless_preparation_refuses_to_run_without_root():
    if os.geteuid() == 0:
        pytest.skip("as root the script would prepare this machine for real")
    result = subprocess.run(
        [str(PREPARE)], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: run it as root")
