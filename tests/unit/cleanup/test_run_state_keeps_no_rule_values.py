"""A run's state (CleanupRunsTable, kept 90 days, out of an erasure's reach) holds no value a
rule names: a rule may name a person's email."""

from __future__ import annotations

import json

from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cleanup.core import RuleProgress, RunState

EMAIL = "zq-7781@example.org"


def rule(value: str = EMAIL) -> CleanupRule:
    return CleanupRule(
        name="one-person",
        account="north-clinic",
        where=[{"field": "email", "op": "equals", "value": value}],
    )


def test_the_stored_state_of_a_run_holds_no_value_of_its_rules():
    state = RunState("r", True, "2026-12-04T00:00:00+00:00", [RuleProgress.start(rule())])
    stored = json.dumps(state.as_dict())
    assert EMAIL not in stored.lower()


def test_a_changed_rule_is_still_told_from_the_one_the_run_began_with():
    begun = RuleProgress.start(rule()).definition
    assert begun == RuleProgress.start(rule()).definition
    assert begun != RuleProgress.start(rule("someone.else@example.org")).definition
