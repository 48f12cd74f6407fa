"""The HTML report as a reviewer sees it: rendered by headless Chromium.

These tests read the reports of the last acceptance run, so `make report-check`
runs them after it and the fast unit run leaves them out (marker ``browser``).
The page is rendered with its scripts run (``--dump-dom``), and one screenshot
is kept next to the reports.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from behave.parser import parse_file

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
FEATURE = ROOT / "features" / "podman_mtls.feature"
REPORTS = ROOT / "reports"
HTML_REPORT = REPORTS / "podman_mtls.html"
JUNIT_DIR = REPORTS / "junit"
SCREENSHOT = REPORTS / "podman_mtls.png"
WINDOW = (1280, 1600)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Lets the page's own scripts, some of them asynchronous, finish first.
    "--virtual-time-budget=10000",
)
CHROMIUM_TIMEOUT = 90.0
CRITERION_PREFIX = "criterion."
FAILED = {"failed", "error", "hook_error", "cleanup_error"}
NOT_RUN = {"skipped", "untested"}
VOID_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
    "source", "track", "wbr",
}  # fmt: skip


# The rendered page, as a small tree


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        return [
            node
            for node in self.walk()
            if (tag is None or node.tag == tag) and (cls is None or cls in node.classes)
        ]

    def find(self, tag: str | None = None, cls: str | None = None) -> Node | None:
        found = self.find_all(tag, cls)
        return found[0] if found else None

    def inner_text(self) -> str:
        parts = list(self.text)
        for child in self.children:
            parts.append(child.inner_text())
        return " ".join(" ".join(parts).split())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self._stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {name: value or "" for name, value in attrs})
        self._stack[-1].children.append(node)
        if tag not in VOID_ELEMENTS:
            self._stack.append(node)

    def handle_endtag(self, tag):
        for index in range(len(self._stack) - 1, 0, -1):
            if self._stack[index].tag == tag:
                del self._stack[index:]
                return

    def handle_data(self, data):
        self._stack[-1].text.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def hidden(node: Node) -> bool:
    style = node.attrs.get("style", "").replace(" ", "")
    return (
        "hidden" in node.attrs
        or "criterion-filtered-out" in node.classes
        or "display:none" in style
    )


# Chromium


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is missing; install it with: apt-get install chromium")
    return binary


def run_chromium(url: str, *extra: str) -> str:
    """Chromium's standard output for ``url``; its processes end with it."""
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile:
        argv = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            _end_group(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"chromium did not finish {url} within {CHROMIUM_TIMEOUT:.0f}s")
        finally:
            _end_group(process.pid, signal.SIGTERM)
    if process.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:]
        pytest.fail(f"chromium exited with {process.returncode}: {last}")
    return out.decode("utf-8", errors="replace")


def _end_group(pgid: int, sig: signal.Signals) -> None:
    """Helpers Chromium forked share its process group; end any left over."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def rendered(query: str = "") -> Node:
    return parse_html(run_chromium(HTML_REPORT.as_uri() + query, "--dump-dom"))


# What the run reported


@dataclass(frozen=True)
class Expected:
    name: str
    status: str
    criteria: frozenset[str]


def normalized(status: str) -> str:
    if status in FAILED:
        return "failed"
    if status in NOT_RUN:
        return "skipped"
    return status


def junit_statuses() -> dict[str, str]:
    """Scenario name to status, as the JUnit reports of the run give them."""
    statuses: dict[str, str] = {}
    for report in sorted(JUNIT_DIR.glob("*.xml")):
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            statuses[" ".join(case.get("name", "").split())] = case.get("status", "")
    return statuses


def expected_scenarios() -> list[Expected]:
    """Every scenario of the feature file, with the status JUnit gives it."""
    statuses = junit_statuses()
    expected = []
    for scenario in parse_file(str(FEATURE)).walk_scenarios():
        name = " ".join(scenario.name.split())
        assert name in statuses, f"JUnit does not report the scenario {name!r}"
        criteria = frozenset(
            tag for tag in scenario.effective_tags if tag.startswith(CRITERION_PREFIX)
        )
        expected.append(Expected(name, normalized(statuses[name]), criteria))
    return expected


@dataclass(frozen=True)
class Shown:
    name: str
    badge: str
    status_classes: frozenset[str]
    visible: bool


def shown_scenarios(page: Node) -> dict[str, Shown]:
    shown = {}
    for section in page.find_all("section", "scenario-filter-container"):
        name_node = section.find(cls="scenario-name")
        badge = section.find(cls="criterion-status-badge")
        header = section.find(cls="scenario-header")
        name = (
            name_node.inner_text().removeprefix("Scenario:").strip()
            if name_node
            else ""
        )
        shown[name] = Shown(
            name=name,
            badge=badge.inner_text() if badge else "",
            status_classes=frozenset(section.classes - {"scenario-filter-container"}),
            visible=not hidden(section) and not (header and hidden(header)),
        )
    return shown


# Tests


@pytest.fixture(scope="module")
def report() -> Path:
    if not HTML_REPORT.is_file():
        pytest.skip(f"no {HTML_REPORT.relative_to(ROOT)}: run `make acceptance` first")
    if not any(JUNIT_DIR.glob("*.xml")):
        pytest.skip(f"no JUnit XML under {JUNIT_DIR.relative_to(ROOT)}")
    if HTML_REPORT.stat().st_mtime < FEATURE.stat().st_mtime:
        pytest.skip(
            f"{HTML_REPORT.name} is older than {FEATURE.name}: "
            "run `make acceptance` again first"
        )
    return HTML_REPORT


@pytest.fixture(scope="module")
def ran(report) -> Path:
    """The report of a run that got as far as running scenarios."""
    if all(status == "untested" for status in junit_statuses().values()):
        pytest.skip(
            "the last acceptance run ran no scenario (it stopped before the "
            "first; its console says why), so its page shows none"
        )
    return report


def test_the_report_is_one_self_contained_file(report):
    page = parse_html(report.read_text(encoding="utf-8"))

    outside = [
        f"<{node.tag} {name}={node.attrs[name]!r}>"
        for node in page.walk()
        for name in ("src", "href")
        if node.attrs.get(name) and not node.attrs[name].startswith(("data:", "#"))
    ]
    assert outside == [], "the report loads files from outside itself"
    assert page.find("link") is None
    assert page.find("style") is not None and page.find("script") is not None
    styles = " ".join(node.inner_text() for node in page.find_all("style"))
    assert "@import" not in styles and "url(http" not in styles


def test_every_scenario_is_shown_with_its_status(ran):
    expected = expected_scenarios()
    shown = shown_scenarios(rendered())

    for scenario in expected:
        assert scenario.name in shown, f"scenario not in the page: {scenario.name}"
        seen = shown[scenario.name]
        assert seen.visible, f"scenario hidden: {scenario.name}"
        assert seen.badge == scenario.status.upper(), (
            f"{scenario.name}: badge {seen.badge!r}, JUnit says {scenario.status}"
        )
        assert scenario.status in {normalized(c) for c in seen.status_classes}, (
            f"{scenario.name}: page status {set(seen.status_classes)}, "
            f"JUnit says {scenario.status}"
        )


def test_a_criterion_in_the_address_shows_only_its_scenarios(ran):
    expected = expected_scenarios()
    criterion = max(
        {c for scenario in expected for c in scenario.criteria},
        key=lambda c: (sum(c in s.criteria for s in expected), c),
    )
    short_name = criterion.removeprefix(CRITERION_PREFIX)

    page = rendered(f"?criterion={short_name}")
    shown = shown_scenarios(page)

    visible = {name for name, seen in shown.items() if seen.visible}
    wanted = {s.name for s in expected if criterion in s.criteria}
    assert visible == wanted
    counter = next(n for n in page.walk() if n.attrs.get("id") == "criterion-shown")
    assert counter.inner_text().startswith(
        f"Showing {len(wanted)} of {len(shown)} scenarios"
    )


def test_a_screenshot_is_kept_next_to_the_reports(ran):
    SCREENSHOT.unlink(missing_ok=True)
    width, height = WINDOW

    run_chromium(
        ran.as_uri(),
        f"--window-size={width},{height}",
        f"--screenshot={SCREENSHOT}",
    )

    data = SCREENSHOT.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert len(data) > 20_000, "the screenshot looks blank"
