"""Choosing a target from -D parameters fails fast, with the fix named."""

from __future__ import annotations

import pytest

from openshell_acceptance.errors import ParameterError
from openshell_acceptance.targets import select_target


def test_reference_is_the_default_and_uses_the_suite_pki():
    target = select_target({}, sandbox_image="img:1")

    assert target.name == "reference"
    assert target.pki_source == "suite"
    assert target.command[0].endswith("openshell-reference-gateway")
    assert target.sandbox_image == "img:1"


def test_unknown_target_is_refused():
    with pytest.raises(ParameterError, match="target=docker is unknown"):
        select_target({"target": "docker"}, sandbox_image="img:1")


def test_openshell_target_needs_a_gateway_binary():
    with pytest.raises(ParameterError, match="needs -D gateway_bin=PATH"):
        select_target({"target": "openshell"}, sandbox_image="img:1")


def test_openshell_target_refuses_a_file_that_is_not_executable(tmp_path):
    binary = tmp_path / "openshell-gateway"
    binary.write_text("not a program")

    with pytest.raises(ParameterError, match="is not an executable file"):
        select_target(
            {"target": "openshell", "gateway_bin": str(binary)}, sandbox_image="i"
        )


def test_openshell_target_defaults_to_the_gateway_pki(tmp_path):
    binary = tmp_path / "openshell-gateway"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)

    target = select_target(
        {"target": "openshell", "gateway_bin": str(binary), "supervisor_image": "s:1"},
        sandbox_image="img:1",
    )

    assert target.pki_source == "gateway"
    assert target.supervisor_image == "s:1"
    assert target.command == (str(binary),)
