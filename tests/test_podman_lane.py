"""Which lane a Podman service is, and what keeps a rootless one from sandboxes.

The info documents are cut down from what Podman 4.3.1 and 5 answer on
``/libpod/info``. No Podman is needed.
"""

from __future__ import annotations

from typing import Any

import pytest

from openshell_acceptance.podman import (
    HostFacts,
    Lane,
    PodmanService,
    PodmanUnsupported,
    lane_from_info,
    rootless_blockers,
)

SUBORDINATE_IDS = {
    "uidmap": [
        {"container_id": 0, "host_id": 1001, "size": 1},
        {"container_id": 1, "host_id": 100000, "size": 65536},
    ]
}
ROOTLESS_4 = {
    "host": {
        "networkBackend": "netavark",
        "security": {"rootless": True},
        "slirp4netns": {"executable": "/usr/bin/slirp4netns"},
        "idMappings": SUBORDINATE_IDS,
    },
    "store": {"graphDriverName": "vfs"},
    "version": {"Version": "4.3.1"},
}
ROOTLESS_5 = {
    "host": {
        "networkBackend": "netavark",
        "rootlessNetworkCmd": "pasta",
        "security": {"rootless": True},
        "pasta": {"executable": "/usr/bin/pasta"},
        "idMappings": SUBORDINATE_IDS,
    },
    "version": {"Version": "5.4.2"},
}
ROOTFUL = {
    "host": {"networkBackend": "netavark", "security": {"rootless": False}},
    "store": {"graphDriverName": "overlay"},
    "version": {"Version": "4.3.1"},
}
ROOTLESS_FACTS = HostFacts("hybrid", "/usr/sbin/runc", None, None, None, True)
NO_TUN = HostFacts("hybrid", "/usr/sbin/runc", None, None, None, True, False, False)


def without_subordinate_ids(info: dict[str, Any]) -> dict[str, Any]:
    host = dict(info["host"])
    host["idMappings"] = {"uidmap": [{"container_id": 0, "host_id": 1001, "size": 1}]}
    return {**info, "host": host}


def test_a_rootful_service_is_the_rootful_lane_on_its_bridge():
    lane = lane_from_info(ROOTFUL)

    assert lane == Lane(False, "4.3.1", "bridge (netavark)", "overlay")
    assert lane.name == "rootful"


def test_podman_4_rootless_reaches_its_bridge_through_slirp4netns():
    lane = lane_from_info(ROOTLESS_4)

    assert lane.name == "rootless"
    assert lane.network == (
        "bridge (netavark) in the rootless network namespace, through slirp4netns"
    )


def test_podman_5_names_its_rootless_helper_itself():
    assert lane_from_info(ROOTLESS_5).network.endswith("through pasta")


def test_a_report_shows_the_lane_the_version_the_network_and_the_storage():
    assert lane_from_info(ROOTLESS_4).details() == {
        "Lane": "rootless",
        "Podman": "4.3.1",
        "Network": (
            "bridge (netavark) in the rootless network namespace, through slirp4netns"
        ),
        "Storage": "vfs",
    }


def test_a_rootless_host_with_ids_and_tun_has_no_blocker():
    assert rootless_blockers(ROOTLESS_4, ROOTLESS_FACTS, "ci") == []


def test_no_subordinate_ids_is_a_blocker_that_names_the_fix():
    (blocker,) = rootless_blockers(
        without_subordinate_ids(ROOTLESS_4), ROOTLESS_FACTS, "ci"
    )

    assert blocker.startswith("rootless Podman has no subordinate IDs for ci")
    assert "usermod --add-subuids" in blocker
    assert "podman system migrate" in blocker


def test_an_unusable_tun_device_is_a_blocker_that_names_the_fix():
    (blocker,) = rootless_blockers(ROOTLESS_4, NO_TUN, "ci")

    assert blocker.startswith("rootless Podman's slirp4netns cannot open /dev/net/tun")
    assert "setfacl -m u:ci:rw /dev/net/tun" in blocker


class _Service(PodmanService):
    """A service whose info is given, and which records being stopped."""

    def __init__(self, info: dict[str, Any], facts: HostFacts) -> None:
        self.lines: list[str] = []
        super().__init__(facts=facts, log=self.lines.append)
        self._info = info
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_a_rootless_service_that_lacks_something_is_stopped_and_refused():
    service = _Service(ROOTLESS_4, NO_TUN)

    with pytest.raises(PodmanUnsupported, match="/dev/net/tun"):
        service._checked()

    assert service.stopped


def test_a_usable_rootless_service_says_what_it_adapted():
    service = _Service(ROOTLESS_4, ROOTLESS_FACTS)

    assert service._checked() is service

    assert not service.stopped
    (line,) = service.lines
    assert line.startswith("podman: rootless (Podman 4.3.1, bridge (netavark) in")
    assert "container limits left to Podman" in line


def test_a_root_suite_asks_nothing_at_start():
    facts = HostFacts("v2", None, None, None, None, False)
    service = _Service({}, facts)

    assert service._checked() is service
