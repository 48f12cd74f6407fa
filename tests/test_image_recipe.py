"""The sandbox image recipe: its hash, its pins, and the mirror it is built from."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import openshell_acceptance.image as image
from openshell_acceptance.image import (
    RECIPE_DIR,
    AptSource,
    ImageBuildError,
    Recipe,
    debian_mirrors,
    parse_apt_sources,
    read_apt_sources,
    recipe_digest,
)

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# This VM's apt configuration, with the kinds of noise other hosts have.
DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://source.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""
NODESOURCE = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""
ONE_LINE = """\
# a comment
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ trixie main contrib
deb-src http://mirror.example/debian trixie main
deb http://ppa.example/ubuntu jammy main
"""


def pins(recipe: Recipe) -> dict[str, str]:
    found = {}
    for wheel in recipe.wheels:
        name, _, version = wheel.partition("==")
        found[canonicalize_name(name)] = version
    return found


# Mirrors


def test_mirrors_come_from_the_hosts_deb822_sources() -> None:
    sources = parse_apt_sources(
        {
            "/etc/apt/sources.list.d/debian.sources": DEBIAN_SOURCES,
            "/etc/apt/sources.list.d/nodesource.sources": NODESOURCE,
        }
    )
    assert debian_mirrors(sources, "bookworm", ("updates", "security")) == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]


def test_one_line_sources_of_another_release_still_serve_the_suite() -> None:
    sources = parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    assert sources[0] == AptSource(
        "http://mirror.example/debian", ("trixie",), ("main", "contrib")
    )
    assert debian_mirrors(sources, "bookworm", ("updates",)) == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
    ]


def test_a_host_without_a_debian_mirror_is_told_what_to_do() -> None:
    sources = parse_apt_sources({"/etc/apt/sources.list.d/n.sources": NODESOURCE})
    with pytest.raises(ImageBuildError, match="no Debian mirror.*--mirror"):
        debian_mirrors(sources, "bookworm")


def test_only_list_and_sources_files_are_read(tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEBIAN_SOURCES)
    (parts / "extra.list.disabled").write_text("deb http://x.example/ y main\n")
    assert list(read_apt_sources(tmp_path)) == [str(parts / "debian.sources")]


# The recipe and its hash


def test_the_tag_is_the_name_and_twelve_hex_digits_of_the_hash() -> None:
    recipe = Recipe.load()
    assert recipe.digest == recipe_digest(RECIPE_DIR)
    assert re.fullmatch(r"[0-9a-f]{64}", recipe.digest)
    assert recipe.tag == f"localhost/openshell-acceptance-sandbox:{recipe.digest[:12]}"
    assert recipe.label == "openshell.acceptance.recipe"


def test_the_hash_follows_names_and_contents_but_not_dotfiles(tmp_path: Path) -> None:
    copy = tmp_path / "sandbox"
    shutil.copytree(RECIPE_DIR, copy)
    original = recipe_digest(copy)
    assert original == recipe_digest(RECIPE_DIR)

    (copy / ".notes").write_text("ignored")
    assert recipe_digest(copy) == original

    hook = copy / "customize.sh"
    hook.write_text(hook.read_text() + "\n")
    assert recipe_digest(copy) != original

    hook.write_text((RECIPE_DIR / "customize.sh").read_text())
    assert recipe_digest(copy) == original
    hook.rename(copy / "customise.sh")
    assert recipe_digest(copy) != original


def test_the_recipe_targets_the_python_the_wheels_are_for() -> None:
    recipe = Recipe.load()
    assert recipe.python_version == "3.11"
    assert recipe.site_packages == "/usr/local/lib/python3.11/dist-packages"
    assert "python3" in recipe.packages and "libstdc++6" in recipe.packages
    assert recipe.customize_hook.is_file()


def test_the_image_does_not_carry_the_supervisor() -> None:
    recipe = Recipe.load()
    assert not any("openshell-podman-mtls" in wheel for wheel in recipe.wheels)
    hook = recipe.customize_hook.read_text()
    assert "/opt/openshell" not in hook and "openshell_reference" not in hook


def test_shared_pins_match_pyproject() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    suite = {
        canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)
        for line in project
    }
    recipe = pins(Recipe.load())
    for name in ("grpcio", "protobuf", "openshell", "httpx"):
        assert suite[name] == f"=={recipe[name]}", name


def test_the_wheels_include_every_dependency_they_need() -> None:
    recipe = pins(Recipe.load())
    environment = {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "extra": "",
    }
    for name, version in recipe.items():
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed here to read its metadata")
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in recipe, f"{name} needs {requirement}"
            assert requirement.specifier.contains(recipe[needed]), (
                f"{name} needs {requirement}, recipe pins {recipe[needed]}"
            )


def test_a_build_works_below_the_run_directory_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "openshell-acceptance-run" / "podman"
    used: list[Path] = []

    def fail_after_noting(recipe, target: Path) -> None:
        used.append(target)
        target.mkdir()
        (target / "partial.whl").write_bytes(b"")
        raise ImageBuildError("pip could not fetch the wheels")

    monkeypatch.setattr(image.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(image, "_install_wheels", fail_after_noting)
    service = SimpleNamespace(workdir=run_dir)

    with pytest.raises(ImageBuildError, match="could not fetch"):
        image.build_sandbox_image(service, Recipe.load(), mirrors=["deb x"])

    assert used and used[0].parent.parent == run_dir
    assert list(run_dir.iterdir()) == []
