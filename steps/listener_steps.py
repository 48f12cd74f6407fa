"""Steps for the gateway's listener: health port, gRPC port, registration, TLS."""

from __future__ import annotations

from behave import then, when
from hamcrest import assert_that, equal_to, has_entries

from openshell_acceptance import evidence
from openshell_acceptance import listener
from openshell_acceptance import listener_matchers as matches
from openshell_acceptance.probes import TlsExchange

CALLERS = {
    "a caller without a client certificate": listener.NO_CERTIFICATE,
    "a caller whose certificate another CA signed": listener.FOREIGN_CA,
    "a caller whose client certificate has expired": listener.EXPIRED,
    "a caller whose client certificate is not yet valid": listener.NOT_YET_VALID,
}

HEALTHY = "SERVICE_STATUS_HEALTHY"


# The health port


@when("liveness and readiness are probed in plaintext on the health port")
def step_probe_health(context):
    context.health = listener.health_answers(context.deployment)


@then("the health port answers:")
def step_health_answers(context):
    rows = [
        (name, f"{a.url} -> {a.status_code} {a.body.strip()}")
        for name, a in context.health.items()
    ]
    context.evidence(evidence.table("Health port answers", rows))

    for row in context.table:
        answer = context.health[row["probe"]]
        assert_that(answer, matches.health_status(int(row["status"])), row["probe"])


# Plaintext on the gRPC port


@when("plaintext HTTP and plaintext gRPC clients call the gRPC port")
def step_plaintext_clients(context):
    context.plaintext = listener.plaintext_attempts(context.deployment)


@then("the gRPC port accepts their connections")
def step_port_accepts(context):
    accepted = context.plaintext.accepts_tcp
    context.evidence(
        evidence.table("TCP connect to the gRPC port", [("accepted", accepted)])
    )

    assert_that(accepted, equal_to(True), "a TCP connection to the gRPC port")


@then("the plaintext HTTP request gets no HTTP response")
def step_no_http_response(context):
    attempt = context.plaintext.http
    context.evidence(
        evidence.table("Plaintext HTTP on the gRPC port", listener.http_rows(attempt))
    )

    assert_that(attempt, matches.no_http_response())


@then("the plaintext gRPC call fails with status {code}")
def step_grpc_fails(context, code):
    attempt = context.plaintext.grpc
    context.evidence(
        evidence.table("Plaintext gRPC on the gRPC port", listener.grpc_rows(attempt))
    )

    assert_that(attempt, matches.grpc_failure(code))


# The CLI registration and the official SDK


@when("the official SDK connects to the active gateway of the CLI registration")
def step_sdk_connects(context):
    context.registration = listener.registration_view(context.deployment)
    context.sdk_health = listener.sdk_health(context.deployment)


@then("the registration describes the gateway:")
def step_registration_fields(context):
    view = context.registration
    values = {
        "<gateway name>": view.name,
        "<gateway port>": str(context.deployment.settings.port),
    }
    expected = {}
    for row in context.table:
        value = row["value"]
        for placeholder, actual in values.items():
            value = value.replace(placeholder, actual)
        expected[row["field"]] = value
    context.evidence(evidence.mapping("CLI registration metadata", view.metadata))

    assert_that(view.fields, has_entries(expected))


@then(
    "the registration holds the suite's CA certificate, client certificate "
    "and client key"
)
def step_registration_material(context):
    view = context.registration
    context.evidence(
        evidence.table("CLI registration mtls files", listener.material_rows(view))
    )

    for name, item in view.material.items():
        assert_that(item.same_as_suite, equal_to(True), f"mtls/{name}: {item}")


@then("the registration is the active gateway")
def step_registration_active(context):
    view = context.registration
    context.evidence(
        evidence.table(
            "Active gateway",
            [("active_gateway", view.active_gateway), ("registration", view.name)],
        )
    )

    assert_that(view.active_gateway, equal_to(view.name), "active_gateway")


@then("the gateway answers the SDK's health check as healthy")
def step_sdk_healthy(context):
    answer = context.sdk_health
    context.evidence(evidence.table("SDK Health answer", listener.sdk_rows(answer)))

    assert_that(answer.status, equal_to(HEALTHY), answer.error or answer.endpoint)


# Callers the gateway must refuse, next to one it must serve


@when("{caller} and the suite's own client each open a TLS session with the gateway")
def step_callers_open_sessions(context, caller):
    deployment = context.deployment
    untrusted = listener.caller(deployment, CALLERS[caller])
    if untrusted.cert is not None:
        context.evidence(evidence.certificate("Caller's certificate", untrusted.cert))
    context.caller = caller
    context.untrusted = listener.exchange(deployment, untrusted)
    suite = listener.caller(deployment, listener.SUITE_CLIENT)
    context.trusted = listener.exchange(deployment, suite)


@then(
    "the gateway ends the untrusted caller's session at the handshake, serving nothing"
)
def step_refused_at_handshake(context):
    context.evidence(_exchange_evidence(context.caller, context.untrusted))

    assert_that(context.untrusted, matches.refused_at_handshake())


# Limitation: the reference gateway's grpcio server ends a refused handshake by
# closing the connection without a TLS alert, so the scenarios that use this
# step carry @not.with_target=reference and run only against openshell-gateway.
@then("the gateway refuses the untrusted caller with a TLS alert")
def step_refused_with_alert(context):
    context.evidence(_exchange_evidence(context.caller, context.untrusted))

    assert_that(context.untrusted, matches.refused_with_tls_alert())


@then("the gateway serves the suite's own client")
def step_serves_suite_client(context):
    context.evidence(_exchange_evidence("the suite's own client", context.trusted))

    assert_that(context.trusted, matches.served())


def _exchange_evidence(who: str, exchange: TlsExchange) -> evidence.Evidence:
    return evidence.table(f"TLS exchange of {who}", listener.exchange_rows(exchange))


# The TLS session of a trusted client


@when("the suite's own client calls the gateway's health method as HTTP/2 over TLS")
def step_health_over_tls(context):
    context.session = listener.health_over_tls(context.deployment)


@then("the gateway's certificate chains to the suite's certificate authority")
def step_chains_to_suite_ca(context):
    view = context.session
    context.evidence(
        evidence.table("Gateway certificate", listener.certificate_rows(view))
    )

    reason = view.session.error or "gateway certificate issuer"
    assert_that(view.peer_issuer, equal_to(view.ca_subject), reason)
    assert_that(view.issued_by_suite_ca, equal_to(True), "signed by the suite CA")


@then("the session uses {minimum} or newer")
def step_tls_version(context, minimum):
    view = context.session
    context.evidence(evidence.table("TLS session", listener.tls_rows(view)))

    assert_that(view.session.version, matches.tls_version_at_least(minimum))


@then("the health method answers healthy")
def step_health_method_healthy(context):
    view = context.session
    context.evidence(
        evidence.table("gRPC Health over HTTP/2", listener.grpc_answer_rows(view))
    )

    assert_that(view.health_status, equal_to(HEALTHY), view.problem or "Health")
