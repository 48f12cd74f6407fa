"""The report formatters and hooks, on a small feature that needs no Podman.

behave runs in a subprocess on a feature written to a temporary directory,
with the suite's own formatters and its reporting hooks (before_step,
after_step, after_all from environment.py); the steps attach evidence the
way the suite's steps do, one Then step attaches nothing, one step fails.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]

FEATURE = """\
@suite
Feature: Reporting

  Background:
    Given a certificate authority

  Rule: One rule

    @criterion.first
    Scenario: Evidence is attached to its step
      When something happens with:
        | name | value |
        | a    | 1     |
      Then it is checked with evidence:
        \"\"\"
        expected text
        \"\"\"
      And it is checked without evidence

    @criterion.second
    Scenario Outline: A failure (<row>)
      When something happens
      Then it fails

      Examples:
        | row |
        | one |
"""

STEPS = """\
from behave import given, then, when

from openshell_acceptance import evidence


@given("a certificate authority")
def step_ca(context):
    context.evidence(evidence.text("CA certificate", "-----BEGIN CERTIFICATE-----"))


@when("something happens")
@when("something happens with:")
def step_happens(context):
    pass


@then("it is checked with evidence:")
def step_checked(context):
    context.evidence(evidence.text("What was checked", context.text))


@then("it is checked without evidence")
def step_silent(context):
    pass


@then("it fails")
def step_fails(context):
    context.evidence(evidence.text("Before failing", "state"))
    assert False, "deliberately"
"""

ENVIRONMENT = f"""\
import importlib.util

from openshell_acceptance import Evidence

_spec = importlib.util.spec_from_file_location(
    "suite_environment", {str(ROOT / "environment.py")!r}
)
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)

before_step = suite.before_step
after_step = suite.after_step
after_all = suite.after_all


class NoInterrupts:
    def hold(self):
        pass

    def resume(self):
        pass


def before_all(context):
    context.interrupts = NoInterrupts()
    context.reporting = suite.Reporting()
    context.evidence = lambda item: suite.attach(context, item)


def after_scenario(context, scenario):
    if scenario.status.has_failed():
        suite.attach(context, Evidence("Gateway log", "level=info event=stopped"))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("report-run")
    (root / "features" / "steps").mkdir(parents=True)
    (root / "features" / "report.feature").write_text(FEATURE)
    (root / "features" / "steps" / "report_steps.py").write_text(STEPS)
    (root / "features" / "environment.py").write_text(ENVIRONMENT)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.behave]
            show_skipped = true
            junit = true
            junit_directory = "reports/junit"
            format = ["plain", "html-pretty", "cucumber"]
            outfiles = ["-", "reports/report.html", "reports/report.json"]

            [tool.behave.formatters]
            html-pretty = "acceptance_report.html:PrettyHTMLFormatter"
            cucumber = "acceptance_report.cucumber:CucumberJSONFormatter"
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "behave", "features/report.feature"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return {
        "stdout": result.stdout,
        "json": json.loads((root / "reports" / "report.json").read_text()),
        "html": (root / "reports" / "report.html").read_text(),
        "reports": root / "reports",
    }


def scenario_elements(run) -> list[dict]:
    (feature,) = run["json"]
    return [e for e in feature["elements"] if e["type"] == "scenario"]


def texts(step: dict) -> dict[str, str]:
    return {
        e.get("name", ""): base64.b64decode(e["data"]).decode()
        for e in step.get("embeddings", [])
    }


# Cucumber JSON


def test_the_json_has_the_cucumber_layout(run):
    (feature,) = run["json"]

    for key in ("uri", "id", "line", "keyword", "name", "description", "elements"):
        assert key in feature
    assert feature["uri"] == "features/report.feature"
    assert feature["tags"] == [{"name": "@suite", "line": 1}]
    for element in feature["elements"]:
        for key in ("type", "keyword", "name", "line", "description", "steps"):
            assert key in element, (key, element["name"])
        for step in element["steps"]:
            assert step["keyword"].endswith(" ")
            assert isinstance(step["line"], int)
            assert isinstance(step["result"]["duration"], int)
            assert step["result"]["status"] in {"passed", "failed", "skipped"}


def test_each_scenario_follows_its_background_with_inherited_tags(run):
    (feature,) = run["json"]
    types = [element["type"] for element in feature["elements"]]
    first, second = scenario_elements(run)

    assert types == ["background", "scenario", "background", "scenario"]
    assert [t["name"] for t in first["tags"]] == ["@suite", "@criterion.first"]
    assert "@criterion.second" in [t["name"] for t in second["tags"]]
    assert first["id"] != second["id"]


def test_steps_carry_their_own_evidence_tables_and_doc_strings(run):
    (feature,) = run["json"]
    background = feature["elements"][0]
    when, then, silent = scenario_elements(run)[0]["steps"]

    assert texts(background["steps"][0]) == {
        "CA certificate": "-----BEGIN CERTIFICATE-----"
    }
    assert when["rows"] == [{"cells": ["name", "value"]}, {"cells": ["a", "1"]}]
    assert then["doc_string"]["value"] == "expected text"
    assert texts(then) == {"What was checked": "expected text"}
    assert then["match"]["location"].startswith("features/steps/report_steps.py:")
    assert "Report note: no evidence" in texts(silent)


def test_a_failed_step_has_its_message_and_the_hook_evidence_follows(run):
    failing = scenario_elements(run)[1]
    step = failing["steps"][-1]

    assert step["result"]["status"] == "failed"
    assert "deliberately" in step["result"]["error_message"]
    assert texts(step) == {"Before failing": "state"}
    (after,) = failing["after"]
    assert texts(after) == {"Gateway log": "level=info event=stopped"}


# The HTML report and the hooks


def test_the_html_lists_inherited_background_steps_and_the_filter(run):
    html = run["html"]

    assert html.count("a certificate authority") == 2
    assert 'id="criterion-filter"' not in html
    assert "criterion-status-badge" in html and "<script src" not in html


def test_the_run_ends_with_one_line_naming_the_reports(run):
    lines = [line for line in run["stdout"].splitlines() if line.startswith("Reports:")]

    assert lines == [
        "Reports: reports/report.html, reports/report.json, reports/junit/; "
        "1 Then step(s) lack evidence, see notes"
    ]


def test_the_fingerprint_file_is_left_beside_the_reports(run):
    assert (run["reports"] / ".private-key-fingerprints").is_file()


# Raw logs, checked before redaction


class _Recorder:
    def __init__(self) -> None:
        self.embedded: list[tuple[str, str]] = []

    def embed(self, mime_type: str, data: str, caption: str) -> None:
        self.embedded.append((caption, data))


class _Gateway:
    def __init__(self, log: str) -> None:
        self._log = log

    def log(self) -> str:
        return self._log


class _Deployment:
    def __init__(self, gateway_log: str) -> None:
        self.gateway = _Gateway(gateway_log)
        self.sandboxes: list[object] = []


def suite_environment():
    spec = importlib.util.spec_from_file_location(
        "suite_environment_under_test", ROOT / "environment.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_key_in_a_raw_gateway_log_fails_the_scenario_with_a_note():
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    recorder = _Recorder()
    context = SimpleNamespace(_runner=SimpleNamespace(formatters=[recorder]))
    environment = suite_environment()

    environment._check_logs_hold_no_keys(
        context, _Deployment("level=info\n"), fingerprints=set()
    )
    assert recorder.embedded == []

    with pytest.raises(AssertionError, match="private key material in gateway log"):
        environment._check_logs_hold_no_keys(
            context, _Deployment(f"level=debug {key.decode()}"), fingerprints=set()
        )
    ((caption, note),) = recorder.embedded
    assert caption == "Report note: private key material in logs"
    assert "BEGIN" not in note
