"""The sandbox image, built on this machine without pulling from a registry.

``images/sandbox/`` holds the recipe. The image is a Debian root filesystem
made by mmdebstrap from the host's own Debian mirror, with the supervisor's
Python packages installed from PyPI wheels, imported into Podman under a tag
derived from a hash of the recipe. An image carrying the same hash is reused.

Run ``python -m openshell_acceptance.image`` to build or reuse it by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import leftovers
from ..podman import PodmanError, PodmanService, PodmanUnavailable

__all__ = [
    "RECIPE_DIR",
    "AptSource",
    "ImageBuildError",
    "ImageResult",
    "Recipe",
    "build_sandbox_image",
    "debian_mirrors",
    "ensure_sandbox_image",
    "main",
    "parse_apt_sources",
    "read_apt_sources",
    "recipe_digest",
]

RECIPE_DIR = Path(__file__).resolve().parents[3] / "images" / "sandbox"

DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    }
)

_PIP_TIMEOUT = 300
_MMDEBSTRAP_TIMEOUT = 600
_IMPORT_TIMEOUT = 600
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64"}


class ImageBuildError(PodmanUnavailable):
    """The sandbox image could not be built; the message names the cause."""


@dataclass(frozen=True)
class Recipe:
    """What ``images/sandbox/recipe.toml`` says, and the hash of the directory."""

    directory: Path
    digest: str
    name: str
    label: str
    env: tuple[str, ...]
    suite: str
    variant: str
    glibc: str
    hooks: tuple[str, ...]
    pockets: tuple[str, ...]
    packages: tuple[str, ...]
    path_exclude: tuple[str, ...]
    path_include: tuple[str, ...]
    python_version: str
    site_packages: str
    wheels: tuple[str, ...]

    @classmethod
    def load(cls, directory: str | os.PathLike[str] = RECIPE_DIR) -> Recipe:
        base = Path(directory)
        try:
            data = tomllib.loads((base / "recipe.toml").read_text())
            image, debian, python = data["image"], data["debian"], data["python"]
            return cls(
                directory=base,
                digest=recipe_digest(base),
                name=image["name"],
                label=image["label"],
                env=tuple(image.get("env", ())),
                suite=debian["suite"],
                variant=debian["variant"],
                glibc=debian["glibc"],
                hooks=tuple(debian.get("hooks", ())),
                pockets=tuple(debian.get("pockets", ())),
                packages=tuple(debian["packages"]),
                path_exclude=tuple(debian.get("path_exclude", ())),
                path_include=tuple(debian.get("path_include", ())),
                python_version=python["version"],
                site_packages=python["site_packages"],
                wheels=tuple(python["wheels"]),
            )
        except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
            raise ImageBuildError(f"bad image recipe in {base}: {exc!r}") from None

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.digest[:12]}"

    @property
    def customize_hook(self) -> Path:
        return self.directory / "customize.sh"


@dataclass(frozen=True)
class ImageResult:
    """The image a run uses, and whether this call had to build it."""

    tag: str
    built: bool
    seconds: float


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` source of the host's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def recipe_digest(directory: str | os.PathLike[str] = RECIPE_DIR) -> str:
    """SHA-256 over every file of the recipe directory: names and contents."""
    base = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(base.rglob("*")):
        parts = path.relative_to(base).parts
        if not path.is_file() or any(_ignored(part) for part in parts):
            continue
        name = path.relative_to(base).as_posix().encode()
        content = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()


def ensure_sandbox_image(
    service: PodmanService,
    *,
    log: Callable[[str], None] | None = print,
    recipe: Recipe | None = None,
    mirrors: Sequence[str] | None = None,
) -> str:
    """The tag of the sandbox image: reused when present, built otherwise."""
    result = _ensure(service, recipe or Recipe.load(), mirrors=mirrors)
    if result.built and log is not None:
        log(f"image: built {result.tag} in {result.seconds:.1f}s")
    return result.tag


def build_sandbox_image(
    service: PodmanService,
    recipe: Recipe,
    *,
    mirrors: Sequence[str] | None = None,
) -> str:
    """Build the image from ``recipe`` and import it into ``service``; its tag."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageBuildError(
            "mmdebstrap is not installed: apt-get install mmdebstrap"
        )
    lines = list(mirrors) if mirrors else debian_mirrors(
        parse_apt_sources(read_apt_sources()), recipe.suite, recipe.pockets
    )

    # Below the run's directory when there is one: what a killed build leaves
    # there, the next run's sweep of leftovers removes.
    if service.workdir is not None:
        service.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="image-build-", dir=service.workdir))
    try:
        wheels = scratch / "wheels"
        _install_wheels(recipe, wheels)
        rootfs = scratch / "rootfs.tar"
        _run_mmdebstrap(mmdebstrap, recipe, lines, wheels, rootfs, scratch)
        _import(service, recipe, rootfs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return recipe.tag


def _ignored(part: str) -> bool:
    return part.startswith(".") or part == "__pycache__"


# The host's Debian mirror


def read_apt_sources(etc_apt: str | os.PathLike[str] = "/etc/apt") -> dict[str, str]:
    """The host's apt source files by name: sources.list and sources.list.d/."""
    base = Path(etc_apt)
    candidates = [base / "sources.list"]
    parts = base / "sources.list.d"
    if parts.is_dir():
        candidates += sorted(parts.iterdir())
    files = {}
    for path in candidates:
        if path.name.endswith((".list", ".sources")) and path.is_file():
            try:
                files[str(path)] = path.read_text()
            except OSError:
                continue
    return files


def parse_apt_sources(files: Mapping[str, str]) -> list[AptSource]:
    """The enabled ``deb`` entries of one-line ``.list`` and deb822 ``.sources``."""
    sources: list[AptSource] = []
    for name in sorted(files):
        if name.endswith(".sources"):
            sources += _parse_deb822(files[name])
        else:
            sources += _parse_one_line(files[name])
    return sources


def debian_mirrors(
    sources: Iterable[AptSource], suite: str, pockets: Sequence[str] = ()
) -> list[str]:
    """mmdebstrap mirror lines for ``suite`` from the host's Debian sources.

    A source counts as Debian when its suite is a Debian codename or alias;
    ones serving ``-security`` supply the security pocket, the others the
    suite itself and its remaining pockets.
    """
    archives: list[str] = []
    security: list[str] = []
    for source in sources:
        if "main" not in source.components:
            continue
        for name in source.suites:
            base, _, pocket = name.partition("-")
            if base not in DEBIAN_SUITES:
                continue
            (security if pocket == "security" else archives).append(source.uri)
    if not archives:
        raise ImageBuildError(
            "no Debian mirror in /etc/apt/sources.list or sources.list.d: add "
            "one, or pass --mirror URI"
        )

    lines = []
    for uri in dict.fromkeys(archives):
        lines.append(f"deb {uri} {suite} main")
        lines += [
            f"deb {uri} {suite}-{pocket} main"
            for pocket in pockets
            if pocket != "security"
        ]
    if "security" in pockets:
        lines += [f"deb {uri} {suite}-security main" for uri in dict.fromkeys(security)]
    return lines


def _parse_one_line(text: str) -> list[AptSource]:
    sources = []
    for raw in text.splitlines():
        tokens = raw.split("#", 1)[0].split()
        if not tokens or tokens[0] != "deb":
            continue
        tokens = tokens[1:]
        if tokens and tokens[0].startswith("["):
            while tokens and not tokens[0].endswith("]"):
                tokens = tokens[1:]
            tokens = tokens[1:]
        if len(tokens) >= 2:
            sources.append(
                AptSource(tokens[0].rstrip("/"), (tokens[1],), tuple(tokens[2:]))
            )
    return sources


def _parse_deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            sources.append(AptSource(uri.rstrip("/"), suites, components))
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0].isspace() and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


# Building


def _ensure(
    service: PodmanService, recipe: Recipe, *, mirrors: Sequence[str] | None
) -> ImageResult:
    started = time.monotonic()
    client = service.client()
    try:
        found = client.images.list(filters={"label": f"{recipe.label}={recipe.digest}"})
        if found:
            image = found[0]
            if recipe.tag not in image.tags:
                image.tag(recipe.name, recipe.digest[:12])
            return ImageResult(recipe.tag, False, time.monotonic() - started)
    except PodmanError:
        raise
    except Exception as exc:
        raise ImageBuildError(f"podman could not list images: {exc}") from None

    build_sandbox_image(service, recipe, mirrors=mirrors)
    return ImageResult(recipe.tag, True, time.monotonic() - started)


def _platforms(glibc: str) -> list[str]:
    machine = platform.machine()
    arch = _ARCHES.get(machine)
    if arch is None:
        raise ImageBuildError(f"no wheel platform known for this machine ({machine})")
    major, minor = (int(part) for part in glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    return tags + [f"manylinux2014_{arch}"]


def _install_wheels(recipe: Recipe, target: Path) -> None:
    version = recipe.python_version
    # The pins are complete, so pip resolves nothing; the platform flags pick
    # wheels for the image's Python and C library, not for the host's.
    argv = [sys.executable, "-m", "pip", "install", "--target", str(target)]
    argv += ["--disable-pip-version-check", "--no-input", "--quiet"]
    argv += ["--no-deps", "--no-compile", "--only-binary=:all:"]
    argv += ["--implementation", "cp", "--python-version", version]
    argv += ["--abi", "cp" + version.replace(".", "")]
    for tag in _platforms(recipe.glibc):
        argv += ["--platform", tag]
    _run("pip", [*argv, *recipe.wheels], timeout=_PIP_TIMEOUT)
    # Console scripts would land beside the packages, where nothing runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)


def _hook_dirs(mmdebstrap: str, names: Sequence[str]) -> list[str]:
    share = Path(mmdebstrap).resolve().parents[1] / "share" / "mmdebstrap" / "hooks"
    dirs = []
    for name in names:
        path = share / name
        if not path.is_dir():
            raise ImageBuildError(
                f"mmdebstrap has no hook directory {path}: upgrade mmdebstrap"
            )
        dirs.append(f"--hook-dir={path}")
    return dirs


def _run_mmdebstrap(
    mmdebstrap: str,
    recipe: Recipe,
    mirrors: Sequence[str],
    wheels: Path,
    rootfs: Path,
    scratch: Path,
) -> None:
    argv = [
        mmdebstrap,
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        *_hook_dirs(mmdebstrap, recipe.hooks),
        *(f"--dpkgopt=path-exclude={path}" for path in recipe.path_exclude),
        *(f"--dpkgopt=path-include={path}" for path in recipe.path_include),
        f"--customize-hook={recipe.customize_hook}",
        recipe.suite,
        str(rootfs),
        *mirrors,
    ]
    env = {
        **os.environ,
        "TMPDIR": str(_mmdebstrap_tmpdir(scratch)),
        "SANDBOX_WHEELS": str(wheels),
        "SANDBOX_SITE_PACKAGES": recipe.site_packages,
    }
    _run("mmdebstrap", argv, timeout=_MMDEBSTRAP_TIMEOUT, env=env)


def _mmdebstrap_tmpdir(scratch: Path) -> Path:
    """Where mmdebstrap builds the root filesystem, inside ``scratch``.

    Run by a user other than root, mmdebstrap works in unshare mode, as the
    first subordinate user ID: that ID may neither enter nor write the 0700
    scratch directory, so it gets a sticky, world-writable directory of its
    own there, as /tmp would be, and may pass through scratch to the wheels.
    """
    if os.geteuid() == 0:
        return scratch
    scratch.chmod(0o711)
    tmpdir = scratch / "mmdebstrap"
    tmpdir.mkdir(exist_ok=True)
    tmpdir.chmod(0o1777)
    return tmpdir


def _import(service: PodmanService, recipe: Recipe, rootfs: Path) -> None:
    changes = [f"LABEL {recipe.label}={recipe.digest}", 'CMD ["/bin/sh"]']
    changes += [f"ENV {entry}" for entry in recipe.env]
    params = {
        "changes": changes,
        "message": f"openshell acceptance sandbox, recipe {recipe.digest}",
        "reference": recipe.tag,
    }
    api = service.client().api
    try:
        with rootfs.open("rb") as body:
            response = api.post(
                "/images/import",
                params=params,
                data=body,
                headers={"Content-Type": "application/x-tar"},
                timeout=_IMPORT_TIMEOUT,
            )
        response.raise_for_status()
        labels = service.client().images.get(recipe.tag).labels or {}
    except Exception as exc:
        raise ImageBuildError(f"podman could not import {recipe.tag}: {exc}") from None
    if labels.get(recipe.label) != recipe.digest:
        raise ImageBuildError(f"imported {recipe.tag} lacks the label {recipe.label}")


def _run(
    what: str,
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> None:
    try:
        result = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{what} did not finish within {timeout:.0f}s") from None
    except OSError as exc:
        raise ImageBuildError(f"cannot run {what}: {exc}") from None
    if result.returncode != 0:
        raise ImageBuildError(
            f"{what} exited with code {result.returncode}: "
            f"{_last_line(result.stderr + result.stdout)}"
        )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("e:", "error"))]
    # The first error is the cause; mmdebstrap's later ones report its cleanup.
    if errors:
        return errors[0]
    return lines[-1] if lines else "(no output)"


# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """Build or reuse the sandbox image and say which, with its tag."""
    parser = argparse.ArgumentParser(
        prog="python -m openshell_acceptance.image", description=main.__doc__
    )
    parser.add_argument(
        "--mirror",
        action="append",
        metavar="LINE",
        help="a Debian mirror for mmdebstrap instead of the host's (repeatable)",
    )
    parser.add_argument(
        "--socket", metavar="PATH", help="use this Podman API socket"
    )
    args = parser.parse_args(argv)

    # A run directory of its own, claimed like a suite run's, so that a build
    # that is killed leaves nothing that the next run does not remove.
    workdir = Path(tempfile.mkdtemp(prefix=leftovers.ROOT_PREFIX))
    leftovers.claim_root(workdir, f"image-{uuid.uuid4().hex}")
    try:
        with PodmanService(workdir, socket_path=args.socket).start() as service:
            result = _ensure(service, Recipe.load(), mirrors=args.mirror)
    except PodmanError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verb = "built" if result.built else "reused"
    print(f"sandbox image {result.tag} {verb} in {result.seconds:.1f}s")
    return 0

