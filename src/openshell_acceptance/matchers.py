"""PyHamcrest matchers in the contract's words, so failures read expected vs actual."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description
from openshell._proto import openshell_pb2

from .container import Mount
from .gateway import DRIVER_FIELD_NAMES


def parse_distinguished_name(name: str) -> frozenset[str]:
    """``CN=a,OU=b`` and ``OU=b,CN=a`` (or with ``/`` separators) as one set."""
    separators = name.replace("/", ",")
    return frozenset(part.strip() for part in separators.split(",") if "=" in part)


class _NonzeroExit(BaseMatcher[int]):
    def _matches(self, item: int) -> bool:
        return isinstance(item, int) and item > 0

    def describe_to(self, description: Description) -> None:
        description.append_text("a process that exited with a non-zero code")

    def describe_mismatch(self, item: int, description: Description) -> None:
        if item == -1:
            description.append_text("the process was still running")
        else:
            description.append_text(f"exit code was {item}")


def nonzero_exit() -> BaseMatcher[int]:
    return _NonzeroExit()


class _NamesDriverField(BaseMatcher[str]):
    def __init__(self, key: str) -> None:
        self.key = key
        self.flag, self.variable = (
            p.strip() for p in DRIVER_FIELD_NAMES[key].split("/")
        )

    def _matches(self, item: str) -> bool:
        return self.flag in item or self.variable in item

    def describe_to(self, description: Description) -> None:
        description.append_text(
            f"output naming {self.key} as {self.flag} or {self.variable}"
        )

    def describe_mismatch(self, item: str, description: Description) -> None:
        description.append_text("the output was ").append_description_of(item.strip())


def names_driver_field(key: str) -> BaseMatcher[str]:
    return _NamesDriverField(key)


class _HasLineContaining(BaseMatcher[Iterable[str]]):
    def __init__(self, fragment: str) -> None:
        self.fragment = fragment

    def _matches(self, item: Iterable[str]) -> bool:
        return any(self.fragment in line for line in item)

    def describe_to(self, description: Description) -> None:
        description.append_text(f"a line containing {self.fragment!r}")

    def describe_mismatch(self, item: Iterable[str], description: Description) -> None:
        lines = list(item)
        description.append_text(f"{len(lines)} lines, the last: ")
        description.append_description_of(lines[-1] if lines else None)


def has_line_containing(fragment: str) -> BaseMatcher[Iterable[str]]:
    return _HasLineContaining(fragment)


class _SandboxPhase(BaseMatcher[int]):
    def __init__(self, phase: str) -> None:
        self.name = f"SANDBOX_PHASE_{phase}"
        self.value = openshell_pb2.SandboxPhase.Value(self.name)

    def _matches(self, item: int) -> bool:
        return item == self.value

    def describe_to(self, description: Description) -> None:
        description.append_text(self.name)

    def describe_mismatch(self, item: int, description: Description) -> None:
        description.append_text(f"phase was {openshell_pb2.SandboxPhase.Name(item)}")


def sandbox_phase(phase: str) -> BaseMatcher[int]:
    return _SandboxPhase(phase)


class _SameDistinguishedName(BaseMatcher[str | None]):
    def __init__(self, expected: str) -> None:
        self.expected = expected

    def _matches(self, item: str | None) -> bool:
        if not item:
            return False
        return parse_distinguished_name(item) == parse_distinguished_name(self.expected)

    def describe_to(self, description: Description) -> None:
        description.append_text(f"the subject {self.expected} (in any RDN order)")


def same_distinguished_name(expected: str) -> BaseMatcher[str | None]:
    return _SameDistinguishedName(expected)


class _HasReadOnlyBind(BaseMatcher[Mapping[str, Mount]]):
    def __init__(self, destination: str, source: Path, *, selinux: bool) -> None:
        self.destination = destination
        self.source = str(source)
        self.selinux = selinux

    def _problems(self, mounts: Mapping[str, Mount]) -> list[str]:
        mount = mounts.get(self.destination)
        if mount is None:
            return [f"nothing is mounted at {self.destination}"]
        problems = []
        if mount.type != "bind":
            problems.append(f"type is {mount.type}")
        if mount.source != self.source:
            problems.append(f"source is {mount.source}")
        if not mount.read_only:
            problems.append("it is writable")
        if "rbind" not in mount.options:
            problems.append(f"options {list(mount.options)} lack rbind")
        if ("z" in mount.options) != self.selinux:
            state = "on" if self.selinux else "off"
            problems.append(f"options {list(mount.options)} with SELinux {state}")
        return problems

    def _matches(self, item: Mapping[str, Mount]) -> bool:
        return not self._problems(item)

    def describe_to(self, description: Description) -> None:
        relabel = "with" if self.selinux else "without"
        description.append_text(
            f"a read-only rbind mount of {self.source} at {self.destination}, "
            f"{relabel} the z option"
        )

    def describe_mismatch(
        self, item: Mapping[str, Mount], description: Description
    ) -> None:
        description.append_text("; ".join(self._problems(item)))


def has_read_only_bind(
    destination: str, source: Path, *, selinux: bool
) -> BaseMatcher[Mapping[str, Mount]]:
    return _HasReadOnlyBind(destination, source, selinux=selinux)


class _AllOwnerOnly(BaseMatcher[Mapping[str, str]]):
    def _loose(self, modes: Mapping[str, str]) -> dict[str, str]:
        return {path: mode for path, mode in modes.items() if int(mode, 8) & 0o077}

    def _matches(self, item: Mapping[str, str]) -> bool:
        return bool(item) and not self._loose(item)

    def describe_to(self, description: Description) -> None:
        description.append_text("files that neither group nor others may access")

    def describe_mismatch(
        self, item: Mapping[str, str], description: Description
    ) -> None:
        loose = self._loose(item) if item else {"(no files)": "-"}
        description.append_text(
            ", ".join(f"{path} is {mode}" for path, mode in loose.items())
        )


def all_owner_only() -> BaseMatcher[Mapping[str, str]]:
    """Every mode in a ``files.file_modes`` mapping is owner-only."""
    return _AllOwnerOnly()
