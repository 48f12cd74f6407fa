"""behave hooks: target selection, shared fixtures, evidence, cleanup."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from behave import fixture, use_fixture
from behave.step_registry import registry as step_registry
from behave.tag_matcher import ActiveTagMatcher

from openshell_acceptance import (
    AcceptanceError,
    Evidence,
    SuiteRun,
    evidence,
    keyscan,
)
from openshell_acceptance.interrupts import InterruptGuard

# Values for active tags such as @only.with_target=reference; "lane" (rootful
# or rootless) is read from the Podman service once the run has started.
active_tag_values = {"target": "reference"}
active_tag_matcher = ActiveTagMatcher(active_tag_values)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@fixture
def interrupts_stop_the_run(context):
    """SIGINT and SIGTERM both stop the run, and never cut its cleanup short."""
    guard = InterruptGuard().install()
    try:
        yield guard
    finally:
        guard.restore()
        if guard.take_pending():
            context.abort(reason="interrupted while cleaning up")


def _uninterrupted(context):
    guard = getattr(context, "interrupts", None)
    return guard.deferred() if guard is not None else contextlib.nullcontext()


@fixture
def suite_run(context):
    run = SuiteRun(context.config.userdata, log=_log)
    try:
        yield run.start()
    finally:
        with _uninterrupted(context):
            run.close()


@fixture
def deployment(context):
    scenario_deployment = context.run.deployment()
    try:
        yield scenario_deployment
    finally:
        with _uninterrupted(context):
            scenario_deployment.close()


# Reporting


class Reporting:
    """What the reporting hooks keep across one run."""

    FINGERPRINTS = ".private-key-fingerprints"

    def __init__(self) -> None:
        self.attachments = 0
        self.attachments_at_step_start = 0
        self.steps_without_evidence: dict[str, str] = {}
        self.key_fingerprints: set[keyscan.Fingerprint] = set()
        self.started = time.monotonic()


def attach(context, item: Evidence) -> None:
    """Embed one piece of evidence, redacted, in every report that takes it."""
    reporting = getattr(context, "reporting", None)
    if reporting is not None:
        reporting.attachments += 1
    _embed(context, item)


def _embed(context, item: Evidence) -> None:
    data = evidence.redact(item.text)
    for formatter in context._runner.formatters:
        if hasattr(formatter, "embed"):
            formatter.embed(mime_type="text/plain", data=data, caption=item.caption)
        elif hasattr(formatter, "embedding"):
            formatter.embedding("text/plain", f"{item.caption}\n{data}".encode())


def _report_outputs(config) -> tuple[list[Path], Path | None]:
    """The report files behave writes, and the JUnit directory if it writes one."""
    files = [
        Path(opener.name)
        for opener in config.outputs
        if getattr(opener, "name", None) and opener.name != "-"
    ]
    junit = Path(config.junit_directory).absolute() if config.junit else None
    return [path.absolute() for path in files], junit


def _shown(path: Path) -> str:
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _skip_reason(tags) -> str:
    """The active tags a scenario carries, against what this run has."""
    carried = [tag for tag in tags if active_tag_matcher.tag_pattern.match(tag)]
    run = ", ".join(f"{name}={value}" for name, value in active_tag_values.items())
    return f"{', '.join(carried)} (this run: {run})"


def _show_lane(context, details: dict[str, str]) -> None:
    """Head every report that has room for it with the lane this run used."""
    for formatter in context._runner.formatters:
        shown = getattr(formatter, "additional_info", None)
        if isinstance(shown, dict):
            shown.update(details)


def before_all(context):
    # Registered first, so its cleanup, which restores the signal handlers,
    # runs last: after the run's own cleanup, which it protects.
    context.interrupts = use_fixture(interrupts_stop_the_run, context)
    context.reporting = Reporting()
    context.evidence = lambda item: attach(context, item)
    try:
        context.run = use_fixture(suite_run, context)
        lane = context.run.podman.lane()
    except AcceptanceError as exc:
        # Before the first scenario every failure of the suite's own is a
        # preflight one: a line that names it, not a hook error.
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        context.abort(reason="preflight failed")
        return
    active_tag_values["target"] = context.run.target.name
    active_tag_values["lane"] = lane.name
    _show_lane(context, lane.details())


def before_scenario(context, scenario):
    context.interrupts.resume()
    if context.aborted:
        return
    if active_tag_matcher.should_exclude_with(scenario.effective_tags):
        scenario.skip(reason=_skip_reason(scenario.effective_tags))
        note = f"Skipped: {scenario.skip_reason}"
        _embed(context, Evidence("Report note: skipped", note))
        return
    context.deployment = use_fixture(deployment, context)


def before_step(context, step):
    context.reporting.attachments_at_step_start = context.reporting.attachments


def after_step(context, step):
    """A Then step that passed must have attached what it checked."""
    reporting = context.reporting
    if step.step_type != "then" or step.status != "passed":
        return
    if reporting.attachments > reporting.attachments_at_step_start:
        return
    definition = step_registry.find_step_definition(step)
    where = f"{definition.location}" if definition else str(step.location)
    what = definition.pattern if definition else step.name
    reporting.steps_without_evidence.setdefault(where, f"Then {what}")
    note = (
        "This step passed without attaching evidence of what it checked; "
        "its step definition should call context.evidence(...)."
    )
    _embed(context, Evidence("Report note: no evidence", note))


def after_scenario(context, scenario):
    context.interrupts.hold()
    current = getattr(context, "deployment", None)
    if current is None:
        return
    fingerprints = keyscan.fingerprints_in(current.workdir)
    context.reporting.key_fingerprints |= fingerprints
    if scenario.status.has_failed():
        for item in current.failure_evidence():
            attach(context, item)
    _check_logs_hold_no_keys(context, current, fingerprints)


def _check_logs_hold_no_keys(context, current, fingerprints) -> None:
    """The raw logs, before redaction: redaction must not be what hides a key."""
    logs = {}
    if current.gateway is not None:
        logs["gateway log"] = current.gateway.log()
    for sandbox in current.sandboxes:
        try:
            lines = current.supervisor_log(sandbox)
        except AcceptanceError:
            continue
        logs[f"supervisor log of {sandbox.name}"] = "\n".join(lines)
    found = [
        f"{name}: {what} ({via})"
        for name, text in logs.items()
        for what, via in keyscan.scan_bytes(text.encode(), fingerprints)
    ]
    if found:
        note = Evidence("Report note: private key material in logs", "\n".join(found))
        _embed(context, note)
        raise AssertionError(f"private key material in {'; '.join(found)}")


def after_all(context):
    """Leave the run's key fingerprints for the report check; name the reports."""
    context.interrupts.hold()
    reporting = context.reporting
    # behave's closing "Took" line counts no scenario inside a Rule.
    seconds = time.monotonic() - reporting.started
    print(f"Ran for {seconds:.1f}s", file=sys.__stdout__, flush=True)
    files, junit = _report_outputs(context.config)
    places = [*files, *([junit] if junit else [])]
    if not places:
        return
    reports_dir = Path(os.path.commonpath([p.parent for p in places]))
    keyscan.write_fingerprints(
        reports_dir / Reporting.FINGERPRINTS, reporting.key_fingerprints
    )

    names = [_shown(p) for p in files] + ([f"{_shown(junit)}/"] if junit else [])
    missing = len(reporting.steps_without_evidence)
    note = f"; {missing} Then step(s) lack evidence, see notes" if missing else ""
    print(f"Reports: {', '.join(names)}{note}", file=sys.__stdout__, flush=True)
