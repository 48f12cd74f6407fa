"""behave hooks: target selection, shared fixtures, evidence, cleanup."""

from __future__ import annotations

import sys

from behave import fixture, use_fixture
from behave.tag_matcher import ActiveTagMatcher

from openshell_acceptance import Evidence, PreflightError, SuiteRun, evidence

# Values for active tags such as @only.with_target=reference.
active_tag_values = {"target": "reference"}
active_tag_matcher = ActiveTagMatcher(active_tag_values)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@fixture
def suite_run(context):
    run = SuiteRun(context.config.userdata, log=_log)
    try:
        yield run.start()
    finally:
        run.close()


@fixture
def deployment(context):
    scenario_deployment = context.run.deployment()
    try:
        yield scenario_deployment
    finally:
        scenario_deployment.close()


def attach(context, item: Evidence) -> None:
    """Embed one piece of evidence, redacted, in every report that takes it."""
    data = evidence.redact(item.text)
    for formatter in context._runner.formatters:
        if hasattr(formatter, "embed"):
            formatter.embed(mime_type="text/plain", data=data, caption=item.caption)
        elif hasattr(formatter, "embedding"):
            formatter.embedding("text/plain", f"{item.caption}\n{data}".encode())


def before_all(context):
    context.evidence = lambda item: attach(context, item)
    try:
        context.run = use_fixture(suite_run, context)
    except PreflightError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        context.abort(reason="preflight failed")
        return
    active_tag_values["target"] = context.run.target.name


def before_scenario(context, scenario):
    if active_tag_matcher.should_exclude_with(scenario.effective_tags):
        scenario.skip(reason=active_tag_matcher.exclude_reason)
        return
    context.deployment = use_fixture(deployment, context)


def after_scenario(context, scenario):
    if scenario.status != "failed":
        return
    current = getattr(context, "deployment", None)
    if current is None:
        return
    for item in current.failure_evidence():
        attach(context, item)
