"""Cleanup rules: which contacts the scheduled cleanup archives, per Cliniko account.

One YAML file (``cleanup_rules.yaml`` beside this module, or env ``CLEANUP_RULES_FILE``). Each
rule names an account of the Cliniko accounts file and conditions, ANDed, that become Cliniko
``q[]`` filters. By default a rule only touches contacts the form intake created (its ledger):
staff-made contacts are left alone unless a rule says ``created_by_intake: false``.

    python -m cliniko_automations.cleanup.config --check [path] [--accounts path]
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("cleanup.config")

import datetime as dt
import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cliniko_automations.cliniko.filters import DateTimeFilter, Filter, NumericFilter, StringFilter
from cliniko_automations.common.accounts import load_accounts, run_check
from cliniko_automations.common.config_file import (
    ConfigError,
    load_config_file,
    named_item,
    print_problems,
)

if TYPE_CHECKING:
    import argparse

DEFAULT_PATH = Path(__file__).with_name("cleanup_rules.yaml")

# Cliniko's filterable contact fields, by kind (cliniko-api.md, "Filtering").
TextField = Literal["email", "first_name", "last_name", "company_name", "occupation"]
TimeField = Literal["created_at", "updated_at"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextCondition(_Model):
    field: TextField
    # like: Cliniko's wildcard match, `%` standing for any text. The email filter compares
    # with the lower-cased email, so its values are lower-cased too.
    op: Literal["equals", "not_equals", "contains", "like"]
    value: str = Field(min_length=1, max_length=255)

    @field_validator("value")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        # No Cliniko filter can carry one: refused here, by its place, not by every run.
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters (a tab, a line break)")
        return value

    @model_validator(mode="after")
    def _narrows(self) -> TextCondition:
        # `%` alone matches every contact with the field set: on a rule with
        # created_by_intake: false, every such contact of the account would be archived. So
        # may `_`, one character to a SQL LIKE, which Cliniko's `~`/`~~` may well be.
        if self.op in ("like", "contains") and not self.value.strip("%_"):
            raise ValueError(f"{self.op} {self.value!r} matches every {self.field}: name a pattern")
        return self

    def to_filter(self, now: dt.datetime) -> Filter:
        value = self.value.lower() if self.field == "email" else self.value
        field = StringFilter(self.field)
        make = {
            "equals": field.eq,
            "not_equals": field.ne,
            "contains": field.contains,
            "like": field.like,
        }[self.op]
        return make(value)

    def admits(self, contact: Mapping[str, Any], now: dt.datetime) -> bool:
        """Whether a contact Cliniko listed for this condition may be one it selects. Read
        leniently (any case, `_` as any one character, surrounding space): it is there to
        catch a filter Cliniko dropped, not to second-guess how Cliniko reads one."""
        if self.field not in contact:
            return True  # a field the listing leaves out cannot disprove it
        value = contact[self.field]
        if self.op == "not_equals":
            # Only the very value refused is one Cliniko's `!=` could not have listed (the
            # email as sent, lower-cased): "Test " is not "Test".
            if not isinstance(value, str):
                return True
            if self.field == "email":
                return value.lower() != self.value.lower()
            return value != self.value
        if not isinstance(value, str):
            return False
        pattern = {"equals": self.value, "contains": f"%{self.value}%", "like": self.value}
        return any(reading.fullmatch(value.strip()) for reading in _like_readings(pattern[self.op]))


@functools.lru_cache(maxsize=64)  # a rule's few patterns, read for every contact listed
def _like_readings(pattern: str) -> tuple[re.Pattern[str], ...]:
    """`pattern` as Cliniko's `~~` may read it, at its widest: `%` any text, `_` any character,
    letters in any case, and a backslash either itself or, as a SQL LIKE reads it, making the
    character after it plain."""
    wildcards = {"%": ".*", "_": "."}
    text = pattern.strip()
    plain = "".join(wildcards.get(char) or re.escape(char) for char in text)
    escaped: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped.append(re.escape(next(chars, "\\")))
        else:
            escaped.append(wildcards.get(char) or re.escape(char))
    flags = re.IGNORECASE | re.DOTALL
    return re.compile(plain, flags), re.compile("".join(escaped), flags)


class TypeCondition(_Model):
    field: Literal["type_code"]
    op: Literal["equals"]
    value: Annotated[list[Literal[0, 1, 2]], Field(min_length=1)]

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        # pydantic would read `true` as the type code 1.
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            raise ValueError("type codes are 0, 1 or 2, not true or false")
        return value

    def to_filter(self, now: dt.datetime) -> Filter:
        return NumericFilter("type_code").eq(self.value)

    def admits(self, contact: Mapping[str, Any], now: dt.datetime) -> bool:
        """As `TextCondition.admits`: a type code none of the rule's is one Cliniko should
        not have listed."""
        return "type_code" not in contact or contact["type_code"] in self.value


class AgeCondition(_Model):
    field: TimeField
    op: Literal["older_than_days"]
    value: int = Field(ge=1, le=36_500, strict=True)  # `true` is no number of days

    def cutoff(self, now: dt.datetime) -> dt.datetime:
        # Whole seconds, the form Cliniko documents its date-time filters in.
        return (now - dt.timedelta(days=self.value)).replace(microsecond=0)

    def to_filter(self, now: dt.datetime) -> Filter:
        return DateTimeFilter(self.field).lt(self.cutoff(now))

    def admits(self, contact: Mapping[str, Any], now: dt.datetime) -> bool:
        """As `TextCondition.admits`: a contact stamped at or after the cutoff is one Cliniko
        should not have listed (a stamp that is not an ISO time cannot disprove it)."""
        stamp = contact.get(self.field)
        try:
            at = dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            return True
        if at is None or at.tzinfo is None:
            return True
        # A second's grace: a Cliniko that shows its stamps rounded, not cut, may show one
        # its filter took as before the cutoff at the cutoff's second.
        return at < self.cutoff(now) + dt.timedelta(seconds=1)


# Told apart by `field`, so a mistake is reported against the one kind of condition it is.
Condition = Annotated[TextCondition | TypeCondition | AgeCondition, Field(discriminator="field")]


class CleanupRule(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    account: str = Field(min_length=1)
    description: str = ""
    created_by_intake: bool = True
    where: Annotated[list[Condition], Field(min_length=1)]
    # The most contacts one run archives under this rule (None: core.MAX_ARCHIVES_PER_RUN):
    # past it the rule stops, `archive_limit`, before archiving the batch that would pass it.
    max_archives_per_run: int | None = Field(default=None, ge=1, le=10_000_000, strict=True)

    def as_json(self) -> dict[str, Any]:
        """The rule as JSON, as a run keeps its fingerprint: `max_archives_per_run` only when
        set, so a rule written before that key had the same fingerprint and a run begun by
        the release before it goes on."""
        exclude = {"max_archives_per_run"} if self.max_archives_per_run is None else set()
        return self.model_dump(mode="json", exclude=exclude)

    def filters(self, now: dt.datetime) -> list[Filter]:
        return [condition.to_filter(now) for condition in self.where]

    def admits(self, contact: Mapping[str, Any], now: dt.datetime) -> bool:
        """Whether a contact Cliniko listed for `filters(now)` meets every condition as this
        process reads them (leniently: see `TextCondition.admits`)."""
        return all(condition.admits(contact, now) for condition in self.where)

    def updated_before(self, now: dt.datetime) -> dt.datetime | None:
        """The rule's `updated_at` cutoff (the earliest of several), None without one."""
        return min(
            (
                condition.cutoff(now)
                for condition in self.where
                if isinstance(condition, AgeCondition) and condition.field == "updated_at"
            ),
            default=None,
        )


class CleanupRules(_Model):
    rules: list[CleanupRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> CleanupRules:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique: {', '.join(repeated)}")
        return self

    def unknown_accounts(self, accounts: Mapping[str, object]) -> list[str]:
        return [
            f"rules.{named_item(index, rule.name)}.account: {rule.account!r} is not in the "
            "Cliniko accounts file"
            for index, rule in enumerate(self.rules)
            if rule.account not in accounts
        ]

    def selected(self, names: Sequence[str] | None) -> list[CleanupRule]:
        """The rules called `names` (all when None); an unknown name is a ValueError."""
        if names is None:
            return list(self.rules)
        wanted = set(names)
        unknown = sorted(wanted - {rule.name for rule in self.rules})
        if unknown:
            raise ValueError(f"no cleanup rule named {', '.join(unknown)}")
        return [rule for rule in self.rules if rule.name in wanted]


def rules_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get("CLEANUP_RULES_FILE") or DEFAULT_PATH)


def load_cleanup_rules(
    path: str | os.PathLike[str] | None = None, accounts: Mapping[str, object] | None = None
) -> CleanupRules:
    """Read and validate the rules; with `accounts`, every rule's account must be one of them."""
    resolved = rules_path(path)
    loaded = load_config_file(resolved, CleanupRules, "`rules`")
    if accounts is not None and (problems := loaded.unknown_accounts(accounts)):
        raise ConfigError(resolved, problems)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    return run_check(
        check,
        argv,
        prog="python -m cliniko_automations.cleanup.config",
        description="Validate a cleanup-rules file against the Cliniko accounts file.",
        default=DEFAULT_PATH.name,
        accounts="the Cliniko accounts file",
    )


def check(args: argparse.Namespace) -> int:
    from cliniko_automations.common.printable import counted

    try:
        accounts = load_accounts(args.accounts).accounts
        loaded = load_cleanup_rules(args.path, accounts)
    except ConfigError as exc:
        return print_problems(exc, "configuration")
    print(f"{rules_path(args.path)}: {counted(len(loaded.rules), 'cleanup rule')}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
