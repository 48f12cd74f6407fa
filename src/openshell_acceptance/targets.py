"""The gateways the suite can run against, behind one interface."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ParameterError

TARGETS = ("reference", "openshell")
PKI_SOURCES = ("suite", "gateway")
# Every -D parameter the suite reads; behave's own settings start with "behave.".
PARAMETERS = (
    "target",
    "gateway_bin",
    "pki",
    "sandbox_image",
    "supervisor_image",
    "tshark",
)

# Flags every openshell-gateway build lists in its --help; a binary that lists
# none of them is not a gateway, whatever its name.
GATEWAY_FLAGS = ("--tls-client-ca", "--health-port", "--disable-tls")
HELP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    """A gateway build: how to run it and which images its sandboxes use."""

    name: str
    command: tuple[str, ...]
    sandbox_image: str | None
    supervisor_image: str | None
    pki_source: str

    def gateway_argv(self, *flags: str) -> list[str]:
        return [*self.command, *flags]

    def with_sandbox_image(self, image: str) -> Target:
        """This target, its sandboxes running ``image`` unless one was chosen."""
        return self if self.sandbox_image else replace(self, sandbox_image=image)

    @property
    def named_images(self) -> tuple[tuple[str, str], ...]:
        """Each image set so far, with the parameter that names it.

        Each must be in local storage before any scenario.
        """
        named = (
            ("sandbox_image", self.sandbox_image),
            ("supervisor_image", self.supervisor_image),
        )
        return tuple((parameter, image) for parameter, image in named if image)


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


def select_target(userdata: Mapping[str, str]) -> Target:
    """The target that ``-D target=...`` and its companion parameters name.

    Every parameter is checked here, before Podman or any scenario starts.
    The sandbox image stays None when the suite's own image is to be used.
    """
    check_parameters(userdata)
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
            sandbox_image=userdata.get("sandbox_image") or None,
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
    check_is_gateway(path)
    supervisor_image = userdata.get("supervisor_image")
    if not supervisor_image:
        raise ParameterError(
            "-D target=openshell needs -D supervisor_image=IMAGE, a local image "
            "holding openshell-sandbox (the suite never pulls one from a registry)"
        )
    return Target(
        name="openshell",
        command=(str(path.resolve()),),
        sandbox_image=userdata.get("sandbox_image") or None,
        supervisor_image=supervisor_image,
        pki_source=pki_source,
    )


def check_parameters(userdata: Mapping[str, str]) -> None:
    """Refuse a -D parameter the suite does not read, and a tshark it cannot run.

    An unknown name is most often a typo; ignored, it would let a run pass
    without what was asked of it.
    """
    for key in userdata:
        if key in PARAMETERS or key.startswith("behave."):
            continue
        near = difflib.get_close_matches(key, PARAMETERS, n=1)
        hint = f"did you mean -D {near[0]}? " if near else ""
        raise ParameterError(
            f"-D {key} is not a parameter of this suite; {hint}"
            f"use one of: {', '.join(PARAMETERS)}"
        )
    tshark = userdata.get("tshark")
    if tshark is not None and shutil.which(tshark) is None:
        raise ParameterError(
            f"-D tshark={tshark} is not an executable; point it at tshark, or "
            "leave it out to use the one on PATH"
        )


def check_is_gateway(path: Path) -> None:
    """Refuse a binary whose ``--help`` is not that of an OpenShell gateway."""
    try:
        result = subprocess.run(
            [str(path), "--help"],
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ParameterError(
            f"-D gateway_bin={path} did not answer --help within "
            f"{HELP_TIMEOUT:.0f}s; is it an openshell-gateway binary?"
        ) from None
    except OSError as exc:
        raise ParameterError(
            f"-D gateway_bin={path} cannot be run: {exc.strerror or exc}"
        ) from None
    listed = result.stdout + result.stderr
    if not any(flag in listed for flag in GATEWAY_FLAGS):
        raise ParameterError(
            f"-D gateway_bin={path} does not look like openshell-gateway: its "
            f"--help lists none of {', '.join(GATEWAY_FLAGS)}; point it at "
            "target/debug/openshell-gateway or target/release/openshell-gateway"
        )
