"""The gateways the suite can run against, behind one interface."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError

TARGETS = ("reference", "openshell")
PKI_SOURCES = ("suite", "gateway")


@dataclass(frozen=True)
class Target:
    """A gateway build: how to run it and which images its sandboxes use."""

    name: str
    command: tuple[str, ...]
    sandbox_image: str
    supervisor_image: str | None
    pki_source: str

    def gateway_argv(self, *flags: str) -> list[str]:
        return [*self.command, *flags]


def reference_gateway_command() -> tuple[str, ...]:
    """The reference gateway's console script, from this interpreter's prefix."""
    script = Path(sys.executable).parent / "openshell-reference-gateway"
    if script.exists():
        return (str(script),)
    found = shutil.which("openshell-reference-gateway")
    if found is None:
        raise ParameterError(
            "openshell-reference-gateway is not installed; "
            "run `make acceptance` (or `.venv/bin/pip install -e .`) first"
        )
    return (found,)


def select_target(userdata: Mapping[str, str], *, sandbox_image: str) -> Target:
    """The target that ``-D target=...`` and its companion parameters name."""
    name = userdata.get("target", "reference")
    if name not in TARGETS:
        raise ParameterError(
            f"-D target={name} is unknown; use one of: {', '.join(TARGETS)}"
        )
    pki_source = userdata.get("pki", "suite" if name == "reference" else "gateway")
    if pki_source not in PKI_SOURCES:
        raise ParameterError(
            f"-D pki={pki_source} is unknown; use one of: {', '.join(PKI_SOURCES)}"
        )

    if name == "reference":
        return Target(
            name="reference",
            command=reference_gateway_command(),
            sandbox_image=userdata.get("sandbox_image", sandbox_image),
            supervisor_image=None,
            pki_source=pki_source,
        )

    gateway_bin = userdata.get("gateway_bin")
    if not gateway_bin:
        raise ParameterError(
            "-D target=openshell needs -D gateway_bin=PATH to an openshell-gateway "
            "build (for example target/debug/openshell-gateway)"
        )
    path = Path(gateway_bin).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ParameterError(
            f"-D gateway_bin={gateway_bin} is not an executable file; "
            "point it at the openshell-gateway binary that `cargo build` wrote"
        )
    return Target(
        name="openshell",
        command=(str(path.resolve()),),
        sandbox_image=userdata.get("sandbox_image", sandbox_image),
        supervisor_image=userdata.get("supervisor_image"),
        pki_source=pki_source,
    )
