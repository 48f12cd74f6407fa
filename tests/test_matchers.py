"""The suite's matchers accept what the contract says and reject the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hamcrest import assert_that

from openshell_acceptance import matchers
from openshell_acceptance.container import Mount


def mount(**overrides) -> dict[str, Mount]:
    values = dict(
        type="bind",
        source="/pki/ca.crt",
        destination="/etc/openshell/tls/client/ca.crt",
        read_only=True,
        options=("rbind",),
    )
    values.update(overrides)
    return {values["destination"]: Mount(**values)}


def test_read_only_bind_matches_the_contract_mount():
    assert_that(
        mount(),
        matchers.has_read_only_bind(
            "/etc/openshell/tls/client/ca.crt", Path("/pki/ca.crt"), selinux=False
        ),
    )


@pytest.mark.parametrize(
    "overrides, selinux, problem",
    [
        ({"read_only": False}, False, "it is writable"),
        ({"options": ()}, False, "lack rbind"),
        ({"options": ("rbind", "z")}, False, "SELinux off"),
        ({}, True, "SELinux on"),
        ({"source": "/other"}, False, "source is /other"),
        ({"type": "volume"}, False, "type is volume"),
    ],
)
def test_read_only_bind_names_what_is_wrong(overrides, selinux, problem):
    matcher = matchers.has_read_only_bind(
        "/etc/openshell/tls/client/ca.crt", Path("/pki/ca.crt"), selinux=selinux
    )

    with pytest.raises(AssertionError, match=problem):
        assert_that(mount(**overrides), matcher)


def test_distinguished_names_compare_in_any_order():
    assert_that(
        "OU=openshell-user,CN=openshell-client",
        matchers.same_distinguished_name("CN=openshell-client,OU=openshell-user"),
    )
    with pytest.raises(AssertionError):
        assert_that(
            "CN=someone-else,OU=openshell-user",
            matchers.same_distinguished_name("CN=openshell-client,OU=openshell-user"),
        )


def test_driver_field_is_named_by_flag_or_variable():
    output = "error: missing --podman-tls-key / OPENSHELL_PODMAN_TLS_KEY"

    assert_that(output, matchers.names_driver_field("guest_tls_key"))
    with pytest.raises(AssertionError):
        assert_that(output, matchers.names_driver_field("guest_tls_ca"))


def test_nonzero_exit_rejects_success_and_a_process_still_running():
    assert_that(2, matchers.nonzero_exit())
    for code in (0, -1):
        with pytest.raises(AssertionError):
            assert_that(code, matchers.nonzero_exit())
