"""The bridge's pinned address: made from its IP, and left alone once set."""

from __future__ import annotations

from pathlib import Path

import pytest

from openshell_acceptance import bridge


def test_the_address_is_local_unicast_and_names_the_bridge_ip() -> None:
    mac = bridge.bridge_mac("10.89.3.1")

    assert mac == "02:6f:0a:59:03:01"
    first = int(mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b01


def test_a_bridge_whose_address_was_set_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interface = tmp_path / "podman7"
    interface.mkdir()
    (interface / "addr_assign_type").write_text("3\n")
    (interface / "address").write_text("0a:58:0a:59:07:01\n")
    monkeypatch.setattr(bridge, "NET", tmp_path)

    note = bridge.pin_address("podman7", bridge.bridge_mac("10.89.7.1"))

    assert note == "kept the address 0a:58:0a:59:07:01 it was given"
