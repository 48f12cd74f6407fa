"""The CI workflow parses, runs .ci/run on every lane, and always uploads reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "acceptance.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_it_runs_on_push_and_pull_request(workflow):
    # YAML 1.1 reads a bare `on` key as true.
    triggers = workflow.get("on", workflow.get(True))

    assert {"push", "pull_request"} <= set(triggers)


def test_the_matrix_has_a_rootful_lane(workflow):
    (job,) = workflow["jobs"].values()
    lanes = [row["lane"] for row in job["strategy"]["matrix"]["include"]]

    assert "rootful" in lanes
    assert job["strategy"]["fail-fast"] is False
    assert "${{ matrix.lane }}" in job["name"]


def test_every_lane_runs_the_same_command_as_ci(workflow):
    commands = [step["run"].strip() for step in steps(workflow) if "run" in step]

    assert ".ci/run" in commands
    assert (ROOT / ".ci" / "run").is_file()


def test_the_reports_are_uploaded_even_when_the_run_fails(workflow):
    uploads = [
        step
        for step in steps(workflow)
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    run_index = next(
        i for i, step in enumerate(steps(workflow)) if step.get("run") == ".ci/run"
    )

    (upload,) = uploads
    assert upload["if"].replace("${{", "").replace("}}", "").strip() == "always()"
    assert upload["with"]["path"].rstrip("/") == "reports"
    assert steps(workflow).index(upload) > run_index
    assert "${{ matrix.lane }}" in upload["with"]["name"]


def test_the_checkout_comes_before_the_run(workflow):
    uses = [step.get("uses", "") for step in steps(workflow)]
    run_index = next(
        i for i, step in enumerate(steps(workflow)) if step.get("run") == ".ci/run"
    )

    checkout = next(
        i for i, use in enumerate(uses) if use.startswith("actions/checkout@")
    )
    assert checkout < run_index
