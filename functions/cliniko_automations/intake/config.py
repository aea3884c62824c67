"""Form-source configuration: which sources exist, how each is verified, mapped and routed.

One YAML file (``form_sources.yaml`` beside this module, or env ``FORM_SOURCES_FILE``) lists
the form sources; each names its Cliniko account, a key of the accounts file
(``common/cliniko_accounts.yaml``, see ``common.accounts``). Every mistake is reported with
its path in the file, at test time (a test loads the shipped file) and at build time::

    python -m cliniko_automations.intake.config --check [path] [--accounts path]

The file names secrets; it never holds one.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("intake.config")

import dataclasses
import os
import re
import sys
from collections.abc import Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from cliniko_automations.cliniko import rules
from cliniko_automations.common.accounts import (
    CLINIKO_KEYS_FOLDER,
    WEBHOOK_SECRETS_FOLDER,
    SecretName,
    accounts_path,
    load_accounts,
    require_secrets_within,
    run_check,
)
from cliniko_automations.common.config_file import (
    FORBID_EXTRA,
    Checked,
    ConfigError,
    Limits,
    load_config_file,
    print_problems,
    quote_for_text,
    validated,
)
from cliniko_automations.intake.submission import PhoneType, UpdatePolicy

DEFAULT_PATH = Path(__file__).with_name("form_sources.yaml")

Provider = Literal["typeform", "tally", "webflow", "formspree", "jotform", "html", "json"]
# Providers whose deliveries carry an HMAC: a source of these kinds must name its secret.
SIGNED_PROVIDERS = frozenset({"typeform", "tally", "webflow", "formspree", "json"})
# Of those, the ones whose sender may carry a static token (X-Intake-Token) instead: tools
# that cannot sign but can add a header to their webhook (Gravity Forms, WPForms) post JSON.
TOKEN_INSTEAD_PROVIDERS = frozenset({"json"})
# Under SecretsPrefix, where the Cliniko keys and the webhook signing secrets are named: the
# intake API is denied them, so a source's secret named there could never be read.
INTAKE_DENIED_UNDER_PREFIX = (CLINIKO_KEYS_FOLDER, WEBHOOK_SECRETS_FOLDER)

# Where a mapped value can go: any writable Cliniko field but phone_numbers, plus two derived
# targets: full_name is split into first_name/last_name; phone appends to phone_numbers.
DIRECT_TARGETS = tuple(name for name in rules.WRITABLE_FIELD_NAMES if name != "phone_numbers")
if TYPE_CHECKING:
    import argparse

    Target = str
else:  # a Literal built from the generated model, so pydantic names every allowed value
    Target = Literal[(*DIRECT_TARGETS, "full_name", "phone")]


def _source_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", value):
        raise ValueError("a source name is the {source} in the URL: 1-64 of a-z 0-9 - _")
    return value


SourceName = Annotated[str, Checked(_source_name)]
# A notes template names provider field ids in braces; {{ and }} are literal braces.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# A field id as providers name them: Webflow's are the form's field names ("How did you hear
# about us?", "Date of birth (dd/mm/yyyy)"), a PHP form's checkboxes "interests[]". A double
# quote is refused: `{"a": 1}` is JSON whose braces want doubling, not a field.
PLACEHOLDER_NAME = re.compile(r'^(?=.*\S)[^"\x00-\x1f\x7f]{1,200}$')
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _url_with_path(value: str) -> str:
    _check_url(value, allow_path=True)
    return value


DEFAULT_PORTS = {"https": 443, "http": 80}


def _origins(values: list[str]) -> list[str]:
    # Each is compared with the browser's Origin header as text, so it must be written as a
    # browser writes it.
    for value in values:
        _check_url(value, allow_path=False)
        parts = urlsplit(value)
        if parts.port is not None and parts.port == DEFAULT_PORTS.get(parts.scheme):
            raise ValueError(
                f"{value!r}: browsers leave the default port out of Origin: write "
                f"{parts.scheme}://{parts.hostname}"
            )
        if not value.isascii():
            raise ValueError(
                f"{value!r}: browsers send a host of other letters in its xn-- (punycode) "
                "form: write that"
            )
    return values


def _redirects(values: list[str]) -> list[str]:
    for value in values:
        _check_url(value, allow_path=True)
    return values


# The file's types are plain frozen dataclasses (common/config_file.py says why): pydantic
# validates them from the YAML; the intake API builds them from the build's checked JSON.
@dataclasses.dataclass(frozen=True, kw_only=True)
class FieldRule:
    """Copy one provider field (by its stable id) into one Cliniko field (`from` in the file)."""

    __pydantic_config__ = FORBID_EXTRA

    from_: Annotated[str, Limits(min_length=1, max_length=200)]
    to: Target
    # One key of a compound answer, e.g. Jotform's address {"city": ...}.
    part: Annotated[str, Limits(min_length=1, max_length=100)] | None = None
    # Only for `to: phone`.
    phone_type: PhoneType | None = None
    # Translates a provider's choice label into the value Cliniko wants ("GP" -> 1).
    values: dict[str, str | int] | None = None

    def __post_init__(self) -> None:
        if self.phone_type is not None and self.to != "phone":
            raise ValueError("phone_type only applies to `to: phone`")
        for label, value in (self.values or {}).items():
            bad_code = isinstance(value, bool) or value not in rules.TYPE_NAMES
            if self.to == "type_code" and bad_code:
                raise ValueError(
                    f"values[{label!r}]: type_code must be one of {sorted(rules.TYPE_NAMES)}"
                )
            if self.to == "doctor_type" and value not in rules.DOCTOR_TYPES:
                raise ValueError(
                    f"values[{label!r}]: doctor_type must be one of {list(rules.DOCTOR_TYPES)}"
                )
            if self.to not in {"type_code", "doctor_type"} and not isinstance(value, str):
                raise ValueError(f"values[{label!r}]: must be text for `to: {self.to}`")
            # A translated label is Cliniko's value as it stands (a name is not read again).
            if self.to != "country_code" or not isinstance(value, str):
                continue
            code = rules.country_code_for(value)
            if code != value:
                raise ValueError(
                    f"values[{label!r}]: country_code must be an ISO 3166 alpha-2 code, "
                    + (f"write {code!r}" if code else "such as 'NO'")
                )


CAPTCHA_VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
}
CAPTCHA_TOKEN_FIELDS = {"turnstile": "cf-turnstile-response", "recaptcha": "g-recaptcha-response"}
# Hidden fields a browser form may use to pick one of the allow-listed pages.
SUCCESS_URL_FIELD = "_success_url"
ERROR_URL_FIELD = "_error_url"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Captcha:
    __pydantic_config__ = FORBID_EXTRA

    provider: Literal["turnstile", "recaptcha"]
    secret: SecretName
    # Overridable so tests (and a proxy, if a clinic must use one) can stand in for siteverify.
    verify_url: Annotated[str, Checked(_url_with_path)] | None = None
    # reCAPTCHA v3 only: the lowest acceptable score (Turnstile's answer has none).
    min_score: Annotated[float, Limits(ge=0.0, le=1.0)] | None = None
    # The action the page gave the widget (both siteverify answers carry it).
    action: str | None = None

    def __post_init__(self) -> None:
        if self.provider != "recaptcha" and self.min_score is not None:
            raise ValueError(
                f"min_score: {self.provider} answers no score (only reCAPTCHA v3 does), so "
                "every submission would be refused: remove it"
            )

    @property
    def endpoint(self) -> str:
        return self.verify_url or CAPTCHA_VERIFY_URLS[self.provider]

    @property
    def token_field(self) -> str:
        return CAPTCHA_TOKEN_FIELDS[self.provider]


@dataclasses.dataclass(frozen=True, kw_only=True)
class HtmlOptions:
    """A browser form: no secret is possible, so origin, honeypot and captcha stand in."""

    __pydantic_config__ = FORBID_EXTRA

    allowed_origins: Annotated[list[str], Limits(min_length=1), Checked(_origins)]
    honeypot_field: str | None = None
    # A hidden per-page nonce makes a resubmitted page recognisable as the same submission
    # (for the same person: another person under one nonce is another submission).
    nonce_field: str | None = None
    captcha: Captcha | None = None
    # The first URL of each list is the default; a form may pick another listed one with the
    # hidden fields `_success_url` / `_error_url`. Nothing outside these lists is ever used.
    success_urls: Annotated[list[str], Limits(min_length=1), Checked(_redirects)]
    error_urls: Annotated[list[str], Limits(min_length=1), Checked(_redirects)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FormSource:
    __pydantic_config__ = FORBID_EXTRA

    name: SourceName
    provider: Provider
    # Secrets Manager name of the provider's signing secret (HMAC key).
    signing_secret: SecretName | None = None
    # Secrets Manager name of a shared token the sender puts in `X-Intake-Token` or `?token=`;
    # required for Jotform, which signs nothing, and what a json source takes instead of a
    # signing secret from a sender that cannot sign (Gravity Forms, WPForms).
    token_secret: SecretName | None = None
    # A key of the Cliniko accounts file.
    account: str
    fields: Annotated[list[FieldRule], Limits(min_length=1)]
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes_template: str | None = None
    required: list[str] = dataclasses.field(default_factory=list)
    update_policy: UpdatePolicy = "fill_blanks"
    # How many of this source's submissions the worker is sent in an hour (UTC) before the
    # rest are held on the parked queue for staff; 0: none. Unset: the stack's
    # IntakeSourceHourlyCeiling (an import through a json source may want more).
    hourly_ceiling: Annotated[int, Limits(ge=0)] | None = None
    html: HtmlOptions | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.provider in TOKEN_INSTEAD_PROVIDERS:
            if not self.signing_secret and not self.token_secret:
                problems.append(
                    f"provider {self.provider} needs signing_secret (its sender signs with it) "
                    "or token_secret (a sender that cannot sign sends it as X-Intake-Token)"
                )
            elif self.signing_secret and self.token_secret:
                # The intake checks each secret named: a sender would need to do both.
                problems.append(
                    f"provider {self.provider} takes signing_secret or token_secret, not both: "
                    "a delivery would need the signature and the token"
                )
        elif self.provider in SIGNED_PROVIDERS and not self.signing_secret:
            problems.append(f"provider {self.provider} signs its deliveries: set signing_secret")
        elif self.provider in SIGNED_PROVIDERS and self.token_secret:
            problems.append(
                f"provider {self.provider} signs its deliveries and sends no token: "
                "remove token_secret"
            )
        if self.provider not in SIGNED_PROVIDERS and self.signing_secret:
            problems.append(f"provider {self.provider} signs nothing: remove signing_secret")
        if self.provider == "jotform" and not self.token_secret:
            problems.append("provider jotform signs nothing: set token_secret")
        if self.provider == "html" and self.token_secret:
            problems.append("a browser cannot keep a token: remove token_secret")
        if self.provider == "html" and self.html is None:
            problems.append("provider html needs the `html` options")
        if self.provider != "html" and self.html is not None:
            problems.append("`html` options only apply to provider html")
        problems += _html_field_problems(self)
        problems += _default_problems(self.defaults)
        problems += _template_problems(self.notes_template)
        if self.notes_template is not None and any(r.to == "notes" for r in self.fields):
            problems.append("notes_template and a field mapped to notes both set notes")
        produced = _produced_fields(self)
        for name in self.required:
            if name not in rules.WRITABLE_FIELDS:
                problems.append(f"required: {name!r} is not a Cliniko contact field")
            elif name not in produced:
                problems.append(f"required: {name!r} is never mapped nor defaulted")
        if "first_name" not in produced:
            problems.append("no field maps to first_name (or full_name): Cliniko needs one")
        if problems:
            raise ValueError("\n".join(problems))


@dataclasses.dataclass(frozen=True, kw_only=True)
class FormSources:
    __pydantic_config__ = FORBID_EXTRA

    sources: Annotated[dict[str, FormSource], Limits(min_length=1)]

    def unknown_accounts(self, accounts: Container[str]) -> list[str]:
        """One problem per source whose account is not among `accounts`."""
        return [
            f"sources.{name}.account: {source.account!r} is not in the Cliniko accounts file"
            for name, source in self.sources.items()
            if source.account not in accounts
        ]

    def secret_references(self) -> list[tuple[str, str]]:
        """(where in the file, secret name) for every secret the file names."""
        found: list[tuple[str, str]] = []
        for name, source in self.sources.items():
            for key in ("signing_secret", "token_secret"):
                if getattr(source, key):
                    found.append((f"sources.{name}.{key}", getattr(source, key)))
            if source.html is not None and source.html.captcha is not None:
                found.append((f"sources.{name}.html.captcha.secret", source.html.captcha.secret))
        return found


def prepared(data: dict[str, Any]) -> dict[str, Any]:
    """The file's data shaped as FormSources: each source carries its key as its name (so a
    FormSource stands alone) and each field rule's `from` is its `from_`."""
    if "accounts" in data:
        # The accounts used to live here; say where they went rather than "extra input".
        raise ValueError(
            "accounts: the Cliniko accounts live in their own file now "
            "(common/cliniko_accounts.yaml, or CLINIKO_ACCOUNTS_FILE): move them there"
        )
    if not isinstance(data.get("sources"), dict):
        return data
    named = {}
    for key, value in data["sources"].items():
        if isinstance(value, dict):
            if "name" in value and value["name"] != key:
                raise ValueError(f"sources.{key}: name differs from its key")
            value = {**value, "name": key}
            if isinstance(value.get("fields"), list):
                value["fields"] = [_keyword_named(rule) for rule in value["fields"]]
        named[key] = value
    return {**data, "sources": named}


def _keyword_named(rule: Any) -> Any:
    if isinstance(rule, dict) and "from" in rule and "from_" not in rule:
        return {("from_" if key == "from" else key): value for key, value in rule.items()}
    return rule


def form_sources_of(data: Any, path: Path = DEFAULT_PATH) -> FormSources:
    """`data` (as the file holds it) validated as FormSources; ConfigError names each mistake."""
    try:
        shaped = prepared(data) if isinstance(data, dict) else data
    except ValueError as exc:
        raise ConfigError(path, str(exc).splitlines()) from None
    return validated(path, FormSources, shaped)


def _check_url(value: str, *, allow_path: bool) -> None:
    parts = urlsplit(value)
    local = parts.hostname in LOCAL_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValueError(f"{value!r}: must be https (http only for localhost)")
    if not parts.hostname:
        raise ValueError(f"{value!r}: has no host")
    if not allow_path and (parts.path not in ("",) or parts.query or parts.fragment):
        raise ValueError(f"{value!r}: an origin is scheme://host[:port], nothing more")
    if parts.fragment:
        raise ValueError(f"{value!r}: must not have a #fragment")


def _html_field_problems(source: FormSource) -> list[str]:
    """The form inputs the intake takes out before mapping (honeypot, nonce) must be inputs of
    their own: one a rule maps or notes_template names would drop the submissions that fill
    it (a honeypot) or lose its value into the submission's id (a nonce)."""
    if source.html is None:
        return []
    mapped = {rule.from_ for rule in source.fields}
    named = {m.group(1) for m in PLACEHOLDER.finditer(source.notes_template or "") if m.group(1)}
    problems = []
    taken = {"honeypot_field": source.html.honeypot_field, "nonce_field": source.html.nonce_field}
    for key, field in taken.items():
        if field is None:
            continue
        if field in mapped or field in named:
            problems.append(
                f"html.{key}: {field!r} is also a field the form's data is read from: "
                "name an input of its own"
            )
        if field in (SUCCESS_URL_FIELD, ERROR_URL_FIELD, *CAPTCHA_TOKEN_FIELDS.values()):
            problems.append(f"html.{key}: {field!r} is an input the intake reads itself")
    if taken["honeypot_field"] is not None and taken["honeypot_field"] == taken["nonce_field"]:
        problems.append("html.nonce_field: the same input as honeypot_field")
    return problems


def _default_problems(defaults: dict[str, Any]) -> list[str]:
    problems = [
        f"defaults: {name!r} cannot have a default"
        for name in defaults
        if name not in DIRECT_TARGETS
    ]
    for name, value in defaults.items():
        if value is None and name in DIRECT_TARGETS:
            # A default that gives nothing, yet counted as the field `required` asks for.
            problems.append(
                f"defaults.{name}: no value (YAML reads nothing, ~ and null as none): "
                "write one, or leave the key out"
            )
    refused = rules.validate_contact_fields(defaults, creating=False)
    for name, message in refused.items():
        code = defaults[name]
        if name == "country_code" and isinstance(code, str) and rules.is_country_code(code.upper()):
            # Cliniko's docs give the code as ISO writes it (`AU`), as the intake sends a
            # country read from an answer and `values` must give it.
            message = f"{code!r} is not an ISO 3166 alpha-2 code as written: write {code.upper()!r}"
            problems.append(f"defaults.country_code: {message}")
            continue
        problems.append(f"defaults.{name}: {message}{_default_fix(name, code)}")
    return problems


def _default_fix(name: str, value: Any) -> str:
    """What to write instead of a default Cliniko would refuse: its own words ("is not included
    in the list") do not say what the list is, nor that YAML read `2000` as a number."""
    if name == "country_code":
        return ": write the country's ISO 3166 alpha-2 code, such as 'AU' or 'NO', in quotes"
    if name == "type_code":
        choices = [f"{code} ({label})" for code, label in rules.TYPE_NAMES.items()]
        return f": write {', '.join(choices[:-1])} or {choices[-1]}, without quotes"
    if name == "doctor_type":
        return f": write {' or '.join(rules.DOCTOR_TYPES)}"
    fix = quote_for_text(value)
    return f": {fix}" if fix else ""


def _template_problems(template: str | None) -> list[str]:
    if template is None:
        return []
    problems = []
    for match in PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None or not PLACEHOLDER_NAME.match(name):
            problems.append(
                f"notes_template: {token!r} is not a {{field id}} placeholder (write {{{{ for {{)"
            )
    return problems


def _produced_fields(source: FormSource) -> set[str]:
    produced = set(source.defaults)
    for rule in source.fields:
        if rule.to == "full_name":
            produced |= {"first_name", "last_name"}
        elif rule.to == "phone":
            produced.add("phone_numbers")
        else:
            produced.add(rule.to)
    if source.notes_template is not None:
        produced.add("notes")
    return produced


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get("FORM_SOURCES_FILE") or DEFAULT_PATH)


def load_form_sources(
    path: str | os.PathLike[str] | None = None, accounts: Container[str] | None = None
) -> FormSources:
    """Read and validate the form-source file; with `accounts`, every source's account must be
    one of them. Raises ConfigError listing every mistake."""
    resolved = config_path(path)
    loaded = load_config_file(resolved, FormSources, "`sources`", prepared)
    if accounts is not None and (problems := loaded.unknown_accounts(accounts)):
        raise ConfigError(resolved, problems)
    return loaded


def require_readable_by_intake(
    path: Path, references: Sequence[tuple[str, str]], prefix: str
) -> None:
    """Raise ConfigError, one problem per (where, secret name) of a form source that the intake
    API may not read although it is under `prefix` (INTAKE_DENIED_UNDER_PREFIX); nothing for
    an empty one (`--secrets-prefix ""`), which no deployment has."""
    if not prefix:
        return
    denied = [
        f"{where}: secret {name!r} is under {prefix + under!r}, which the intake API may not "
        f"read (the Cliniko keys and webhook signing secrets are named there): name it "
        f"elsewhere under {prefix!r}, such as {prefix}forms/<source>/signing-secret"
        for where, name in references
        for under in INTAKE_DENIED_UNDER_PREFIX
        if name.startswith(prefix + under)
    ]
    if denied:
        raise ConfigError(path, denied)


def main(argv: Sequence[str] | None = None) -> int:
    return run_check(
        check,
        argv,
        prog="python -m cliniko_automations.intake.config",
        description="Validate a form-source configuration file.",
        default=DEFAULT_PATH.name,
        accounts="the Cliniko accounts file the sources name",
        secrets_prefix="every secret named must start with it, as IAM lets intake read "
        "nothing else",
    )


def check(args: argparse.Namespace) -> int:
    from cliniko_automations.common.printable import counted

    try:
        accounts = load_accounts(args.accounts)
        require_secrets_within(
            accounts_path(args.accounts),
            accounts.secret_references(),
            args.secrets_prefix,
            CLINIKO_KEYS_FOLDER,
        )
        sources = load_form_sources(args.path, accounts.accounts)
        require_secrets_within(
            config_path(args.path), sources.secret_references(), args.secrets_prefix
        )
        require_readable_by_intake(
            config_path(args.path), sources.secret_references(), args.secrets_prefix
        )
    except ConfigError as exc:
        return print_problems(exc, "form-source configuration")
    print(
        f"{config_path(args.path)}: {counted(len(sources.sources), 'form source')}, "
        f"accounts from {accounts_path(args.accounts)}: OK"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
