"""The form-source file: the shipped one is valid, and each kind of mistake is named."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import yaml
from cliniko_automations.common.accounts import DEFAULT_SECRETS_PREFIX, load_accounts
from cliniko_automations.intake.config import (
    DEFAULT_PATH,
    DIRECT_TARGETS,
    ConfigError,
    Target,
    form_sources_of,
    load_form_sources,
    main,
)
from cliniko_automations.intake_api.mapping import map_answers

PROVIDERS = {"typeform", "tally", "webflow", "formspree", "jotform", "html", "json"}


def minimal(**source: object) -> dict:
    base = {
        "provider": "json",
        "signing_secret": "forms/s/secret",
        "account": "main-clinic",  # an account of the shipped accounts file
        "fields": [{"from": "name", "to": "full_name"}],
    }
    base.update(source)
    return {"sources": {"s": base}}


def problems_of(tmp_path: Path, data: object) -> list[str]:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    with pytest.raises(ConfigError) as caught:
        load_form_sources(path, accounts={"main-clinic"})
    return caught.value.problems


def test_mapping_targets_follow_the_draft():
    assert set(get_args(Target)) == {*DIRECT_TARGETS, "full_name", "phone"}


def test_shipped_file_is_valid_and_has_a_source_per_provider():
    sources = load_form_sources(DEFAULT_PATH, load_accounts().accounts)
    assert {source.provider for source in sources.sources.values()} == PROVIDERS
    for name, source in sources.sources.items():
        assert source.name == name


def test_accounts_are_not_kept_in_the_form_source_file(tmp_path):
    # They moved to common/cliniko_accounts.yaml: an old file is told where, not "extra input".
    data = {"accounts": {"main-clinic": {"api_key_secret": "cliniko/key"}}, **minimal()}
    assert any("their own file now" in problem for problem in problems_of(tmp_path, data))


def test_env_var_overrides_the_default_path(tmp_path, monkeypatch):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    monkeypatch.setenv("FORM_SOURCES_FILE", str(path))
    assert list(load_form_sources().sources) == ["s"]


def test_check_command_secrets_prefix(tmp_path, capsys):
    # The template lets intake read secrets under SecretsPrefix (default cliniko-automations/).
    assert main(["--check", str(DEFAULT_PATH), "--secrets-prefix", "cliniko-automations/"]) == 0
    assert main(["--check", str(DEFAULT_PATH), "--secrets-prefix", "other/"]) == 1
    err = capsys.readouterr().err
    assert (
        "accounts.main-clinic.api_key_secret: secret "
        "'cliniko-automations/accounts/main-clinic/api-key' is outside SecretsPrefix 'other/'"
    ) in err


def test_check_command_holds_secrets_to_the_templates_prefix_by_default(tmp_path, capsys):
    path = tmp_path / "outside.yaml"
    path.write_text(yaml.safe_dump(minimal(signing_secret="clinic/forms/s/signing-secret")))
    assert main(["--check", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    # The source, the secret, the prefix and the fix, in one line.
    assert (
        "  - sources.s.signing_secret: secret 'clinic/forms/s/signing-secret' is outside "
        "SecretsPrefix 'cliniko-automations/', so the functions may not read it: name a "
        "secret that starts with 'cliniko-automations/', or deploy with a SecretsPrefix the name "
        "starts with and check with --secrets-prefix set to it"
    ) in err
    assert main(["--check", str(path), "--secrets-prefix", "clinic/"]) == 1  # the account's
    assert main(["--check", str(path), "--secrets-prefix", ""]) == 0


def test_default_secrets_prefix_is_the_templates():
    from local_run.template import load

    template = load(Path(__file__).resolve().parents[3] / "template.yaml")
    assert template["Parameters"]["SecretsPrefix"]["Default"] == DEFAULT_SECRETS_PREFIX


def test_check_command_exits_non_zero_with_readable_lines(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(minimal(account="nowhere", update_policy="sometimes")))
    assert main(["--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "invalid form-source configuration" in err
    assert "sources.s.update_policy" in err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"provider": "wufoo"}, "sources.s.provider: Input should be"),
        ({"signing_secret": None}, "provider json needs signing_secret (its sender signs"),
        ({"provider": "tally", "signing_secret": None, "token_secret": "t"}, "set signing_secret"),
        ({"provider": "jotform", "signing_secret": None}, "provider jotform signs nothing: set"),
        ({"provider": "html", "signing_secret": None}, "provider html needs the `html` options"),
        (
            {"provider": "html", "signing_secret": None, "token_secret": "t"},
            "a browser cannot keep a token",
        ),
        (
            {"account": "elsewhere"},
            "sources.s.account: 'elsewhere' is not in the Cliniko accounts file",
        ),
        ({"fields": [{"from": "e", "to": "email"}]}, "no field maps to first_name"),
        ({"fields": [{"from": "n", "to": "nickname"}]}, "sources.s.fields.0.to: Input should be"),
        # Named as the file writes it: `from`, not the code's `from_`.
        ({"fields": [{"from": "", "to": "full_name"}]}, "sources.s.fields.0.from: String should"),
        (
            {"fields": [{"from": "n", "to": "full_name", "phone_type": "Work"}]},
            "phone_type only applies to `to: phone`",
        ),
        (
            {
                "fields": [
                    {"from": "n", "to": "full_name"},
                    {"from": "t", "to": "type_code", "values": {"GP": 7}},
                ]
            },
            "type_code must be one of [0, 1, 2]",
        ),
        (
            {
                "fields": [
                    {"from": "n", "to": "full_name"},
                    {"from": "t", "to": "type_code", "values": {"GP": 1.0}},
                ]
            },
            "sources.s.fields.1.values.GP: 1.0 is read as 1: write 1 itself",
        ),
        (
            {
                "fields": [
                    {"from": "n", "to": "full_name"},
                    {"from": "d", "to": "doctor_type", "values": {"GP": "gp"}},
                ]
            },
            "doctor_type must be one of ['general_practitioner', 'specialist']",
        ),
        (
            {
                "fields": [
                    {"from": "n", "to": "full_name"},
                    {"from": "t", "to": "title", "values": {"Mister": 1}},
                ]
            },
            "values['Mister']: must be text for `to: title`",
        ),
        (
            {
                "fields": [{"from": "n", "to": "full_name"}, {"from": "c", "to": "notes"}],
                "notes_template": "Seen: {c}",
            },
            "notes_template and a field mapped to notes both set notes",
        ),
        ({"required": ["email"]}, "required: 'email' is never mapped nor defaulted"),
        ({"required": ["shoe_size"]}, "required: 'shoe_size' is not a Cliniko contact field"),
        (
            {"defaults": {"country_code": "XX"}},
            "defaults.country_code: is not included in the list",
        ),
        ({"defaults": {"type_code": 9}}, "defaults.type_code: is not included in the list"),
        ({"defaults": {"phone_numbers": []}}, "defaults: 'phone_numbers' cannot have a default"),
        ({"notes_template": "Hi {name"}, "notes_template: '{' is not a {field id} placeholder"),
        (
            {"notes_template": '{"a": 1}'},
            "notes_template: '{\"a\": 1}' is not a {field id} placeholder",
        ),
        ({"notes_template": "{ }"}, "notes_template: '{ }' is not a {field id} placeholder"),
        ({"update_policy": "sometimes"}, "sources.s.update_policy: Input should be"),
        ({"colour": "blue"}, "sources.s.colour: Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_named_with_their_path(tmp_path, change, expected):
    problems = problems_of(tmp_path, minimal(**change))
    assert any(expected in problem for problem in problems), problems


def test_a_notes_template_names_fields_as_providers_name_them():
    # Webflow's field ids are the form's field names; a PHP form's checkboxes end in [].
    template = "Heard of us: {How did you hear about us?}. {interests[]}; {Date of birth (d/m/y)}"
    source = form_sources_of(minimal(notes_template=template)).sources["s"]
    answers = {
        "name": "Ann Lee",
        "How did you hear about us?": "A friend",
        "interests[]": ["Pilates", "Rehab"],
        "Date of birth (d/m/y)": "01/02/1980",
    }
    notes = map_answers(answers, source)["notes"]
    assert notes == "Heard of us: A friend. Pilates, Rehab; 01/02/1980"


def test_a_country_label_translates_to_a_code_cliniko_takes(tmp_path):
    # `values: {Norge: Norway}` passed: the answer became "Norway", no code Cliniko has, so
    # every such referral was left without its country (a 422 from a browser's form).
    for target, fix in (("Norway", "write 'NO'"), ("no", "write 'NO'"), ("Narnia", "such as 'NO'")):
        rule = {"from": "c", "to": "country_code", "values": {"UK": "GB", "Norge": target}}
        problems = problems_of(tmp_path, minimal(fields=[{"from": "n", "to": "full_name"}, rule]))
        assert problems == [
            "sources.s.fields.1: values['Norge']: country_code must be an ISO 3166 alpha-2 "
            f"code, {fix}"
        ], target


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # Both secrets were both required: a Gravity Forms sender (the token alone) or a
        # script (the signature alone) was refused 401 at every delivery, which no provider
        # sends again, while --check and the build said OK.
        (
            {"token_secret": "forms/s/token"},
            "provider json takes signing_secret or token_secret, not both: a delivery would "
            "need the signature and the token",
        ),
        (
            {"provider": "typeform", "token_secret": "forms/s/token"},
            "provider typeform signs its deliveries and sends no token: remove token_secret",
        ),
    ],
)
def test_a_source_names_the_one_secret_its_sender_proves_itself_with(tmp_path, change, expected):
    assert problems_of(tmp_path, minimal(**change)) == [f"sources.s: {expected}"]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        # Each was Cliniko's word alone ("is not included in the list", "is invalid"): the
        # author of a default `Norway`, `'1'` or `2000` was not told what to write instead.
        (
            "country_code: Norway",
            "defaults.country_code: is not included in the list: write the country's ISO "
            "3166 alpha-2 code, such as 'AU' or 'NO', in quotes",
        ),
        # validate_contact_fields reads the code without case; Cliniko's docs write it `AU`, as the
        # intake sends a country read from an answer: a lower-case default went as written.
        (
            "country_code: au",
            "defaults.country_code: 'au' is not an ISO 3166 alpha-2 code as written: write 'AU'",
        ),
        (
            "type_code: '1'",
            "defaults.type_code: is not included in the list: write 0 (Standard), 1 (Doctor) "
            "or 2 (3rd Party Payer), without quotes",
        ),
        (
            "doctor_type: GP",
            "defaults.doctor_type: is not included in the list: write general_practitioner "
            "or specialist",
        ),
        (
            "post_code: 2000",
            "defaults.post_code: is invalid: YAML reads 2000 as a number: quote it ('2000')",
        ),
        # A default left empty was taken as null: a default that gives nothing, and counted
        # as the field `required` asks for, so every submission without it was a 422.
        (
            "company_name: ",
            "defaults.company_name: no value (YAML reads nothing, ~ and null as none): "
            "write one, or leave the key out",
        ),
    ],
)
def test_a_default_cliniko_would_refuse_says_what_to_write(tmp_path, written, expected):
    text = (
        "sources:\n  s:\n    provider: json\n    token_secret: forms/s/token\n"
        "    account: main-clinic\n"
        "    fields: [{from: n, to: full_name}]\n"
        f"    defaults:\n      {written}\n"
    )
    assert problems_of(tmp_path, text) == [f"sources.s: {expected}"]


def test_a_source_left_to_its_defaults():
    # form_sources.yaml: fill_blanks is the default policy; full_name gives both names.
    source = form_sources_of(minimal(required=["first_name", "last_name"])).sources["s"]
    assert source.update_policy == "fill_blanks"


def test_a_sources_hourly_ceiling_is_a_whole_number_not_below_zero(tmp_path):
    assert form_sources_of(minimal()).sources["s"].hourly_ceiling is None  # the stack's
    assert form_sources_of(minimal(hourly_ceiling=0)).sources["s"].hourly_ceiling == 0
    (negative,) = problems_of(tmp_path, minimal(hourly_ceiling=-1))
    assert negative.startswith("sources.s.hourly_ceiling: ")
    (quoted,) = problems_of(tmp_path, minimal(hourly_ceiling="500"))
    assert quoted.startswith("sources.s.hourly_ceiling: ")


def test_a_file_without_sources_is_refused(tmp_path):
    problems = problems_of(tmp_path, {"sources": {}})
    assert problems == ["sources: Dictionary should have at least 1 item after validation, not 0"]


def test_a_json_source_takes_a_token_instead_of_a_signing_secret():
    # Gravity Forms and WPForms cannot sign: their webhooks can add a static header.
    data = minimal(signing_secret=None, token_secret="forms/gravity/token")
    source = form_sources_of(data).sources["s"]
    assert (source.signing_secret, source.token_secret) == (None, "forms/gravity/token")


def test_bad_names(tmp_path):
    data = minimal(signing_secret="has spaces")
    data["sources"]["Bad Name"] = data["sources"]["s"]
    problems = problems_of(tmp_path, data)
    assert "sources.Bad Name.name: a source name is the {source} in the URL" in problems[0]
    assert any("sources.s.signing_secret: not a Secrets Manager name" in p for p in problems)


def test_a_source_name_is_its_key_of_at_most_64_characters(tmp_path):
    source = minimal()["sources"]["s"]
    assert list(form_sources_of({"sources": {"a" * 64: source}}).sources) == ["a" * 64]
    problems = problems_of(tmp_path, {"sources": {"a" * 65: source}})
    assert "a source name is the {source} in the URL: 1-64" in problems[0]
    problems = problems_of(tmp_path, {"sources": {"s": {**source, "name": "other"}}})
    assert problems == ["sources.s: name differs from its key"]


def test_several_mistakes_in_one_source_are_all_listed(tmp_path):
    problems = problems_of(
        tmp_path, minimal(signing_secret=None, required=["email"], defaults={"type_code": 9})
    )
    assert len(problems) == 3, problems


def html_options(**change: object) -> dict:
    options = {
        "allowed_origins": ["https://clinic.example"],
        "success_urls": ["https://clinic.example/thanks"],
        "error_urls": ["https://clinic.example/oops"],
    }
    options.update(change)
    return minimal(provider="html", signing_secret=None, html=options)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"allowed_origins": ["https://clinic.example/"]}, "an origin is scheme://host[:port]"),
        ({"allowed_origins": []}, "allowed_origins: List should have at least 1 item"),
        ({"success_urls": ["http://clinic.example/thanks"]}, "must be https"),
        ({"error_urls": ["/oops"]}, "must be https"),
        ({"captcha": {"provider": "hcaptcha", "secret": "x"}}, "captcha.provider"),
        ({"captcha": {"provider": "recaptcha", "secret": "x", "min_score": 2}}, "min_score"),
        (
            {"captcha": {"provider": "turnstile", "secret": "x", "min_score": 0.5}},
            "min_score: turnstile answers no score (only reCAPTCHA v3 does)",
        ),
        (
            {"captcha": {"provider": "recaptcha", "secret": "x", "min_score": "0.5"}},
            "html.captcha.min_score: '0.5' is read as 0.5: write 0.5 itself",
        ),
        (
            {"allowed_origins": ["https://clinic.example:443"]},
            "browsers leave the default port out of Origin: write https://clinic.example",
        ),
        ({"allowed_origins": ["https://bücher.example"]}, "in its xn-- (punycode) form"),
        ({"allowed_origins": ["https://clinic.example?a=1"]}, "an origin is scheme://host[:port]"),
        ({"success_urls": ["https://clinic.example/thanks#top"]}, "must not have a #fragment"),
        # Taken out before mapping: a honeypot a rule maps drops whoever fills it in, a nonce
        # a rule maps loses its value into the submission's id.
        ({"honeypot_field": "name"}, "html.honeypot_field: 'name' is also a field the form"),
        ({"nonce_field": "name"}, "html.nonce_field: 'name' is also a field the form's data"),
        ({"nonce_field": "_success_url"}, "'_success_url' is an input the intake reads itself"),
        (
            {"honeypot_field": "cf-turnstile-response"},
            "'cf-turnstile-response' is an input the intake reads itself",
        ),
        (
            {"honeypot_field": "website", "nonce_field": "website"},
            "html.nonce_field: the same input as honeypot_field",
        ),
    ],
)
def test_html_option_mistakes(tmp_path, change, expected):
    problems = problems_of(tmp_path, html_options(**change))
    assert any(expected in problem for problem in problems), problems


def test_a_honeypot_the_notes_template_names_is_refused(tmp_path):
    data = html_options(honeypot_field="website")
    data["sources"]["s"]["notes_template"] = "Site: {website}"
    problems = problems_of(tmp_path, data)
    assert any("html.honeypot_field: 'website' is also a field" in p for p in problems), problems


def test_a_whole_min_score_is_taken_as_written():
    data = html_options(captcha={"provider": "recaptcha", "secret": "r", "min_score": 1})
    source = form_sources_of(data).sources["s"]
    assert source.html is not None and source.html.captcha is not None
    assert source.html.captcha.min_score == 1


def test_check_command_holds_the_captcha_secret_to_the_prefix(tmp_path, capsys):
    # The intake API reads it for every submission of the form: one outside is never readable.
    path = tmp_path / "captcha.yaml"
    captcha = {"provider": "turnstile", "secret": "clinic/turnstile"}
    path.write_text(yaml.safe_dump(html_options(captcha=captcha)))
    assert main(["--check", str(path)]) == 1
    assert "sources.s.html.captcha.secret: secret 'clinic/turnstile' is outside" in (
        capsys.readouterr().err
    )


def test_html_allows_http_for_localhost_and_a_local_captcha_endpoint(tmp_path):
    data = html_options(
        allowed_origins=["http://localhost:3000"],
        captcha={"provider": "turnstile", "secret": "t", "verify_url": "http://127.0.0.1:9/v"},
    )
    source = form_sources_of(data).sources["s"]
    assert source.html is not None and source.html.captcha is not None
    assert source.html.captcha.endpoint == "http://127.0.0.1:9/v"
    assert source.html.captcha.token_field == "cf-turnstile-response"


def test_html_options_only_for_html_and_signing_secret_not_for_html(tmp_path):
    data = html_options()
    data["sources"]["s"]["signing_secret"] = "forms/x"
    assert any("html signs nothing" in p for p in problems_of(tmp_path, data))
    data = minimal(html=html_options()["sources"]["s"]["html"])
    assert any("only apply to provider html" in p for p in problems_of(tmp_path, data))


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_form_sources(tmp_path / "missing.yaml")
    assert problems_of(tmp_path, "sources: [unclosed") == ["not valid YAML at line 1, column 19"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_form_sources(binary)
    assert "must be a mapping" in problems_of(tmp_path, "- a list\n")[0]


def test_a_list_item_without_a_name_is_placed_by_its_index(tmp_path):
    problems = problems_of(tmp_path, minimal(fields=[{"from": "n", "to": "shoe_size"}]))
    assert any(p.startswith("sources.s.fields.0.to: Input should be") for p in problems), problems
