"""What the suite's containers.conf sets, decided from injected host facts."""

from __future__ import annotations

import os
import tomllib

import pytest

from openshell_acceptance.podman import (
    PODMAN_DEFAULT_ULIMIT,
    HostFacts,
    cgroup_layout,
    decide_containers_conf,
)

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n"
V1_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,mode=755 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0
"""

# The Debian 12 VM the host notes describe.
THIS_KIND_OF_VM = HostFacts(
    cgroup_layout="hybrid",
    runc="/usr/sbin/runc",
    nofile_hard=20000,
    nproc_hard=96362,
    pid_max=32768,
    rootless=False,
)
# A host where Podman's defaults work as they are.
COMFORTABLE = HostFacts(
    cgroup_layout="v2",
    runc=None,
    nofile_hard=None,
    nproc_hard=None,
    pid_max=4194304,
    rootless=False,
)


@pytest.mark.parametrize(
    ("mounts", "layout"),
    [
        (HYBRID_MOUNTS, "hybrid"),
        (V2_MOUNTS, "v2"),
        (V1_MOUNTS, "v1"),
        ("proc /proc proc rw 0 0\n", "none"),
        ("", "none"),
    ],
)
def test_cgroup_layout_is_read_from_the_mount_table(mounts: str, layout: str) -> None:
    assert cgroup_layout(mounts) == layout


def test_this_kind_of_vm_gets_runc_and_limits_it_can_grant() -> None:
    conf = decide_containers_conf(THIS_KIND_OF_VM)
    assert conf.needed
    assert conf.blockers == ()
    assert conf.adaptations == (
        "runtime=runc (cgroups hybrid)",
        "default_ulimits nofile=20000:20000 (hard limit 20000)",
        "default_ulimits nproc=32768:32768 (pid_max 32768, hard limit 96362)",
    )
    assert tomllib.loads(conf.text) == {
        "containers": {"default_ulimits": ["nofile=20000:20000", "nproc=32768:32768"]},
        "engine": {"runtime": "runc", "exit_command_delay": 10},
    }
    assert conf.summary() == (
        "podman: adapted runtime=runc (cgroups hybrid), "
        "default_ulimits nofile=20000:20000 (hard limit 20000), "
        "default_ulimits nproc=32768:32768 (pid_max 32768, hard limit 96362)"
    )


def test_a_host_where_the_defaults_work_needs_nothing() -> None:
    conf = decide_containers_conf(COMFORTABLE)
    assert not conf.needed
    assert conf.adaptations == () and conf.blockers == ()
    # The suite's own setting alone does not make the file needed.
    assert tomllib.loads(conf.text) == {"engine": {"exit_command_delay": 10}}
    assert conf.summary() == "podman: no adaptation needed"


def test_limits_at_podmans_default_need_no_adaptation() -> None:
    facts = HostFacts(
        "v2", None, PODMAN_DEFAULT_ULIMIT, PODMAN_DEFAULT_ULIMIT, 4194304, False
    )
    assert not decide_containers_conf(facts).needed


def test_nproc_is_capped_by_the_hard_limit_when_pid_max_is_larger() -> None:
    facts = HostFacts("v2", None, None, 50000, 4194304, False)
    conf = decide_containers_conf(facts)
    assert conf.adaptations == ("default_ulimits nproc=50000:50000 (hard limit 50000)",)
    assert "runtime" not in tomllib.loads(conf.text)["engine"]


def test_a_low_pid_max_alone_caps_nproc() -> None:
    facts = HostFacts("v2", None, None, None, 32768, False)
    assert decide_containers_conf(facts).adaptations == (
        "default_ulimits nproc=32768:32768 (pid_max 32768, hard limit 1048576)",
    )


def test_cgroups_hybrid_without_runc_is_a_blocker_that_names_the_fix() -> None:
    facts = HostFacts("hybrid", None, None, None, None, False)
    conf = decide_containers_conf(facts)
    assert conf.blockers == (
        "cgroups hybrid need the runc runtime: apt-get install runc",
    )
    assert "runtime" not in conf.text


def test_cgroups_v1_prefer_runc_but_leave_crun_when_runc_is_absent() -> None:
    with_runc = HostFacts("v1", "/usr/bin/runc", None, None, None, False)
    without = HostFacts("v1", None, None, None, None, False)
    assert decide_containers_conf(with_runc).adaptations == (
        "runtime=runc (cgroups v1)",
    )
    assert decide_containers_conf(without).blockers == ()
    assert not decide_containers_conf(without).needed


def test_rootless_podman_clamps_limits_itself() -> None:
    facts = HostFacts("hybrid", "/usr/bin/runc", 20000, 96362, 32768, True)
    conf = decide_containers_conf(facts)
    assert conf.adaptations == ("runtime=runc (cgroups hybrid)",)
    assert "default_ulimits" not in conf.text


def test_detected_facts_are_well_formed() -> None:
    facts = HostFacts.detect()
    assert facts.cgroup_layout in {"v2", "hybrid", "v1", "none"}
    assert facts.selinux == os.path.isdir("/sys/fs/selinux")
    for limit in (facts.nofile_hard, facts.nproc_hard, facts.pid_max):
        assert limit is None or limit > 0
    conf = decide_containers_conf(facts)
    tomllib.loads(conf.text)
