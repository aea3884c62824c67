"""Cleanup rules: the shipped file, the filters a rule becomes, and readable mistakes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cliniko_automations.cleanup import config
from cliniko_automations.cleanup.config import CleanupRules, load_cleanup_rules
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.common.config_file import ConfigError

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cleanup_rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_rules_are_valid_against_the_shipped_accounts():
    rules = load_cleanup_rules(accounts=load_accounts().accounts)
    assert rules.rules
    assert all(rule.created_by_intake for rule in rules.rules)  # the shipped ones stay narrow


def test_a_rule_becomes_anded_cliniko_filters():
    rules = CleanupRules.model_validate(
        {
            "rules": [
                {
                    "name": "tests",
                    "account": "a",
                    "where": [
                        {"field": "email", "op": "like", "value": "%@Example.COM"},
                        {"field": "first_name", "op": "contains", "value": "Test"},
                        {"field": "type_code", "op": "equals", "value": [1, 2]},
                        {"field": "updated_at", "op": "older_than_days", "value": 30},
                    ],
                }
            ]
        }
    )
    (rule,) = rules.rules
    assert rule.created_by_intake is True
    assert [str(f) for f in rule.filters(NOW)] == [
        # Cliniko compares emails lower-cased, so the value is lower-cased too.
        "email:~~%@example.com",
        "first_name:~Test",
        "type_code:=1,2",
        "updated_at:<2026-10-31T12:00:00Z",
    ]
    # Whole seconds, as Cliniko documents its date-time filters, whatever the clock says.
    assert str(rule.filters(NOW.replace(microsecond=654321))[-1]) == (
        "updated_at:<2026-10-31T12:00:00Z"
    )


def test_a_rule_of_exact_values_becomes_exact_filters_spaces_and_all():
    # The ops no shipped rule uses: each must still reach Cliniko as its own filter, and a
    # value's spaces are the value's (only control characters are refused).
    rules = CleanupRules.model_validate(
        {
            "rules": [
                {
                    "name": "exact",
                    "account": "a",
                    "where": [
                        {"field": "company_name", "op": "equals", "value": "Test Clinic Pty"},
                        {"field": "email", "op": "not_equals", "value": "Keep@Example.com"},
                    ],
                }
            ]
        }
    )
    assert [str(f) for f in rules.rules[0].filters(NOW)] == [
        "company_name:=Test Clinic Pty",
        "email:!=keep@example.com",
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"where": []}, "rules.0 (r).where: List should have at least 1 item"),
        ({"where": [{"field": "notes", "op": "contains", "value": "x"}]}, "Input tag 'notes'"),
        (
            {"where": [{"field": "email", "op": "older_than_days", "value": 3}]},
            "rules.0 (r).where.0.email.op: Input should be 'equals'",
        ),
        (
            {"where": [{"field": "updated_at", "op": "older_than_days", "value": 0}]},
            "rules.0 (r).where.0.updated_at.value",
        ),
        ({"name": "Bad Name"}, "rules.0.name: String should match pattern"),
        # `%` alone matches every contact with the field set.
        (
            {"where": [{"field": "email", "op": "contains", "value": "%%"}]},
            "contains '%%' matches every email: name a pattern",
        ),
        # So may `_`, any one character to a SQL LIKE.
        (
            {"where": [{"field": "email", "op": "contains", "value": "_"}]},
            "contains '_' matches every email: name a pattern",
        ),
        (
            {"where": [{"field": "last_name", "op": "like", "value": "%_%"}]},
            "like '%_%' matches every last_name: name a pattern",
        ),
        # A tab no filter can carry, and `true` for a number: refused here, not every run.
        (
            {"where": [{"field": "last_name", "op": "equals", "value": "a\tb"}]},
            "rules.0 (r).where.0.last_name.value: must not contain control characters",
        ),
        (
            {"where": [{"field": "last_name", "op": "equals", "value": "a\x7fb"}]},
            "rules.0 (r).where.0.last_name.value: must not contain control characters",
        ),
        (
            {"where": [{"field": "created_at", "op": "older_than_days", "value": True}]},
            "rules.0 (r).where.0.created_at.value: Input should be a valid integer",
        ),
        (
            {"where": [{"field": "type_code", "op": "equals", "value": [True]}]},
            "rules.0 (r).where.0.type_code.value: type codes are 0, 1 or 2",
        ),
        ({"archive_everything": True}, "rules.0 (r).archive_everything: Extra inputs"),
    ],
)
def test_mistakes_are_reported_with_their_place(tmp_path, rule, expected):
    body = {
        "name": "r",
        "account": "main-clinic",
        "where": [{"field": "email", "op": "contains", "value": "@example.com"}],
        **rule,
    }
    path = write(tmp_path, json.dumps({"rules": [body]}))  # JSON is YAML
    with pytest.raises(ConfigError) as caught:
        load_cleanup_rules(path)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_a_rule_s_updated_at_cutoff_is_the_earliest_of_its_conditions():
    # Its submissions since then keep an intake contact (the core's check against the ledger).
    rules = CleanupRules.model_validate(
        {
            "rules": [
                {
                    "name": "r",
                    "account": "a",
                    "where": [
                        {"field": "updated_at", "op": "older_than_days", "value": 30},
                        {"field": "updated_at", "op": "older_than_days", "value": 90},
                        {"field": "created_at", "op": "older_than_days", "value": 365},
                    ],
                }
            ]
        }
    )
    assert rules.rules[0].updated_before(NOW) == NOW - dt.timedelta(days=90)


def test_names_are_unique_and_accounts_must_exist(tmp_path):
    path = write(
        tmp_path,
        """
rules:
  - {name: same, account: main-clinic, where: [{field: email, op: contains, value: a}]}
  - {name: same, account: nowhere, where: [{field: email, op: contains, value: b}]}
""",
    )
    with pytest.raises(ConfigError, match="rule names must be unique: same"):
        load_cleanup_rules(path)
    path.write_text(
        path.read_text().replace("name: same, account: nowhere", "name: other, account: nowhere")
    )
    with pytest.raises(ConfigError) as caught:
        load_cleanup_rules(path, {"main-clinic": object()})
    assert caught.value.problems == [
        "rules.1 (other).account: 'nowhere' is not in the Cliniko accounts file"
    ]


def test_selected_rules_by_name():
    rules = CleanupRules.model_validate(
        {
            "rules": [
                {
                    "name": n,
                    "account": "a",
                    "where": [{"field": "email", "op": "eq" * 0 + "equals", "value": "x"}],
                }
                for n in ("one", "two")
            ]
        }
    )
    assert [r.name for r in rules.selected(None)] == ["one", "two"]
    assert [r.name for r in rules.selected(["two"])] == ["two"]
    with pytest.raises(ValueError, match="no cleanup rule named three"):
        rules.selected(["two", "three"])


def test_check_command(tmp_path, capsys):
    assert config.main(["--check"]) == 0
    assert "cleanup rules: OK" in capsys.readouterr().out
    bad = write(tmp_path, "rules: [{name: r, account: nowhere, where: []}]")
    assert config.main(["--check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "rules.0 (r).where" in err
    assert config.main(["--check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().err


def test_a_mistake_in_a_rule_is_placed_by_the_rule_s_name_as_well(tmp_path):
    # By its index alone (`rules.1.where.0`), the operator counted rules from 0 to find it.
    text = """
rules:
  - {name: form-tests, account: main-clinic, where: [{field: email, op: like, value: "%@x.com"}]}
  - name: stale-test
    account: main-clinic
    where: [{field: created_at, op: older_than_days, value: '30'}]
"""
    with pytest.raises(ConfigError) as caught:
        load_cleanup_rules(write(tmp_path, text))
    assert caught.value.problems == [
        "rules.1 (stale-test).where.0.created_at.value: Input should be a valid integer "
        "('30' is text to YAML: write 30 without quotes)"
    ]


def test_a_name_key_that_is_no_name_does_not_place_a_mistake(tmp_path):
    # A condition given a stray `name:` holding a value: the location must not repeat it.
    text = """
rules:
  - name: form-tests
    account: main-clinic
    where: [{name: ann@example.org, field: email, op: like, value: "%@x.com"}]
"""
    with pytest.raises(ConfigError) as caught:
        load_cleanup_rules(write(tmp_path, text))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "rules.0 (form-tests).where.0.email.name"
    ]


def _text(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


EXAMPLE_EMAILS = _text("email", "like", "%@example.com")
A_WEEK_OLD = _text("created_at", "older_than_days", 7)


@pytest.mark.parametrize(
    ("condition", "contact", "admitted"),
    [
        # Read leniently: what Cliniko may read as a match is not taken for a dropped filter.
        (EXAMPLE_EMAILS, {"email": "T@EXAMPLE.com"}, True),
        (_text("email", "like", "test_%@x.org"), {"email": "test-1@x.org"}, True),
        (EXAMPLE_EMAILS, {"email": "p@clinic.org"}, False),
        (EXAMPLE_EMAILS, {"email": None}, False),
        (EXAMPLE_EMAILS, {}, True),  # a field the listing leaves out
        (_text("last_name", "equals", "Test"), {"last_name": "test "}, True),
        (_text("last_name", "equals", "Test"), {"last_name": "Tester"}, False),
        (_text("company_name", "contains", "QA"), {"company_name": "Acme qa"}, True),
        (_text("company_name", "contains", "QA"), {"company_name": "Acme"}, False),
        (_text("occupation", "not_equals", "GP"), {"occupation": None}, True),
        (_text("occupation", "not_equals", "GP"), {"occupation": "GP"}, False),
        (_text("last_name", "not_equals", "Test"), {"last_name": "Test "}, True),  # not "Test"
        (_text("email", "not_equals", "A@x.org"), {"email": "a@X.org"}, False),  # sent lower
        # A backslash as itself, or making the next character plain (a SQL LIKE's escape).
        (_text("email", "like", "test\\_%"), {"email": "test_1@x.org"}, True),
        (_text("email", "like", "test\\_%"), {"email": "test\\x@x.org"}, True),
        (_text("email", "like", "test\\_%"), {"email": "testa1@x.org"}, False),
        (_text("type_code", "equals", [0, 2]), {"type_code": 1}, False),
        (_text("type_code", "equals", [0, 2]), {"type_code": 2}, True),
        (A_WEEK_OLD, {"created_at": "2026-11-22T12:00:00Z"}, True),
        (A_WEEK_OLD, {"created_at": "2026-11-29T12:00:00Z"}, False),
        (_text("updated_at", "older_than_days", 7), {"updated_at": "soon"}, True),
    ],
)
def test_a_rule_tells_a_contact_its_filters_would_not_have_listed(condition, contact, admitted):
    rule = config.CleanupRule.model_validate(
        {"name": "r", "account": "clinic", "where": [condition]}
    )
    assert rule.admits(contact, NOW) is admitted
