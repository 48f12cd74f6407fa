"""Steps for the Podman mTLS feature: each one calls the library and asserts."""

from __future__ import annotations

import time

from behave import given, then, when
from hamcrest import (
    assert_that,
    contains_string,
    empty,
    equal_to,
    has_entries,
    has_item,
    has_items,
    is_not,
    matches_regexp,
    starts_with,
)

from openshell_acceptance import (
    CLIENT_TLS_DIR,
    GUEST_TLS_KEYS,
    GUEST_TLS_PATHS,
    ContainerView,
    SandboxNotReady,
    evidence,
    files,
    inside,
    matchers,
    pki,
)

GUEST_TLS_FILES = {
    "CA certificate": "ca_cert",
    "client certificate": "client_cert",
    "client key": "client_key",
}
PLACEMENTS = {
    "the driver table": "driver",
    "the gateway table": "gateway",
    "both tables": "split",
    "both tables, split per key": "split",
}
SERVER_FLAWS = {
    "lacks the host alias": "missing-alias",
    "was signed by another CA": "foreign-ca",
}
# What a reader calls a cause, as the text a one-line report of it carries.
CAUSES = {
    "a certificate name mismatch": r"Hostname mismatch|not valid for",
    "an unknown certificate issuer": r"unable to get local issuer|unknown ca",
}


def _keys(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


def _ready_container(context) -> ContainerView:
    """The started sandbox's container; fails the step if it never got ready."""
    failure = getattr(context, "sandbox_failure", None)
    if failure is not None:
        raise AssertionError(f"the sandbox did not become ready: {failure}")
    return context.container


# PKI


@given("a certificate authority that signed a gateway and a client certificate")
def step_pki(context):
    material = context.deployment.create_pki()
    for caption, path in [
        ("CA certificate", material.ca_cert),
        ("Gateway certificate", material.server_cert),
        ("Client certificate", material.client_cert),
    ]:
        context.evidence(evidence.certificate(caption, path))


@when("the gateway certificate is read")
def step_read_server_certificate(context):
    context.certificate = pki.describe_certificate(context.deployment.pki.server_cert)
    context.evidence(
        evidence.mapping("Gateway certificate", context.certificate.to_dict())
    )


@then("it names these DNS and IP subject alternative names:")
def step_server_names(context):
    names = {
        "DNS": context.certificate.dns_names,
        "IP": context.certificate.ip_addresses,
    }
    context.evidence(evidence.mapping("Subject alternative names", names))

    for row in context.table:
        assert_that(names[row["kind"]], has_item(row["name"]), f"{row['kind']} SANs")


@then("it is for server authentication, issued by the certificate authority")
def step_server_role(context):
    ca = pki.describe_certificate(context.deployment.pki.ca_cert)
    context.evidence(evidence.table("Issuer", [("issuer", context.certificate.issuer)]))

    assert_that(context.certificate.extended_key_usage, has_item("serverAuth"))
    assert_that(context.certificate.issuer, equal_to(ca.subject))


@when("the client certificate and the certificate authority are read")
def step_read_client_and_ca(context):
    material = context.deployment.pki
    context.client_certificate = pki.describe_certificate(material.client_cert)
    context.ca_certificate = pki.describe_certificate(material.ca_cert)
    context.evidence(
        evidence.mapping("Client certificate", context.client_certificate.to_dict())
    )
    context.evidence(
        evidence.mapping("CA certificate", context.ca_certificate.to_dict())
    )


@then(
    "the client certificate is for client authentication, "
    "issued by the certificate authority"
)
def step_client_role(context):
    client = context.client_certificate
    context.evidence(evidence.table("Client", [("usage", client.extended_key_usage)]))

    assert_that(client.extended_key_usage, has_item("clientAuth"))
    assert_that(client.extended_key_usage, is_not(has_item("serverAuth")))
    assert_that(client.issuer, equal_to(context.ca_certificate.subject))


@then("the certificate authority may sign certificates")
def step_ca_role(context):
    ca = context.ca_certificate
    context.evidence(
        evidence.table("CA", [("is_ca", ca.is_ca), ("usage", ca.key_usage)])
    )

    assert_that(ca.is_ca, equal_to(True), "basic constraints CA")
    assert_that(ca.key_usage, has_item("key_cert_sign"))


@then("every private key file is readable by its owner only")
def step_keys_owner_only(context):
    modes = files.file_modes(context.deployment.pki.private_keys)
    context.evidence(evidence.mapping("Private key file modes", modes))

    assert_that(modes, matchers.all_owner_only())


@when("the gateway generates certificates into an empty directory")
def step_generate_certs(context):
    target = context.deployment.workdir / "generated-pki"
    context.generated = context.deployment.generate_certs(target)
    context.generated_digests = files.file_digests(context.generated.files)


@then("the directory holds the CA, the server pair and the client pair")
def step_generated_layout(context):
    generated = context.generated
    context.evidence(evidence.mapping("Generated files", context.generated_digests))

    assert_that(generated.missing(), empty())


@then("its directories and private keys are readable by their owner only")
def step_generated_modes(context):
    generated = context.generated
    paths = [generated.root, generated.root / "server", generated.root / "client"]
    modes = files.file_modes([*paths, *generated.private_keys])
    context.evidence(evidence.mapping("Generated modes", modes))

    assert_that(modes, matchers.all_owner_only())


@then("generating again into the same directory keeps the files as they are")
def step_generate_idempotent(context):
    again = context.deployment.generate_certs(context.generated.root)
    digests = files.file_digests(again.files)
    context.evidence(evidence.mapping("After the second run", digests))

    assert_that(digests, equal_to(context.generated_digests))


# The gateway


def _start_gateway(context):
    deployment = context.deployment
    try:
        deployment.start_gateway()
    finally:
        context.evidence(evidence.text("Gateway TOML", deployment.config_text))
        context.evidence(evidence.text("Gateway command", deployment.command_line()))


@given("a Podman gateway with mTLS")
def step_gateway_with_mtls(context):
    context.deployment.configure()
    _start_gateway(context)


@given("a Podman gateway with mTLS whose guest TLS is set in {placement}")
def step_gateway_with_placement(context, placement):
    context.deployment.configure(placement=PLACEMENTS[placement])
    _start_gateway(context)


@given("a Podman gateway with mTLS whose server certificate {flaw}")
def step_gateway_with_flawed_certificate(context, flaw):
    served = context.deployment.use_flawed_server_certificate(SERVER_FLAWS[flaw])
    context.evidence(evidence.certificate("Served gateway certificate", served))
    context.deployment.configure()
    _start_gateway(context)


@given("a Podman gateway with mTLS that listens on loopback only")
def step_gateway_loopback_only(context):
    context.deployment.configure(extra_flags=["--sandbox-listener", "none"])
    _start_gateway(context)


@given("a Podman gateway with mTLS whose Podman socket is set explicitly")
def step_gateway_explicit_socket(context):
    recorder = context.deployment.record_podman_socket()
    context.deployment.configure(socket_path=recorder.path)
    _start_gateway(context)


@given("a Podman gateway without TLS")
def step_gateway_plaintext(context):
    context.deployment.configure(guest_tls=(), server_tls=False)
    _start_gateway(context)


@given("a gateway configuration that sets only {keys} in {placement}")
def step_gateway_partial_guest_tls(context, keys, placement):
    context.deployment.configure(guest_tls=_keys(keys), placement=PLACEMENTS[placement])


@given("a gateway started with --disable-tls and --tls-client-ca")
def step_gateway_disable_tls_with_client_ca(context):
    context.deployment.configure(extra_flags=["--disable-tls"])


@given("a gateway started with --port equal to --health-port")
def step_gateway_same_ports(context):
    context.deployment.configure(health_port_equals_port=True)


@when("the gateway starts")
def step_gateway_starts(context):
    context.refusal = context.deployment.expect_refusal()
    context.evidence(evidence.text("Gateway TOML", context.deployment.config_text))
    context.evidence(
        evidence.text("Gateway command", context.deployment.command_line())
    )
    context.evidence(evidence.text("Gateway output", context.refusal.output))


@then("it refuses to start, naming the missing {keys}")
def step_refused_naming_fields(context, keys):
    refusal = context.refusal
    missing = _keys(keys)
    present = [key for key in GUEST_TLS_KEYS if key not in missing]
    context.evidence(evidence.table("Exit", [("code", refusal.returncode)]))

    assert_that(refusal.returncode, matchers.nonzero_exit())
    for key in missing:
        assert_that(refusal.output, matchers.names_driver_field(key))
    for key in present:
        assert_that(refusal.output, is_not(matchers.names_driver_field(key)))


@then("it refuses to start, naming {flags}")
def step_refused_naming_flags(context, flags):
    refusal = context.refusal
    context.evidence(evidence.table("Exit", [("code", refusal.returncode)]))

    assert_that(refusal.returncode, matchers.nonzero_exit())
    for flag in _keys(flags):
        assert_that(refusal.output, contains_string(flag))


@then("nothing listens on the gateway's ports")
def step_nothing_listens(context):
    settings = context.deployment.settings
    ports = [("gRPC port", settings.port), ("health port", settings.health_port)]
    context.evidence(evidence.table("Ports checked", ports))

    assert_that(context.refusal.listening, empty(), "ports still accepting")


@then("no sandbox container exists")
def step_no_container(context):
    containers = context.deployment.managed_containers()
    context.evidence(
        evidence.table(
            "Managed containers on the network",
            [
                ("count", len(containers)),
            ],
        )
    )

    assert_that(containers, empty())


# Sandboxes


def _start_sandbox(context, environment=None):
    deployment = context.deployment
    context.sandbox_failure = None
    context.sandbox = deployment.start_sandbox(environment=environment)
    started = time.monotonic()
    try:
        context.sandbox_ref = deployment.wait_ready(context.sandbox)
    except SandboxNotReady as exc:
        context.sandbox_failure = exc
    context.time_to_ready = time.monotonic() - started
    inspect = deployment.container(context.sandbox)
    context.container = ContainerView(inspect) if inspect else None


@when("a sandbox starts")
def step_sandbox_starts(context):
    _start_sandbox(context)


@when("a sandbox starts with these environment variables of its own:")
def step_sandbox_starts_with_env(context):
    context.user_environment = {row["variable"]: row["value"] for row in context.table}
    _start_sandbox(context, environment=context.user_environment)


@then("the supervisor connects over https")
def step_supervisor_https(context):
    container = _ready_container(context)
    env = container.openshell_environment()
    log = context.deployment.supervisor_log(context.sandbox)
    context.evidence(evidence.mapping("Container OPENSHELL_* environment", env))
    context.evidence(evidence.text("Supervisor log", "\n".join(log)))

    assert_that(env.get("OPENSHELL_ENDPOINT", ""), starts_with("https://"))
    assert_that(context.sandbox_ref.status.phase, matchers.sandbox_phase("READY"))


@then("the supervisor connects over plain http")
def step_supervisor_http(context):
    env = _ready_container(context).openshell_environment()
    context.evidence(evidence.mapping("Container OPENSHELL_* environment", env))

    assert_that(env.get("OPENSHELL_ENDPOINT", ""), starts_with("http://"))
    assert_that(context.sandbox_ref.status.phase, matchers.sandbox_phase("READY"))


@then("the container has no TLS mounts and no OPENSHELL_TLS_* variables")
def step_no_tls_in_container(context):
    container = _ready_container(context)
    mounts = container.mounts
    env = container.openshell_environment()
    context.evidence(evidence.mapping("Container mounts", mounts))

    assert_that([path for path in mounts if path.startswith(CLIENT_TLS_DIR)], empty())
    assert_that([name for name in env if name.startswith("OPENSHELL_TLS_")], empty())


@then("the SDK sees the sandbox ready over mTLS")
def step_sdk_ready(context):
    _ready_container(context)
    deployment = context.deployment
    ref = deployment.client().get(context.sandbox.name, workspace="default")
    context.evidence(evidence.sandbox(ref, deployment.registration.endpoint))

    assert_that(deployment.registration.endpoint, starts_with("https://"))
    assert_that(ref.status.phase, matchers.sandbox_phase("READY"))


@then("the gateway recorded the supervisor's client certificate subject:")
def step_peer_subject(context):
    _ready_container(context)
    recorded = context.deployment.peer_subject(context.sandbox)
    context.evidence(
        evidence.text("Peer subject recorded by the gateway", str(recorded))
    )

    assert_that(recorded, matchers.same_distinguished_name(context.text.strip()))


@then("the container has these read-only bind mounts:")
def step_read_only_mounts(context):
    mounts = _ready_container(context).mounts
    material = context.deployment.pki
    context.evidence(evidence.mapping("Container mounts", mounts))

    for row in context.table:
        source = getattr(material, GUEST_TLS_FILES[row["guest TLS file"]])
        assert_that(
            mounts,
            matchers.has_read_only_bind(
                row["container path"], source, selinux=context.run.podman.selinux
            ),
        )


@then("the container environment holds:")
def step_environment(context):
    container = _ready_container(context)
    port = str(context.deployment.settings.port)
    expected = {
        row["variable"]: row["value"].replace("<gateway port>", port)
        for row in context.table
    }
    context.evidence(evidence.mapping("Container environment", container.environment))

    assert_that(container.environment, has_entries(expected))


@then("the OPENSHELL_TLS_* variables hold paths, never certificate or key content")
def step_tls_variables_are_paths(context):
    env = _ready_container(context).openshell_environment()
    tls = {
        name: value for name, value in env.items() if name.startswith("OPENSHELL_TLS_")
    }
    context.evidence(evidence.mapping("OPENSHELL_TLS_* variables", tls))

    assert_that(
        sorted(tls),
        equal_to(["OPENSHELL_TLS_CA", "OPENSHELL_TLS_CERT", "OPENSHELL_TLS_KEY"]),
    )
    for value in tls.values():
        assert_that(value, matches_regexp(r"^/[^\n]*$"))
        assert_that(value, is_not(contains_string("-----BEGIN")))


@then("the container metadata holds no private key material")
def step_no_key_material(context):
    container = _ready_container(context)
    material = context.deployment.pki
    found = container.key_material_found([material.client_key, material.server_key])
    context.evidence(
        evidence.table(
            "Key material in inspect output",
            [
                ("findings", ", ".join(found) or "none"),
            ],
        )
    )

    assert_that(found, empty())


@then("writing to each mounted TLS file from inside the sandbox fails as read-only")
def step_write_fails(context):
    container = _ready_container(context)
    podman = context.run.podman
    results = {
        path: inside.try_write(podman, container.id, path)
        for path in GUEST_TLS_PATHS.values()
    }
    context.evidence(evidence.mapping("Write attempts from inside", results))

    for path, (code, output) in results.items():
        assert_that(code, matchers.nonzero_exit(), path)
        assert_that(output, contains_string("Read-only file system"))


@then(
    "from inside the sandbox, each host alias answers mutual TLS on the gateway port:"
)
def step_aliases_answer(context):
    container = _ready_container(context)
    port = context.deployment.settings.port
    answers = [
        inside.dial_alias(context.run.podman, container.id, row["alias"], port)
        for row in context.table
    ]
    context.evidence(
        evidence.table(
            "Dialled from inside the sandbox", [(a.alias, a.line) for a in answers]
        )
    )

    assert_that(
        container.environment["OPENSHELL_ENDPOINT"],
        equal_to(f"https://host.containers.internal:{port}"),
    )
    for answer in answers:
        assert_that(answer.line, starts_with("ok "), answer.alias)


@then("the driver's values win for {names}")
def step_driver_values_win(context, names):
    container = _ready_container(context)
    port = context.deployment.settings.port
    driver_values = {
        "OPENSHELL_ENDPOINT": f"https://host.containers.internal:{port}",
        "OPENSHELL_TLS_CA": GUEST_TLS_PATHS["guest_tls_ca"],
        "OPENSHELL_TLS_CERT": GUEST_TLS_PATHS["guest_tls_cert"],
        "OPENSHELL_TLS_KEY": GUEST_TLS_PATHS["guest_tls_key"],
        "OPENSHELL_SANDBOX_ID": context.sandbox.id,
    }
    expected = {name: driver_values[name] for name in _names(names)}
    context.evidence(evidence.mapping("Asked for", context.user_environment))
    context.evidence(evidence.mapping("Got", container.openshell_environment()))

    assert_that(container.environment, has_entries(expected))


def _names(text: str) -> list[str]:
    return _keys(text.replace(" and ", ", "))


@then("the container has no OPENSHELL_GATEWAY_TLS_SERVER_NAME variable")
def step_no_server_name_override(context):
    env = _ready_container(context).environment
    context.evidence(
        evidence.table(
            "OPENSHELL_GATEWAY_TLS_SERVER_NAME",
            [("present", "OPENSHELL_GATEWAY_TLS_SERVER_NAME" in env)],
        )
    )

    assert_that(list(env), is_not(has_item("OPENSHELL_GATEWAY_TLS_SERVER_NAME")))


@then("the sandbox does not become ready, and the reported cause is {cause}")
def step_not_ready_with_cause(context, cause):
    failure = context.sandbox_failure
    log = context.deployment.supervisor_log(context.sandbox)
    context.evidence(
        evidence.table(
            "Outcome",
            [
                ("reported cause", failure),
                ("after seconds", f"{context.time_to_ready:.1f}"),
            ],
        )
    )
    context.evidence(evidence.text("Supervisor log", "\n".join(log)))

    assert_that(failure, is_not(equal_to(None)), "the sandbox became ready")
    message = str(failure)
    assert_that(message, is_not(contains_string("\n")))
    if cause.startswith("a refused connection"):
        port = context.deployment.settings.port
        pattern = rf"connection refused by host\.containers\.internal:{port}\b"
    else:
        pattern = CAUSES[cause]
    assert_that(message, matches_regexp(pattern))


@then("the sandbox was created through the configured socket")
def step_created_through_socket(context):
    _ready_container(context)
    requests = context.deployment.recorded_podman_requests()
    context.evidence(
        evidence.text("Requests through the configured socket", "\n".join(requests))
    )

    assert_that(requests, has_items(matches_regexp(r"^POST \S*/containers/create")))
