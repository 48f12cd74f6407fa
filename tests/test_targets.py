"""Choosing a target from -D parameters fails fast, with the fix named."""

from __future__ import annotations

import textwrap

import pytest

from openshell_acceptance.errors import ParameterError
from openshell_acceptance.targets import select_target


def fake_binary(tmp_path, help_text: str, name: str = "openshell-gateway"):
    binary = tmp_path / name
    body = textwrap.dedent(
        f"""\
        #!/bin/sh
        cat <<'HELP'
        {help_text}
        HELP
        """
    )
    binary.write_text(body)
    binary.chmod(0o755)
    return binary


GATEWAY_HELP = "Usage: openshell-gateway [--tls-client-ca PATH] [--health-port N]"


def test_reference_is_the_default_and_uses_the_suite_pki():
    target = select_target({})

    assert target.name == "reference"
    assert target.pki_source == "suite"
    assert target.command[0].endswith("openshell-reference-gateway")
    assert target.sandbox_image is None
    assert target.with_sandbox_image("img:1").sandbox_image == "img:1"


def test_a_chosen_sandbox_image_is_kept():
    target = select_target({"sandbox_image": "mine:2"})

    assert target.with_sandbox_image("suite:1").sandbox_image == "mine:2"
    assert target.named_images == (("sandbox_image", "mine:2"),)
    assert target.with_sandbox_image("suite:1").named_images == (
        ("sandbox_image", "mine:2"),
    )


def test_unknown_target_is_refused():
    with pytest.raises(ParameterError, match="target=docker is unknown"):
        select_target({"target": "docker"})


def test_unknown_pki_source_is_refused():
    with pytest.raises(ParameterError, match="pki=openssl is unknown"):
        select_target({"pki": "openssl"})


def test_openshell_target_needs_a_gateway_binary():
    with pytest.raises(ParameterError, match="needs -D gateway_bin=PATH"):
        select_target({"target": "openshell"})


def test_openshell_target_refuses_a_file_that_is_not_executable(tmp_path):
    binary = tmp_path / "openshell-gateway"
    binary.write_text("not a program")

    with pytest.raises(ParameterError, match="is not an executable file"):
        select_target({"target": "openshell", "gateway_bin": str(binary)})


def test_openshell_target_refuses_an_executable_that_is_not_a_gateway(tmp_path):
    binary = fake_binary(tmp_path, "usage: true [ignored command line arguments]")

    with pytest.raises(ParameterError, match="does not look like openshell-gateway"):
        select_target({"target": "openshell", "gateway_bin": str(binary)})


def test_openshell_target_refuses_a_binary_that_hangs(tmp_path, monkeypatch):
    binary = tmp_path / "openshell-gateway"
    binary.write_text("#!/bin/sh\nexec sleep 30\n")
    binary.chmod(0o755)
    monkeypatch.setattr("openshell_acceptance.targets.HELP_TIMEOUT", 0.5)

    with pytest.raises(ParameterError, match="did not answer --help"):
        select_target({"target": "openshell", "gateway_bin": str(binary)})


def test_openshell_target_needs_a_supervisor_image(tmp_path):
    binary = fake_binary(tmp_path, GATEWAY_HELP)

    with pytest.raises(ParameterError, match="needs -D supervisor_image=IMAGE"):
        select_target({"target": "openshell", "gateway_bin": str(binary)})


def test_openshell_target_defaults_to_the_gateway_pki(tmp_path):
    binary = fake_binary(tmp_path, GATEWAY_HELP)

    target = select_target(
        {"target": "openshell", "gateway_bin": str(binary), "supervisor_image": "s:1"}
    )

    assert target.pki_source == "gateway"
    assert target.supervisor_image == "s:1"
    assert target.command == (str(binary),)
    assert target.with_sandbox_image("img:1").named_images == (
        ("sandbox_image", "img:1"),
        ("supervisor_image", "s:1"),
    )


def test_a_mistyped_parameter_is_refused_with_the_one_it_resembles():
    with pytest.raises(
        ParameterError,
        match=r"-D sandbox_imag is not a parameter of this suite; "
        r"did you mean -D sandbox_image\? use one of: target, ",
    ):
        select_target({"sandbox_imag": "mine:2"})


def test_a_parameter_the_suite_does_not_read_is_refused():
    with pytest.raises(ParameterError, match="-D podman_socket is not a parameter"):
        select_target({"podman_socket": "/tmp/podman.sock"})


def test_behaves_own_settings_pass_as_they_are():
    target = select_target({"behave.formatter.html-pretty.title_string": "T"})

    assert target.name == "reference"


def test_a_tshark_that_cannot_be_run_is_refused_before_any_scenario(tmp_path):
    missing = tmp_path / "tshark"

    with pytest.raises(ParameterError, match=f"-D tshark={missing} is not an exec"):
        select_target({"tshark": str(missing)})


def test_a_tshark_on_path_is_taken(tmp_path):
    fake = fake_binary(tmp_path, "TShark", name="tshark")

    assert select_target({"tshark": str(fake)}).name == "reference"
