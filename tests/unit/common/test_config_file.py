"""Configuration files compiled at build time: the JSON is used only for the YAML it came from."""

from __future__ import annotations

import json

import pytest
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.common.config_file import (
    ConfigError,
    compile_config_file,
    compiled_path,
    read_config_data,
)

ACCOUNTS = "accounts:\n  other: {api_key_secret: cliniko-automations/other}\n"


def test_the_compiled_json_holds_the_yaml_s_data(tmp_path):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(ACCOUNTS)
    target = compile_config_file(path)
    assert target == tmp_path / "cliniko_accounts.json"
    # Unchecked unless the build says it validated the file: a loader validates it then.
    assert json.loads(target.read_text())["checked"] is False
    assert json.loads(target.read_text())["data"] == {
        "accounts": {"other": {"api_key_secret": "cliniko-automations/other"}}
    }
    assert load_accounts(path).names() == ["other"]


def test_a_value_json_has_no_type_for_stops_the_build_with_a_message(tmp_path):
    path = tmp_path / "notes.yaml"
    path.write_text("since: 2026-12-03\n")  # a YAML date
    with pytest.raises(ConfigError, match="holds a value JSON cannot carry"):
        compile_config_file(path)
    assert not compiled_path(path).exists()


def test_the_loader_reads_the_json_made_from_this_very_yaml(tmp_path):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(ACCOUNTS)
    target = compile_config_file(path)
    # Same stamp, other data: only a loader that reads the JSON sees "from-json".
    stamped = json.loads(target.read_text())
    stamped["data"] = {"accounts": {"from-json": {"api_key_secret": "cliniko-automations/j"}}}
    target.write_text(json.dumps(stamped))
    assert load_accounts(path).names() == ["from-json"]


def test_an_edited_yaml_is_parsed_again_not_its_stale_json(tmp_path):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(ACCOUNTS)
    compile_config_file(path)
    path.write_text("accounts:\n  edited: {api_key_secret: cliniko-automations/edited}\n")
    assert load_accounts(path).names() == ["edited"]


@pytest.mark.parametrize("junk", ["", "not json", "[]", '{"yaml_sha256": 1}'])
def test_a_broken_json_falls_back_to_the_yaml(tmp_path, junk):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(ACCOUNTS)
    compiled_path(path).write_text(junk)
    assert read_config_data(path) == {
        "accounts": {"other": {"api_key_secret": "cliniko-automations/other"}}
    }


def test_invalid_yaml_is_named_with_its_place_by_the_build_and_the_loader(tmp_path):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text("accounts: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        compile_config_file(path)
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        read_config_data(path)


def test_a_key_given_twice_is_refused_by_the_build_and_the_loader(tmp_path):
    # PyYAML keeps the last of two equal keys: a cleanup rule's second `where:` silently
    # replaced its first (an email filter gone, every intake contact matched), a subscriber's
    # second `include_fields:` sent personal data.
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  main: {api_key_secret: cliniko-automations/main}\n"
        "  main: {api_key_secret: cliniko-automations/other}\n"
    )
    for read in (compile_config_file, read_config_data):
        with pytest.raises(ConfigError, match=r"a key given twice \('main'\) at line 3"):
            read(path)


def test_a_merge_key_s_values_may_be_overridden(tmp_path):
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(
        "defaults: &defaults {api_key_secret: cliniko-automations/main}\n"
        "accounts:\n"
        "  other:\n"
        "    <<: *defaults\n"
        "    api_key_secret: cliniko-automations/other\n"
    )
    data = read_config_data(path)
    assert data["accounts"] == {"other": {"api_key_secret": "cliniko-automations/other"}}


def test_json_the_build_checked_is_built_without_validating_and_equals_the_validated(tmp_path):
    from cliniko_automations.common.accounts import ClinikoAccounts
    from cliniko_automations.common.config_file import validated
    from cliniko_automations.common.plain_data import from_data
    from cliniko_automations.intake.config import DEFAULT_PATH, FormSources, prepared

    for shipped, kind, prepare in (
        (DEFAULT_PATH, FormSources, prepared),
        (DEFAULT_PATH.parents[1] / "common" / "cliniko_accounts.yaml", ClinikoAccounts, None),
    ):
        data = read_config_data(shipped)
        data = prepare(data) if prepare else data
        assert from_data(kind, data) == validated(shipped, kind, data)
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(ACCOUNTS)
    target = compile_config_file(path, checked=True)
    assert json.loads(target.read_text())["checked"] is True
    # What validation would refuse, the build's stamp vouches for: it is not checked again.
    stamped = json.loads(target.read_text())
    stamped["data"] = {"accounts": {"x": {"api_key_secret": "no spaces allowed"}}}
    target.write_text(json.dumps(stamped))
    assert load_accounts(path).key_secret("x") == "no spaces allowed"
    stamped["checked"] = False
    target.write_text(json.dumps(stamped))
    with pytest.raises(ConfigError, match="not a Secrets Manager name"):
        load_accounts(path)


def test_a_file_nested_too_deeply_is_a_clear_mistake_not_a_traceback(tmp_path, capsys):
    from cliniko_automations.cleanup.config import main

    path = tmp_path / "cleanup_rules.yaml"
    path.write_text("rules:\n  " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    assert main(["--check", str(path)]) == 1
    assert "nested too deeply" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_accounts(path)


@pytest.mark.parametrize(
    ("written", "line", "read_as", "fix"),
    [
        # A cleanup rule's `older_than_days: 030` was read as octal: 24 days, not 30.
        ("rules:\n  - {name: r, where: [{value: 030}]}\n", 2, "the octal number 24", "write 30"),
        # A `values:` label `Yes` (or `No`, `On`, `Off`) was read as true: refused as
        # "values.1.[key]: Input should be a valid string", the word the author wrote gone.
        ("values:\n  Yes: general_practitioner\n", 2, "true", "quote it ('Yes')"),
        ("values:\n  'x': 1\n  Off: 0\n", 3, "false", "quote it ('Off')"),
        # A country default `NO` (Norway) was false: "is not included in the list".
        ("defaults: {country_code: NO}\n", 1, "false", "quote it ('NO')"),
        ("defaults:\n  post_code: 0412\n", 2, "the octal number 266", "quote it ('0412')"),
        # YAML 1.1 reads 12:30 as base 60: 750.
        ("values: {'a': 12:30}\n", 1, "the number 750", "quote it ('12:30')"),
    ],
)
def test_a_yaml_1_1_reading_is_refused_at_its_place_with_the_fix(
    tmp_path, written, line, read_as, fix
):
    # YAML 1.2 (and JSON, and every other tool) reads these as the text they look like;
    # PyYAML reads them as YAML 1.1 did. Refused at the build and by --check, never guessed.
    path = tmp_path / "config.yaml"
    path.write_text(written)
    for read in (compile_config_file, read_config_data):
        with pytest.raises(ConfigError) as caught:
            read(path)
        (problem,) = caught.value.problems
        assert f"is read by YAML as {read_as}" in problem
        assert f"at line {line}," in problem
        assert fix in problem


@pytest.mark.parametrize(
    "written",
    [
        "flag: true\nother: false\nloud: TRUE\n",
        "days: 30\nzero: 0\nnegative: -5\nhex: 0x1F\n",
        "post_code: '0412'\ncountry: \"NO\"\nlabel: 'Yes'\ntime: '12:30'\n",
        "plain: 08\nmore: 0800\nphone: 0412 345 678\n",  # text to YAML 1.1 as well
    ],
)
def test_values_every_yaml_reads_alike_are_taken(tmp_path, written):
    path = tmp_path / "config.yaml"
    path.write_text(written)
    assert read_config_data(path)


@pytest.mark.parametrize(
    ("where", "written", "expected"),
    [
        # Each was "Input should be a valid integer" (or string, or 0, 1 or 2) alone: the
        # value looked right to its author, who was not told YAML read it as another type.
        (
            "rules:\n  - {name: r, account: main, where: [{field: created_at, "
            "op: older_than_days, value: '30'}]}\n",
            "rules.0 (r).where.0.created_at.value: Input should be a valid integer",
            "'30' is text to YAML: write 30 without quotes",
        ),
        (
            "rules:\n  - {name: r, account: main, where: [{field: type_code, "
            "op: equals, value: ['1']}]}\n",
            "rules.0 (r).where.0.type_code.value.0: Input should be 0, 1 or 2",
            "'1' is text to YAML: write 1 without quotes",
        ),
        (
            "rules:\n  - {name: r, account: main, where: [{field: occupation, "
            "op: equals, value: 2000}]}\n",
            "rules.0 (r).where.0.occupation.value: Input should be a valid string",
            "YAML reads 2000 as a number: quote it ('2000')",
        ),
        (
            "rules:\n  - {name: r, account: main, where: [{field: occupation, "
            "op: equals, value: false}]}\n",
            "rules.0 (r).where.0.occupation.value: Input should be a valid string",
            "YAML reads false as a boolean: quote it ('false')",
        ),
        (
            "rules:\n  - {name: r, account: ~, where: [{field: email, op: equals, value: a}]}\n",
            "rules.0 (r).account: Input should be a valid string",
            "no value: YAML reads nothing, ~ and null as none",
        ),
        (
            "rules:\n  - {name: r, account: main, where: }\n",
            "rules.0 (r).where: Input should be a valid list",
            "no value: YAML reads nothing, ~ and null as none",
        ),
    ],
)
def test_a_value_of_another_type_than_expected_says_how_yaml_read_it(
    tmp_path, where, written, expected
):
    from cliniko_automations.cleanup.config import load_cleanup_rules

    path = tmp_path / "cleanup_rules.yaml"
    path.write_text(where)
    with pytest.raises(ConfigError) as caught:
        load_cleanup_rules(path)
    assert caught.value.problems == [f"{written} ({expected})"]


def test_a_key_of_another_type_than_text_says_how_yaml_read_it(tmp_path):
    from cliniko_automations.intake.config import load_form_sources

    path = tmp_path / "form_sources.yaml"
    path.write_text(
        "sources:\n  s:\n    provider: html\n    account: a\n    fields:\n"
        "      - {from: name, to: first_name}\n"
        "      - {from: kind, to: type_code, values: {1: 1, 2: 2}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_form_sources(path)
    assert (
        "sources.s.fields.1.values.1.[key]: Input should be a valid string "
        "(YAML reads 1 as a number: quote it ('1'))" in caught.value.problems
    )


def test_a_tab_that_indents_is_named_as_one(tmp_path):
    # It was "not valid YAML at line 3, column 1": an editor shows a tab as spaces.
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text("accounts:\n  main:\n\tapi_key_secret: cliniko-automations/accounts/main\n")
    for read in (compile_config_file, read_config_data):
        with pytest.raises(ConfigError) as caught:
            read(path)
        assert caught.value.problems == ["a tab at line 3, column 1: YAML indents with spaces only"]


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ('"api_key_secret "', "'api_key_secret '"),  # quoted with a space
        ("api_key_secret\u00a0", "'api_key_secret\\xa0'"),  # a no-break space pasted along
        ("api_key\u200b_secret", "'api_key\\u200b_secret'"),  # a zero-width space
    ],
)
def test_a_key_with_an_invisible_character_is_shown_with_it(tmp_path, key, shown):
    # It read "accounts.main.api_key_secret : Extra inputs are not permitted" beside
    # "api_key_secret: Field required": the one character that differed could not be seen.
    path = tmp_path / "cliniko_accounts.yaml"
    path.write_text(f"accounts:\n  main:\n    {key}: cliniko-automations/accounts/main\n")
    with pytest.raises(ConfigError) as caught:
        load_accounts(path)
    assert f"accounts.main.{shown}: Extra inputs are not permitted" in caught.value.problems
