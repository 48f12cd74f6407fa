"""Steps for what rootful and rootless Podman change: key ownership, addresses."""

from __future__ import annotations

from behave import then, when
from hamcrest import (
    assert_that,
    contains_string,
    equal_to,
    is_not,
    matches_regexp,
    none,
    only_contains,
)

from openshell_acceptance import (
    GUEST_TLS_PATHS,
    ContainerView,
    SandboxNotReady,
    evidence,
    lanes,
)

CLIENT_KEY = GUEST_TLS_PATHS["guest_tls_key"]
LOOPBACK = "127.0.0.1"
ENDPOINT_ALIAS = "host.containers.internal"


def _running_container(context) -> ContainerView:
    failure = getattr(context, "sandbox_failure", None)
    if failure is not None:
        raise AssertionError(f"the sandbox did not become ready: {failure}")
    return context.container


def _lane_evidence(context) -> None:
    lane = context.run.podman.lane()
    context.evidence(evidence.mapping("Lane", lane.details()))


def _aliases(context) -> dict[str, str | None]:
    container = _running_container(context)
    return {row["alias"]: container.host_address(row["alias"]) for row in context.table}


# The client key inside the sandbox


@then("inside the sandbox the client key is owned by {owner} with mode {mode}")
def step_key_inside(context, owner, mode):
    container = _running_container(context)
    seen = lanes.file_inside(context.run.podman, container.id, CLIENT_KEY)
    _lane_evidence(context)
    context.evidence(evidence.table("Inside the sandbox", [(CLIENT_KEY, str(seen))]))

    assert_that(f"{seen.uid}:{seen.gid}", equal_to(owner), "owner inside")
    assert_that(f"{seen.mode:04o}", equal_to(mode), "mode inside")


@then(
    "the supervisor runs as the host user who owns the client key file, "
    "which only its owner may read"
)
def step_supervisor_owns_key(context):
    container = _running_container(context)
    key = lanes.file_on_host(context.deployment.pki.client_key)
    pid = int(container.inspect["State"]["Pid"])
    supervisor_uid = lanes.process_uid_on_host(pid)
    context.evidence(
        evidence.table(
            "On the host",
            [
                ("client key file", f"{context.deployment.pki.client_key} {key}"),
                ("supervisor process", f"pid {pid}, uid {supervisor_uid}"),
                ("sandbox uid map", _id_map_text(pid)),
            ],
        )
    )

    assert_that(supervisor_uid, equal_to(key.uid), "the supervisor's host user")
    assert_that(key.owner_only, equal_to(True), f"key file mode {key.mode:04o}")


def _id_map_text(pid: int) -> str:
    ranges = lanes.id_map(pid)
    return "; ".join(f"{r.inside}->{r.outside} ({r.size})" for r in ranges)


# Remapped user IDs


@when("a sandbox whose user IDs are remapped starts")
def step_remapped_sandbox_starts(context):
    deployment = context.deployment
    context.sandbox_failure = None
    context.sandbox = deployment.start_sandbox(user_namespaces=True)
    try:
        context.sandbox_ref = deployment.wait_ready(context.sandbox)
    except SandboxNotReady as exc:
        context.sandbox_failure = exc
    inspect = deployment.container(context.sandbox)
    context.container = ContainerView(inspect) if inspect else None


@then(
    "the sandbox does not become ready, and the supervisor's one-line cause is "
    "that it cannot read the client key"
)
def step_key_unreadable(context):
    failure = context.sandbox_failure
    inspect = context.container.inspect if context.container else {}
    host_config = inspect.get("HostConfig") or {}
    _lane_evidence(context)
    context.evidence(
        evidence.table(
            "Outcome",
            [
                ("reported cause", failure),
                ("ID mappings", host_config.get("IDMappings") or "(none)"),
                ("container user", (inspect.get("Config") or {}).get("User")),
            ],
        )
    )
    log = context.deployment.supervisor_log(context.sandbox)
    context.evidence(evidence.text("Supervisor log", "\n".join(log)))

    assert_that(failure, is_not(none()), "the sandbox became ready")
    message = str(failure)
    assert_that(message, is_not(contains_string("\n")))
    assert_that(
        message, matches_regexp(rf"cannot read OPENSHELL_TLS_KEY={CLIENT_KEY}: ")
    )
    assert_that(message, contains_string("Permission denied"))


@then("the client key file on the host is readable by its owner only")
def step_key_owner_only_on_host(context):
    path = context.deployment.pki.client_key
    key = lanes.file_on_host(path)
    context.evidence(evidence.table("On the host", [(str(path), str(key))]))

    assert_that(key.owner_only, equal_to(True), f"key file mode {key.mode:04o}")


# Where the gateway listens, and what the host aliases name


@then(
    "the gateway port listens on loopback and on the address the host aliases "
    "name, and nowhere else"
)
def step_listen_addresses(context):
    container = _running_container(context)
    port = context.deployment.settings.port
    alias_address = container.host_address(ENDPOINT_ALIAS)
    found = lanes.listening_addresses(port)
    _lane_evidence(context)
    context.evidence(
        evidence.table(
            "Listening on the gateway port",
            [
                ("port", port),
                ("addresses", ", ".join(sorted(found))),
                (ENDPOINT_ALIAS, alias_address),
            ],
        )
    )

    assert_that(found, equal_to({LOOPBACK, alias_address}))


@then(
    "each host alias names the gateway address of the sandbox network, "
    "which this host holds:"
)
def step_aliases_name_network_gateway(context):
    aliases = _aliases(context)
    gateway = context.run.podman.network_gateway(context.deployment.network_name)
    _lane_evidence(context)
    context.evidence(evidence.mapping("Host aliases inside the sandbox", aliases))
    context.evidence(
        evidence.table(
            "Sandbox network",
            [("gateway address", gateway), ("held by this host", _held(gateway))],
        )
    )

    assert_that(list(aliases.values()), only_contains(equal_to(gateway)))
    assert_that(_held(gateway), equal_to(True), f"{gateway} held by this host")


@then("each host alias names an address this host holds, other than loopback:")
def step_aliases_name_host_address(context):
    aliases = context.alias_addresses = _aliases(context)
    held = {alias: _held(address) for alias, address in aliases.items()}
    _lane_evidence(context)
    context.evidence(evidence.mapping("Host aliases inside the sandbox", aliases))
    context.evidence(evidence.mapping("Held by this host", held))

    for alias, address in aliases.items():
        assert_that(address, is_not(none()), alias)
        assert_that(address, is_not(matches_regexp(r"^127\.")), alias)
        assert_that(held[alias], equal_to(True), f"{alias} {address}")


@then("no host alias names the gateway address of the sandbox network")
def step_aliases_avoid_network_gateway(context):
    aliases = context.alias_addresses
    gateway = context.run.podman.network_gateway(context.deployment.network_name)
    context.evidence(
        evidence.table(
            "Sandbox network",
            [
                ("gateway address", gateway),
                ("where it lives", "Podman's rootless network namespace"),
            ],
        )
    )

    for alias, address in aliases.items():
        assert_that(address, is_not(equal_to(gateway)), alias)


def _held(address: str | None) -> bool:
    return bool(address) and lanes.is_host_address(address)
