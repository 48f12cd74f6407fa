"""A behave formatter that writes Cucumber JSON, the format CI dashboards read.

behave's own ``json`` formatter writes a format of its own: no ``uri``,
``id`` or ``line``, tags as bare strings, durations in seconds, doc strings
as lists of lines, tables as headings and rows. Cucumber tools (Jenkins'
cucumber-reports, Xray, cucumber-html-reporter) expect the layout that
cucumber-jvm and cucumber-ruby write, which this formatter follows:

- a feature has ``uri``, ``id``, ``line``, ``keyword``, ``name``,
  ``description``, ``tags`` and ``elements``;
- each scenario is an element, preceded by a ``background`` element holding
  the background steps as they ran for that scenario; rules are flattened;
- a tag is ``{"name": "@tag", "line": N}``; a step result's ``duration`` is in
  nanoseconds; a failed step always has an ``error_message``;
- a doc string is ``{"value", "content_type", "line"}``, a table is ``rows``
  of ``cells``;
- evidence is an ``embeddings`` entry (``mime_type``, base64 ``data``,
  ``name``) on the step that attached it, or on the scenario's ``before`` or
  ``after`` hook entry when a hook attached it.

The file is written once, when the run closes.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from behave.formatter.base import Formatter
from behave.model_type import Status

__all__ = ["CucumberJSONFormatter", "cucumber_status"]

_STATUS = {
    Status.passed: "passed",
    Status.failed: "failed",
    Status.error: "failed",
    Status.hook_error: "failed",
    Status.cleanup_error: "failed",
    Status.undefined: "undefined",
    Status.untested_undefined: "undefined",
    Status.pending: "pending",
    Status.pending_warn: "pending",
    Status.untested_pending: "pending",
}


def cucumber_status(status: Status) -> str:
    """The Cucumber name of a behave status; anything not run is ``skipped``."""
    return _STATUS.get(status, "skipped")


@dataclass
class _Record:
    """What the run told the formatter about one scenario, beyond its model."""

    scenario: Any
    matches: dict[int, str] = field(default_factory=dict)
    embeddings: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    before: list[dict[str, str]] = field(default_factory=list)
    after: list[dict[str, str]] = field(default_factory=list)
    started: bool = False


class CucumberJSONFormatter(Formatter):
    """Cucumber JSON for the whole run, one array of features."""

    name = "cucumber"
    description = "Cucumber JSON (cucumber-jvm layout), written at the end"

    def __init__(self, stream_opener, config) -> None:
        super().__init__(stream_opener, config)
        self.stream = self.open()
        self._features: list[dict[str, Any]] = []
        self._feature: Any = None
        self._records: list[_Record] = []
        self._pending_match: str | None = None
        self._pending_embeddings: list[dict[str, str]] = []
        self._in_step = False
        self._closed = False

    # What behave calls

    def feature(self, feature) -> None:
        self._flush()
        self._feature = feature

    def scenario(self, scenario) -> None:
        self._finish_step_without_result()
        self._records.append(_Record(scenario))

    def match(self, match) -> None:
        self._in_step = True
        location = getattr(match, "location", None)
        self._pending_match = str(location) if location else None
        self._pending_embeddings = []

    def result(self, step) -> None:
        record = self._records[-1] if self._records else None
        if record is not None:
            record.started = True
            if self._pending_match:
                record.matches[id(step)] = self._pending_match
            if self._pending_embeddings:
                record.embeddings.setdefault(id(step), []).extend(
                    self._pending_embeddings
                )
        self._in_step = False
        self._pending_match = None
        self._pending_embeddings = []

    def embed(
        self,
        mime_type: str,
        data: str | bytes,
        caption: str | None = None,
        **_ignored: object,
    ) -> None:
        """Attach evidence to whatever is running: a step, or a scenario hook."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        entry = {
            "mime_type": mime_type,
            "data": base64.b64encode(raw).decode("ascii"),
        }
        if caption:
            entry["name"] = caption
        if self._in_step:
            self._pending_embeddings.append(entry)
        elif self._records:
            record = self._records[-1]
            (record.after if record.started else record.before).append(entry)

    def embedding(self, mime_type: str, data: bytes) -> None:
        """The hook behave's ``context.attach()`` calls."""
        self.embed(mime_type, data)

    def eof(self) -> None:
        self._flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._flush()
        json.dump(self._features, self.stream, indent=2)
        self.stream.write("\n")
        self.close_stream()

    # Building the document

    def _finish_step_without_result(self) -> None:
        self._in_step = False
        self._pending_match = None
        self._pending_embeddings = []

    def _flush(self) -> None:
        if self._feature is None:
            return
        feature = self._feature
        feature_id = _slug(feature.name)
        elements: list[dict[str, Any]] = []
        used_ids: set[str] = set()
        for record in self._records:
            elements.extend(self._elements(record, feature_id, used_ids))
        self._features.append(
            {
                "uri": str(feature.filename),
                "id": feature_id,
                "line": feature.line,
                "keyword": feature.keyword,
                "name": feature.name,
                "description": _description(feature.description),
                "tags": _tags(feature.tags, feature.line),
                "elements": elements,
            }
        )
        self._feature = None
        self._records = []

    def _elements(
        self, record: _Record, feature_id: str, used_ids: set[str]
    ) -> list[dict[str, Any]]:
        scenario = record.scenario
        elements = []
        background_steps = list(scenario.background_steps or [])
        if background_steps:
            background = scenario.background
            elements.append(
                {
                    "type": "background",
                    "keyword": background.keyword,
                    "name": background.name or "",
                    "line": background.line,
                    "description": _description(background.description),
                    "steps": [self._step(step, record) for step in background_steps],
                }
            )

        element_id = f"{feature_id};{_slug(scenario.name)}"
        if element_id in used_ids:
            element_id = f"{element_id};{scenario.line}"
        used_ids.add(element_id)
        element: dict[str, Any] = {
            "type": "scenario",
            "id": element_id,
            "keyword": scenario.keyword,
            "name": scenario.name,
            "line": scenario.line,
            "description": _description(scenario.description),
            "tags": _tags(_inherited_tags(scenario), scenario.line),
            "steps": [self._step(step, record) for step in scenario.steps],
        }
        hook_status = {"status": "failed" if scenario.hook_failed else "passed"}
        if scenario.hook_failed:
            hook_status["error_message"] = "a hook of this scenario failed"
        if record.before:
            element["before"] = [_hook("before_scenario", hook_status, record.before)]
        if record.after:
            element["after"] = [_hook("after_scenario", hook_status, record.after)]
        elements.append(element)
        return elements

    @staticmethod
    def _step(step, record: _Record) -> dict[str, Any]:
        status = cucumber_status(step.status)
        result: dict[str, Any] = {
            "status": status,
            "duration": int(round((step.duration or 0.0) * 1e9)),
        }
        if status == "failed":
            result["error_message"] = step.error_message or step.status.name
        data: dict[str, Any] = {
            "keyword": f"{step.keyword} ",
            "name": step.name,
            "line": step.line,
            "result": result,
        }
        location = record.matches.get(id(step))
        if location:
            data["match"] = {"location": location}
        if step.text is not None:
            data["doc_string"] = {
                "value": str(step.text),
                "content_type": getattr(step.text, "content_type", "") or "",
                "line": getattr(step.text, "line", step.line),
            }
        if step.table is not None:
            rows = [list(step.table.headings)] + [list(row) for row in step.table]
            data["rows"] = [{"cells": cells} for cells in rows]
        embeddings = record.embeddings.get(id(step))
        if embeddings:
            data["embeddings"] = embeddings
        return data


def _hook(
    location: str, result: dict[str, str], embeddings: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "match": {"location": f"environment.py:{location}"},
        "result": {**result, "duration": 0},
        "embeddings": embeddings,
    }


def _inherited_tags(scenario) -> list[Any]:
    """Tags from the feature down to the scenario, outermost first, once each."""
    chain = []
    node = scenario
    while node is not None and node not in chain:
        chain.append(node)
        node = getattr(node, "parent", None)
    tags: list[Any] = []
    for node in reversed(chain):
        for tag in getattr(node, "tags", None) or ():
            if tag not in tags:
                tags.append(tag)
    return tags


def _tags(tags, default_line: int) -> list[dict[str, Any]]:
    return [
        {"name": f"@{tag}", "line": getattr(tag, "line", default_line)} for tag in tags
    ]


def _description(lines) -> str:
    if not lines:
        return ""
    return "\n".join(lines) if not isinstance(lines, str) else lines


def _slug(name: str) -> str:
    return re.sub(r"[^\w.]+", "-", name.lower()).strip("-")
