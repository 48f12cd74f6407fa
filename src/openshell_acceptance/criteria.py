"""The acceptance criteria as the feature file names them, for the README table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from behave.model import ScenarioOutline
from behave.parser import parse_file

CRITERION_PREFIX = "criterion."
TABLE_START = "<!-- criteria:start -->"
TABLE_END = "<!-- criteria:end -->"


LIMIT_PREFIXES = ("only.with_", "not.with_")


@dataclass(frozen=True)
class Criterion:
    """One ``@criterion.NAME`` tag, the rule it sits under, and its scenarios.

    ``scenarios`` pairs each scenario title with the active tags that limit
    where it runs (empty: everywhere).
    """

    name: str
    rule: str
    scenarios: tuple[tuple[str, tuple[str, ...]], ...]


def criteria(feature_path: Path) -> list[Criterion]:
    """Every criterion tag of the feature, in the order it first appears."""
    feature = parse_file(str(feature_path))
    found: dict[str, Criterion] = {}
    for rule_name, scenario in _scenarios(feature):
        entry = (_title(scenario), _limits(scenario.tags))
        for tag in scenario.tags:
            if not tag.startswith(CRITERION_PREFIX):
                continue
            name = tag[len(CRITERION_PREFIX) :]
            known = found.get(name)
            scenarios = (*known.scenarios, entry) if known else (entry,)
            found[name] = Criterion(name, rule_name, scenarios)
    return list(found.values())


def criteria_table(feature_path: Path) -> str:
    """A Markdown table: criterion tag, rule, scenario(s), target or lane limits."""
    lines = [
        "| criterion | rule | scenario | runs on |",
        "| --- | --- | --- | --- |",
    ]
    for item in criteria(feature_path):
        scenarios = "<br>".join(title for title, _ in item.scenarios)
        runs_on = "<br>".join(_runs_on(limits) for _, limits in item.scenarios)
        lines.append(f"| `{item.name}` | {item.rule} | {scenarios} | {runs_on} |")
    return "\n".join(lines)


def _limits(tags) -> tuple[str, ...]:
    return tuple(t for t in tags if t.startswith(LIMIT_PREFIXES))


def _runs_on(limits: tuple[str, ...]) -> str:
    words = []
    for tag in limits:
        kind, _, value = tag.partition(".with_")
        words.append(f"{value}" if kind == "only" else f"not {value}")
    return ", ".join(words) or "all"


def readme_table(readme_path: Path) -> str:
    """The table between the README's criteria markers."""
    text = readme_path.read_text(encoding="utf-8")
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END)].strip()


def _scenarios(feature):
    for scenario in feature.scenarios:
        yield "", scenario
    for rule in getattr(feature, "rules", []):
        for scenario in rule.scenarios:
            yield rule.name, scenario


def _title(scenario) -> str:
    if isinstance(scenario, ScenarioOutline):
        return f"{scenario.name} (outline, {len(scenario.scenarios)} rows)"
    return scenario.name
