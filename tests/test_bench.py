"""The benchmark's pure helpers: its behave settings and its time parsing."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)
    return module


def test_behave_writes_every_report_into_the_bench_directory(
    bench: ModuleType, tmp_path: Path
) -> None:
    project = tomllib.loads((BENCH.parents[1] / "pyproject.toml").read_text())
    formats = project["tool"]["behave"]["format"]

    written = tomllib.loads(bench.behave_config(tmp_path).read_text())
    settings = written["tool"]["behave"]

    assert settings["format"] == formats
    assert len(settings["outfiles"]) == len(formats)
    for path in [*settings["outfiles"], settings["junit_directory"]]:
        assert Path(path).parent == tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03T10:45:27.820394782Z", 1796294727.820394),
        ("2026-12-03T10:45:27Z", 1796294727.0),
        ("2026-12-03T11:45:27.5+01:00", 1796294727.5),
    ],
)
def test_podman_times_parse_to_the_microsecond(
    bench: ModuleType, text: str, expected: float
) -> None:
    assert bench.podman_timestamp(text) == pytest.approx(expected, abs=1e-6)


def test_an_unreadable_time_is_none(bench: ModuleType) -> None:
    assert bench.podman_timestamp("yesterday") is None


def test_stats_of_nothing_print_as_not_available(bench: ModuleType) -> None:
    assert bench.Stats.of([None]).line() == "n/a"
    assert bench.Stats.of([0.3, 0.1, 0.2]).median == pytest.approx(0.2)
