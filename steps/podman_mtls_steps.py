"""Steps for the Podman mTLS feature: each one calls the library and asserts."""

from __future__ import annotations

from behave import given, then, when
from hamcrest import assert_that, empty, equal_to, has_entries, is_not, starts_with

from openshell_acceptance import (
    GUEST_TLS_KEYS,
    ContainerView,
    evidence,
    matchers,
)

GUEST_TLS_FILES = {
    "CA certificate": "ca_cert",
    "client certificate": "client_cert",
    "client key": "client_key",
}


def _keys(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


# PKI


@given("a certificate authority that signed a gateway and a client certificate")
def step_pki(context):
    pki = context.deployment.create_pki()
    for caption, path in [
        ("CA certificate", pki.ca_cert),
        ("Gateway certificate", pki.server_cert),
        ("Client certificate", pki.client_cert),
    ]:
        context.evidence(evidence.certificate(caption, path))


# The gateway


@given("a Podman gateway with mTLS")
def step_gateway_with_mtls(context):
    context.deployment.configure()
    _start_gateway(context)


def _start_gateway(context):
    deployment = context.deployment
    try:
        deployment.start_gateway()
    finally:
        context.evidence(evidence.text("Gateway TOML", deployment.config_text))
        context.evidence(evidence.text("Gateway command", deployment.command_line()))


@given("a gateway whose driver table sets only {keys}")
def step_gateway_partial_guest_tls(context, keys):
    context.deployment.configure(guest_tls=_keys(keys), placement="driver")


@when("the gateway starts")
def step_gateway_starts(context):
    context.refusal = context.deployment.expect_refusal()
    context.evidence(evidence.text("Gateway TOML", context.deployment.config_text))
    context.evidence(evidence.text("Gateway output", context.refusal.output))


@then("it refuses to start, naming the missing {keys}")
def step_refused_naming(context, keys):
    refusal = context.refusal
    missing = _keys(keys)
    present = [key for key in GUEST_TLS_KEYS if key not in missing]

    assert_that(refusal.returncode, matchers.nonzero_exit())
    assert_that(refusal.still_listening, equal_to(False), "gateway port open")
    for key in missing:
        assert_that(refusal.output, matchers.names_driver_field(key))
    for key in present:
        assert_that(refusal.output, is_not(matchers.names_driver_field(key)))


@then("no sandbox container exists")
def step_no_container(context):
    assert_that(context.deployment.managed_containers(), empty())


# Sandboxes


@when("a sandbox starts")
def step_sandbox_starts(context):
    deployment = context.deployment
    context.sandbox = deployment.start_sandbox()
    context.sandbox_ref = deployment.wait_ready(context.sandbox)
    context.container = ContainerView(deployment.container(context.sandbox))


@then("the supervisor connects over https")
def step_supervisor_https(context):
    deployment = context.deployment
    env = context.container.openshell_environment()
    context.evidence(evidence.mapping("Container OPENSHELL_* environment", env))
    log = deployment.supervisor_log(context.sandbox)
    context.evidence(evidence.text("Supervisor log", "\n".join(log)))

    assert_that(env.get("OPENSHELL_ENDPOINT", ""), starts_with("https://"))
    assert_that(context.sandbox_ref.status.phase, matchers.sandbox_phase("READY"))


@then("the SDK sees the sandbox ready over mTLS")
def step_sdk_ready(context):
    deployment = context.deployment
    ref = deployment.client().get(context.sandbox.name, workspace="default")
    context.evidence(evidence.sandbox(ref, deployment.registration.endpoint))

    assert_that(deployment.registration.endpoint, starts_with("https://"))
    assert_that(ref.status.phase, matchers.sandbox_phase("READY"))


@then("the gateway recorded the supervisor's client certificate subject:")
def step_peer_subject(context):
    recorded = context.deployment.peer_subject(context.sandbox)
    context.evidence(evidence.text("Peer subject recorded by the gateway", str(recorded)))

    assert_that(recorded, matchers.same_distinguished_name(context.text.strip()))


@then("the container has these read-only bind mounts:")
def step_read_only_mounts(context):
    pki = context.deployment.pki
    mounts = context.container.mounts
    context.evidence(evidence.mapping("Container mounts", mounts))

    for row in context.table:
        source = getattr(pki, GUEST_TLS_FILES[row["guest TLS file"]])
        assert_that(
            mounts,
            matchers.has_read_only_bind(
                row["container path"], source, selinux=context.run.podman.selinux
            ),
        )


@then("the container environment holds:")
def step_environment(context):
    env = context.container.environment
    port = str(context.deployment.settings.port)
    expected = {
        row["variable"]: row["value"].replace("<gateway port>", port)
        for row in context.table
    }
    context.evidence(
        evidence.mapping(
            "Container OPENSHELL_* environment",
            context.container.openshell_environment(),
        )
    )

    assert_that(env, has_entries(expected))


@then("the container metadata holds no private key material")
def step_no_key_material(context):
    pki = context.deployment.pki
    found = context.container.key_material_found([pki.client_key, pki.server_key])
    assert_that(found, empty())

