"""Steps that watch the supervisor's traffic on the wire: each calls the library."""

from __future__ import annotations

import sys
from pathlib import Path

from behave import then, when
from hamcrest import assert_that

from openshell_acceptance import capture, capture_matchers, evidence
from openshell_acceptance.capture import (
    GRPC_METHOD_PATH,
    HTTP2_PREFACE,
    CaptureUnavailable,
    WireCapture,
)


@when("a sandbox starts while its traffic to the gateway is captured")
def step_sandbox_starts_captured(context):
    deployment = context.deployment
    tshark = context.config.userdata.get("tshark", "tshark")
    try:
        wire = capture.sandbox_capture(deployment, tshark=tshark)
        context.add_cleanup(_close_capture, context, wire)
        wire.start()
    except CaptureUnavailable as exc:
        reason = f"the wire cannot be captured here: {exc}"
        context.evidence(evidence.text("Wire capture skipped", reason))
        print(f"SKIP {context.scenario.name}: {reason}", file=sys.__stderr__)
        context.scenario.skip(reason=reason)
        return

    with wire.watching(report=context.evidence):
        context.sandbox = deployment.start_sandbox()
        context.sandbox_ref = deployment.wait_ready(context.sandbox)
    context.wire = wire.summary


def _close_capture(context, wire: WireCapture) -> None:
    """Keep the raw capture under reports/captures/ when the scenario failed."""
    try:
        if context.scenario.status.has_failed():
            directory = Path(context.config.base_dir) / "reports" / "captures"
            kept = wire.keep(directory, context.scenario.name)
            if kept is not None:
                print(f"wire capture kept at {kept}", file=sys.stderr, flush=True)
    finally:
        wire.close()


@then("every connection opens with a TLS ClientHello naming {server_name}")
def step_opens_with_client_hello(context, server_name):
    context.evidence(capture.client_openings(context.wire))

    assert_that(context.wire, capture_matchers.opens_with_client_hello(server_name))


@then("the gateway answers every ClientHello with a ServerHello")
def step_answered_with_server_hello(context):
    context.evidence(capture.gateway_answers(context.wire))

    assert_that(context.wire, capture_matchers.answered_with_server_hello())


@then("every connection negotiates TLS 1.2 or newer")
def step_tls_1_2_or_newer(context):
    context.evidence(capture.tls_versions(context.wire))

    assert_that(context.wire, capture_matchers.negotiates_at_least(capture.TLS_1_2))


@then("neither the HTTP/2 preface nor a gRPC method path crosses the wire in clear")
def step_no_cleartext(context):
    context.evidence(capture.cleartext_found(context.wire))

    assert_that(
        context.wire, capture_matchers.no_cleartext(HTTP2_PREFACE, GRPC_METHOD_PATH)
    )


@then("the HTTP/2 preface crosses the wire in clear")
def step_preface_in_clear(context):
    context.evidence(capture.cleartext_found(context.wire))

    assert_that(context.wire, capture_matchers.shows_cleartext(HTTP2_PREFACE))


@then("the gRPC method path crosses the wire in clear")
def step_method_in_clear(context):
    context.evidence(capture.cleartext_found(context.wire))

    assert_that(context.wire, capture_matchers.shows_cleartext(GRPC_METHOD_PATH))
