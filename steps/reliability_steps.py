"""Steps for reliability: bad input, many sandboxes, a gateway that goes away."""

from __future__ import annotations

from behave import given, then, when
from hamcrest import (
    all_of,
    assert_that,
    contains_string,
    empty,
    equal_to,
    greater_than_or_equal_to,
    has_length,
    less_than_or_equal_to,
    matches_regexp,
    not_none,
    only_contains,
    starts_with,
)

from openshell_acceptance import bad_input, evidence, load, matchers

# What a reader calls a spoiled input, as the library names the fault.
BAD_INPUTS = {
    ("configuration file", "not valid TOML"): "config-not-toml",
    ("driver table", "given a key no gateway knows"): "config-unknown-key",
    ("configuration version", "newer than the gateway knows"): "config-newer-version",
    ("certificate path", "a path where no file exists"): "cert-missing",
    ("key path", "a directory, not a file"): "key-unreadable",
    ("key", "the client's key, not the gateway's"): "key-mismatch",
    ("certificate", "DER, not PEM"): "cert-not-pem",
    ("client CA", "a leaf certificate, not a CA"): "client-ca-leaf",
    ("certificate", "an empty file"): "cert-empty",
    ("gRPC port", "taken by another listener"): "port-taken",
}
# What a reader says is wrong, as the text the gateway's line carries.
REASONS = {
    "it is not valid TOML": r"is not valid TOML",
    "the key is unknown": r"unknown key",
    "the version is newer than it knows": r"newer than this gateway understands",
    "it does not exist": r"does not exist",
    "it cannot be read": r"is a directory|is not readable|cannot read",
    "they do not match": r"does not match",
    "it is not PEM": r"holds no PEM",
    "it is not a CA": r"holds no CA certificate",
    "it is empty": r"is empty",
    "it is already in use": r"already in use",
}
READY_WITHIN = 60.0
CLIENT_SUBJECT = "CN=openshell-client,OU=openshell-user"


def _attach_network_views(context, readiness) -> None:
    """For sandboxes that were not ready: the network, and each one's link."""
    late = [r for r in readiness if not r.ready]
    if not late:
        return
    context.evidence(
        evidence.mapping("The sandbox network", load.network_view(context.deployment))
    )
    for r in late:
        if r.network is not None:
            context.evidence(
                evidence.mapping(
                    f"Network of {r.sandbox.name}, while it ran", r.network
                )
            )


def _phrases(text: str) -> list[str]:
    return [part.strip() for part in text.split(" and ") if part.strip()]


# Bad input


@given("a gateway whose {part} is {flaw}")
def step_gateway_with_bad_input(context, part, flaw):
    fault = BAD_INPUTS[(part, flaw)]
    context.bad_input = bad_input.prepare(context.deployment, fault)
    context.add_cleanup(context.bad_input.release)
    for item in context.bad_input.evidence():
        context.evidence(item)


@then("it exits with code 2 and one line that names {what} and says {why}")
def step_refused_in_one_line(context, what, why):
    refusal = context.refusal
    lines = [line for line in refusal.output.splitlines() if line.strip()]
    named = {phrase: context.bad_input.names(phrase) for phrase in _phrases(what)}
    context.evidence(
        evidence.table(
            "Refusal",
            [("exit code", refusal.returncode), ("lines", len(lines))]
            + [(f"names {phrase}", text) for phrase, text in named.items()],
        )
    )

    assert_that(refusal.returncode, equal_to(2), "exit code")
    assert_that(lines, has_length(1), "lines of output")
    line = lines[0]
    assert_that(line, starts_with("openshell-reference-gateway: error: "))
    assert_that(line, all_of(*(contains_string(text) for text in named.values())))
    assert_that(line, matches_regexp(REASONS[why]))


@then(
    "it left nothing behind: no port of its own answers and no sandbox container exists"
)
def step_nothing_left(context):
    left = bad_input.what_is_left(context.deployment, context.bad_input)
    context.evidence(evidence.mapping("Left behind", left))

    assert_that(left["listening ports"], empty(), "ports still answering")
    assert_that(left["sandbox containers"], empty(), "sandbox containers")


# Many sandboxes at once


@when("{count:d} sandboxes start at once")
def step_many_sandboxes(context, count):
    context.started = load.start_at_once(context.deployment, count)


@then("every one of them becomes ready over mTLS within {seconds:d} seconds")
def step_all_ready(context, seconds):
    readiness = load.wait_all_ready(
        context.deployment, context.started, timeout=float(seconds)
    )
    context.readiness = readiness
    context.evidence(
        evidence.table(
            "Time to ready, from the create call",
            [
                (r.sandbox.name, f"{r.seconds:.2f}s" if r.ready else r.cause)
                for r in readiness
            ],
        )
    )
    endpoints = load.endpoints(context.deployment, [r.sandbox for r in readiness])
    _attach_network_views(context, readiness)
    context.evidence(evidence.mapping("OPENSHELL_ENDPOINT per sandbox", endpoints))

    assert_that([r.cause for r in readiness if not r.ready], empty(), "not ready")
    assert_that(list(endpoints.values()), only_contains(starts_with("https://")))


@then("each supervisor holds a session of its own, under the client certificate")
def step_own_sessions(context):
    deployment = context.deployment
    sandbox_ids = {entry.sandbox.id for entry in context.started}
    accepted = [
        s
        for s in load.sessions(deployment.gateway.log())
        if s.sandbox_id in sandbox_ids
    ]
    subjects = {
        entry.sandbox.name: deployment.peer_subject(entry.sandbox)
        for entry in context.started
    }
    context.evidence(
        evidence.table(
            "Sessions the gateway accepted",
            [
                (s.sandbox_id, f"{s.session_id} {s.transport} {s.peer_subject}")
                for s in accepted
            ],
        )
    )
    context.evidence(evidence.mapping("Peer subject per sandbox", subjects))

    assert_that({s.sandbox_id for s in accepted}, equal_to(sandbox_ids))
    assert_that(
        len({s.session_id for s in accepted}), equal_to(len(accepted)), "distinct"
    )
    assert_that(len(accepted), equal_to(len(sandbox_ids)), "one session each")
    assert_that({s.transport for s in accepted}, equal_to({"ssl"}), "transport")
    for name, subject in subjects.items():
        assert_that(subject, matchers.same_distinguished_name(CLIENT_SUBJECT), name)


# The gateway goes away


@given("{count:d} sandboxes whose supervisors are connected")
def step_connected_sandboxes(context, count):
    context.started = load.start_at_once(context.deployment, count)
    readiness = load.wait_all_ready(
        context.deployment, context.started, timeout=READY_WITHIN
    )
    not_ready = [f"{r.sandbox.name}: {r.cause}" for r in readiness if not r.ready]
    assert_that(not_ready, empty(), "sandboxes not ready")
    context.sessions_before = load.sessions(context.deployment.gateway.log())


@given(
    "a sandbox whose supervisor is connected and gives up reconnecting "
    "after {seconds:d} seconds"
)
def step_connected_with_bound(context, seconds):
    environment = {load.CONNECT_TIMEOUT_VARIABLE: str(seconds)}
    context.retry_bound = float(seconds)
    context.started = load.start_at_once(context.deployment, 1, environment=environment)
    context.sandbox = context.started[0].sandbox
    context.deployment.wait_ready(context.sandbox, timeout=READY_WITHIN)


@when(
    "the gateway is stopped with SIGTERM and started again "
    "on the same ports with the same configuration"
)
def step_restart_gateway(context):
    context.restart = load.restart_gateway(context.deployment)
    restart = context.restart
    context.evidence(
        evidence.table(
            "Restart",
            [
                ("stopped process", restart.stopped.pid),
                ("its exit code", restart.stopped.exit_code),
                ("started process", restart.pid),
                ("healthy again after", f"{restart.seconds_to_healthy:.2f}s"),
            ],
        )
    )
    context.evidence(evidence.text("Log of the stopped gateway", restart.stopped.log))


@when("the gateway stops for good")
def step_gateway_stops(context):
    context.stopped = load.stop_gateway(context.deployment)
    context.evidence(
        evidence.table(
            "Gateway stopped",
            [
                ("process", context.stopped.pid),
                ("exit code", context.stopped.exit_code),
            ],
        )
    )


@then("every supervisor reconnects over mTLS within {seconds:d} seconds")
def step_reconnected(context, seconds):
    since = context.restart.stopped.at
    again = [load.Started(entry.sandbox, since) for entry in context.started]
    readiness = load.wait_all_ready(context.deployment, again, timeout=float(seconds))
    _attach_network_views(context, readiness)
    context.evidence(
        evidence.table(
            "Ready again, from the SIGTERM",
            [
                (r.sandbox.name, f"{r.seconds:.2f}s" if r.ready else r.cause)
                for r in readiness
            ],
        )
    )

    assert_that([r.cause for r in readiness if not r.ready], empty(), "not ready")
    assert_that(context.restart.stopped.exit_code, equal_to(0), "SIGTERM exit code")


@then("the gateway accepted a new session from each")
def step_new_sessions(context):
    deployment = context.deployment
    before = {s.session_id for s in context.sessions_before}
    sandbox_ids = {entry.sandbox.id for entry in context.started}
    after = [
        s
        for s in load.sessions(deployment.gateway.log())
        if s.sandbox_id in sandbox_ids
    ]
    context.evidence(
        evidence.table(
            "Sessions after the restart",
            [(s.sandbox_id, f"{s.session_id} {s.transport}") for s in after],
        )
    )
    context.evidence(
        evidence.text("Log of the restarted gateway", deployment.gateway.log())
    )

    assert_that({s.sandbox_id for s in after}, equal_to(sandbox_ids))
    assert_that([s.session_id for s in after if s.session_id in before], empty())
    assert_that({s.transport for s in after}, equal_to({"ssl"}), "transport")


@then("the supervisor logs each retry, at intervals that grow")
def step_retries_grow(context):
    bound = context.retry_bound
    code, exited_at = load.wait_exited(
        context.deployment, context.sandbox, timeout=bound + 30.0
    )
    context.exit_code = code
    context.gave_up_after = (
        exited_at - context.stopped.at if exited_at is not None else None
    )
    lines = context.deployment.supervisor_log(context.sandbox)
    context.schedule = load.retry_schedule(lines)
    context.evidence(evidence.table("Retries", context.schedule.rows()))
    context.evidence(evidence.text("Supervisor log", "\n".join(lines)))

    assert_that(len(context.schedule.delays), greater_than_or_equal_to(3), "retries")
    assert_that(context.schedule.growing, equal_to(True), "intervals grow")


@then("it stops retrying at its bound and exits, naming the cause in its last line")
def step_gives_up(context):
    bound = context.retry_bound
    schedule = context.schedule
    context.evidence(
        evidence.table(
            "Giving up",
            [
                ("bound", f"{bound:g}s"),
                ("waited between attempts", f"{schedule.total_wait:.2f}s"),
                ("exited after the stop", _seconds(context.gave_up_after)),
                ("exit code", context.exit_code),
            ],
        )
    )

    assert_that(context.gave_up_after, not_none(), "the supervisor still runs")
    assert_that(context.exit_code, equal_to(1), "exit code")
    assert_that(schedule.total_wait, less_than_or_equal_to(bound), "waited")
    assert_that(context.gave_up_after, greater_than_or_equal_to(bound - 1.0))
    assert_that(context.gave_up_after, less_than_or_equal_to(bound + 10.0))
    assert_that(schedule.gave_up_after, equal_to(len(schedule.delays) + 1))
    port = context.deployment.settings.port
    assert_that(
        schedule.last_line,
        matches_regexp(
            rf"^error: connection refused by host\.containers\.internal:{port}"
        ),
    )


def _seconds(value: float | None) -> str:
    return "still running" if value is None else f"{value:.1f}s"
