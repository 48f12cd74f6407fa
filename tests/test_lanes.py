"""What the lane scenarios read from the kernel: ID maps, listeners, addresses."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from openshell_acceptance.lanes import (
    FileOwner,
    IdRange,
    container_root_on_host,
    file_on_host,
    host_id,
    is_host_address,
    listening_addresses,
    parse_id_map,
    parse_listeners,
    process_uid_on_host,
)

ROOTLESS_MAP = "         0       1001          1\n         1     100000      65536\n"
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue
   0: 0100007F:4512 00000000:0000 0A 00000000:00000000
   1: 020200C0:4512 00000000:0000 0A 00000000:00000000
   2: 0100007F:4513 00000000:0000 0A 00000000:00000000
   3: 0100007F:4512 0100007F:A040 01 00000000:00000000
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:4512 00000000000000000000000000000000:0000 0A
   1: 0000000000000000FFFF00000100007F:4512 00000000000000000000000000000000:0000 0A
"""


def test_a_rootless_map_reads_as_ranges():
    assert parse_id_map(ROOTLESS_MAP) == [
        IdRange(0, 1001, 1),
        IdRange(1, 100000, 65536),
    ]


def test_ids_map_within_their_range_and_not_outside_it():
    ranges = parse_id_map(ROOTLESS_MAP)

    assert host_id(ranges, 0) == 1001
    assert host_id(ranges, 1) == 100000
    assert host_id(ranges, 65536) == 165535
    assert host_id(ranges, 65537) is None


def test_a_process_of_the_host_namespace_maps_root_to_root():
    inspect = {"State": {"Pid": os.getpid()}}

    assert container_root_on_host(inspect) == 0


def test_this_process_runs_as_its_own_user():
    assert process_uid_on_host(os.getpid()) == os.geteuid()


def test_a_container_without_a_process_has_no_root_on_the_host():
    assert container_root_on_host({"State": {"Pid": 0}}) is None


def test_listeners_are_read_for_one_port_in_listen_state_only():
    assert parse_listeners(TCP, 0x4512) == {"127.0.0.1", "192.0.2.2"}


def test_ipv6_listeners_show_the_wildcard_and_mapped_ipv4_addresses():
    assert parse_listeners(TCP6, 0x4512) == {"::", "127.0.0.1"}


def test_a_socket_of_this_process_is_found_listening():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        assert listening_addresses(port) == {"127.0.0.1"}


def test_loopback_is_a_host_address_and_a_documentation_address_is_not():
    assert is_host_address("127.0.0.1")
    assert not is_host_address("203.0.113.254")


def test_a_file_on_the_host_shows_its_owner_and_mode(tmp_path: Path):
    key = tmp_path / "tls.key"
    key.write_text("x")
    key.chmod(0o600)

    owner = file_on_host(key)

    assert owner == FileOwner(os.getuid(), os.getgid(), 0o600)
    assert owner.owner_only
    assert str(owner) == f"{os.getuid()}:{os.getgid()} 0600"
    assert not FileOwner(0, 0, 0o640).owner_only
