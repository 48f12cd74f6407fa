"""The HTML report: html-pretty, fitted to this suite, in one self-contained file.

Two things are added to behave-html-pretty-formatter:

- each scenario lists the background steps it really ran. html-pretty keeps
  one background per feature and replaces it with a rule's own background,
  which lacks the steps inherited from the feature; evidence and results of
  the steps after it then land one step too early;
- a filter by ``@criterion`` tag and a status badge on each scenario, as an
  inline ``<style>`` and ``<script>`` in the page head.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from behave_html_pretty_formatter import html_pretty

__all__ = ["CRITERION_PREFIX", "PrettyHTMLFormatter", "criterion_filter"]

CRITERION_PREFIX = "criterion."
"""The tag prefix that links a scenario to an acceptance criterion."""


def criterion_filter() -> str:
    """A ``<style>`` and a ``<script>`` element: the filter by ``@criterion`` tag."""
    assets = resources.files(__package__)
    css = (assets / "criterion_filter.css").read_text(encoding="utf-8")
    script = (assets / "criterion_filter.js").read_text(encoding="utf-8")
    if "</script" in script.lower() or "</style" in css.lower():
        raise ValueError("an inline asset would close its own element")
    return f"<style>\n{css}</style>\n<script>\n{script}</script>\n"


class _RanBackground:
    """The background steps one scenario ran, shaped as html-pretty reads them."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.steps = list(steps)


class PrettyHTMLFormatter(html_pretty.PrettyHTMLFormatter):
    """html-pretty with per-scenario background steps and the criterion filter."""

    def __init__(self, stream, config, *args: Any, **kwargs: Any) -> None:
        super().__init__(stream, config, *args, **kwargs)
        self.add_html_head_element(criterion_filter())

    def scenario(self, scenario) -> None:
        feature = self.current_feature
        if feature is not None:
            steps = list(getattr(scenario, "background_steps", None) or [])
            feature.add_background(_RanBackground(steps) if steps else None)
        super().scenario(scenario)
