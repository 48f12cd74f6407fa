"""Each bad input the library writes makes the reference gateway refuse, in one line.

The gateway checks its configuration and TLS files before it calls Podman, so
these run without Podman: the socket it is given does not exist. The taken
port needs Podman (the gateway binds after it connects) and is left to the
acceptance run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openshell_acceptance import Deployment, bad_input
from openshell_acceptance.podman import PodmanService
from openshell_acceptance.targets import select_target

REFUSED = {
    "config-not-toml": r"is not valid TOML",
    "config-unknown-key": r"unknown key 'guest_tls_certificate'",
    "config-newer-version": r"newer than this gateway understands",
    "cert-missing": r"does not exist",
    "key-unreadable": r"is a directory",
    "key-mismatch": r"does not match",
    "cert-not-pem": r"holds no PEM certificate",
    "client-ca-leaf": r"holds no CA certificate",
    "cert-empty": r"is empty",
}


def _deployment(tmp_path: Path) -> Deployment:
    podman = PodmanService(tmp_path / "podman")
    podman.socket_path = str(tmp_path / "no-podman.sock")
    deployment = Deployment(
        target=select_target({"sandbox_image": "localhost/unit-sandbox:1"}),
        podman=podman,
        workdir=tmp_path,
        network_name="openshell-unit",
        run_id="unit",
    )
    deployment.create_pki()
    return deployment


def test_every_fault_but_the_port_is_covered_here() -> None:
    assert set(REFUSED) | {"port-taken"} == set(bad_input.FAULTS)


@pytest.mark.parametrize("fault", sorted(REFUSED))
def test_the_gateway_refuses_in_one_line_naming_the_input(tmp_path, fault) -> None:
    deployment = _deployment(tmp_path)
    bad = bad_input.prepare(deployment, fault)

    refusal = deployment.expect_refusal(timeout=30)

    lines = [line for line in refusal.output.splitlines() if line.strip()]
    assert refusal.returncode == 2, refusal.output
    assert len(lines) == 1, refusal.output
    assert lines[0].startswith("openshell-reference-gateway: error: ")
    assert re.search(REFUSED[fault], lines[0]), lines[0]
    for text in bad.named.values():
        assert text in lines[0]
    assert refusal.listening == ()


def test_a_taken_port_is_held_until_released(tmp_path) -> None:
    deployment = _deployment(tmp_path)
    bad = bad_input.prepare(deployment, "port-taken")
    assert deployment.settings is not None
    assert deployment.listening(deployment.settings.port)

    bad.release()

    assert not deployment.listening(deployment.settings.port)


def test_an_unknown_phrase_says_which_ones_are_known(tmp_path) -> None:
    bad = bad_input.prepare(_deployment(tmp_path), "cert-empty")

    with pytest.raises(KeyError, match="the certificate file"):
        bad.names("the moon")
