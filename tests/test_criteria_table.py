"""The README's criteria table says what the feature file says."""

from __future__ import annotations

from pathlib import Path

from openshell_acceptance.criteria import criteria, criteria_table, readme_table

ROOT = Path(__file__).resolve().parent.parent
FEATURE = ROOT / "features" / "podman_mtls.feature"


def test_every_scenario_names_the_criterion_it_checks():
    from behave.parser import parse_file

    feature = parse_file(str(FEATURE))
    scenarios = list(feature.scenarios)
    for rule in feature.rules:
        scenarios += rule.scenarios
    untagged = [
        s.name for s in scenarios if not any(t.startswith("criterion.") for t in s.tags)
    ]

    assert scenarios
    assert untagged == []


def test_the_readme_table_is_the_one_the_feature_file_gives():
    assert readme_table(ROOT / "README.md") == criteria_table(FEATURE), (
        "README criteria table is stale: run scripts/criteria-table and paste it"
    )


def test_reference_only_criteria_are_marked_as_such():
    limits = {c.name: [lim for _, lim in c.scenarios] for c in criteria(FEATURE)}

    assert limits["peer-identity"] == [("only.with_target=reference",)]
    assert limits["supervisor-connects"] == [()]
