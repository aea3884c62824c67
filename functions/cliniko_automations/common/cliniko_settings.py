"""The Cliniko client's settings, nested in each function's settings model (common/settings.py
reads them from their `CLINIKO_*` variables with the function's own).

`CLINIKO_USER_AGENT` (required, `Name (email)`), `CLINIKO_BASE_URL` (optional: the emulator or
a local run), `CLINIKO_MAX_WAIT_SECONDS` (optional: the most one Cliniko request may sleep on
rate limits and backoff, so a function with a short timeout gets a typed error instead of
being killed mid-wait; default 75), `CLINIKO_RATE_LIMIT_TABLE` (the DynamoDB table of the
key's budget shared by every function; unset, each process paces only itself) and
`CLINIKO_BULK_SHARE` (the most of that budget a bulk caller may take; default 0.8) and
`CLINIKO_BULK_FLOOR` (the least of it bulk callers get while interactive callers take all they
can, an intake backlog; default 0.1, at most the bulk share; 0: none).

Two shapes, one set of rules: `ClinikoSettings` is checked when the function's settings are
loaded (the erasure: a bad value fails every request alike); `ClinikoVariables` holds the
values as given and is checked where a client is built (`client_for_secret`), so the intake
worker dead-letters one submission with the fix and the cleanup fails one step naming the
variable, instead of the whole batch or run failing before it can say what to fix.
"""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar, Self

from cliniko_automations.cliniko.config import USER_AGENT_RULE_TEXT, check_user_agent
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.settings import SettingInvalid, parsed_setting

# The environment variable of each Cliniko setting, by field.
ENV_NAMES = {
    "user_agent": "CLINIKO_USER_AGENT",
    "base_url": "CLINIKO_BASE_URL",
    "max_wait_seconds": "CLINIKO_MAX_WAIT_SECONDS",
    "rate_limit_table": "CLINIKO_RATE_LIMIT_TABLE",
    "bulk_share": "CLINIKO_BULK_SHARE",
    "bulk_floor": "CLINIKO_BULK_FLOOR",
}
# The bounds of the numeric ones, and what a value outside them is told.
BOUNDS = {
    "max_wait_seconds": ({"gt": 0, "le": 900}, "a number of seconds above 0, at most 900"),
    "bulk_share": ({"gt": 0, "le": 1}, "a number above 0, at most 1"),
    "bulk_floor": ({"ge": 0, "le": 1}, "a number from 0 to 1"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClinikoSettings:
    """The checked settings (`ClinikoVariables.checked()`)."""

    # Read by common/settings.EnvironmentSettings.from_env for a nested settings type.
    variables: ClassVar[dict[str, str]] = ENV_NAMES

    user_agent: str
    base_url: str | None = None
    max_wait_seconds: float | None = None
    # The DynamoDB table holding each key's budget shared by all functions; unset: each
    # process paces only itself (tests, the CLI).
    rate_limit_table: str | None = None
    # The most of the budget bulk callers (the cleanup) may take, when intake leaves it.
    bulk_share: float | None = None
    # The least of it bulk callers (the cleanup, the change feed) get while intake takes all
    # it can (a backlog).
    bulk_floor: float | None = None

    @classmethod
    def from_variables(cls, given: dict[str, str]) -> Self:
        """Read nested in a function's settings (common/settings.py): checked at load."""
        try:
            return ClinikoVariables(**given).checked()  # type: ignore[return-value]
        except ConfigurationError as exc:
            raise SettingInvalid((exc.setting or "").split(", ")) from None

    def fingerprint(self) -> str:
        """The settings as one string: a client made with others is made again."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClinikoVariables:
    """The `CLINIKO_*` values as the environment gave them, checked by `checked()`."""

    variables: ClassVar[dict[str, str]] = ENV_NAMES

    user_agent: str | None = None
    base_url: str | None = None
    max_wait_seconds: str | None = None
    rate_limit_table: str | None = None
    bulk_share: str | None = None
    bulk_floor: str | None = None

    @classmethod
    def from_variables(cls, given: dict[str, str]) -> Self:
        """Read nested in a function's settings (common/settings.py): as given."""
        return cls(**given)

    def checked(self) -> ClinikoSettings:
        """The settings, or a ConfigurationError naming each bad variable (never its value)."""
        given = {
            name: value.strip()
            for name, value in dataclasses.asdict(self).items()
            if value is not None and value.strip()
        }
        values: dict[str, object] = dict(given)
        problems: dict[str, str] = {}
        try:
            check_user_agent(given.get("user_agent"))
        except ConfigurationError as exc:
            problems["user_agent"] = exc.message
        for name, (limits, meaning) in BOUNDS.items():
            if name in given:
                try:
                    values[name] = parsed_setting(given[name], float, limits)
                except ValueError:
                    problems[name] = f"must be {meaning}"
        floor = values.get("bulk_floor")
        if isinstance(floor, float):
            # Here, not at import: the overdue check imports this module and never paces.
            from cliniko_automations.cliniko.shared_pacing import SharingPolicy

            default = SharingPolicy().bulk_share
            share = values.get("bulk_share", default)
            if isinstance(share, float) and floor > share:
                problems["bulk_floor"] = f"must be at most CLINIKO_BULK_SHARE (default {default})"
        unset = "user_agent" not in given
        if unset and len(problems) == 1:
            raise ConfigurationError(
                f"CLINIKO_USER_AGENT is not set; it {USER_AGENT_RULE_TEXT}",
                setting="CLINIKO_USER_AGENT",
            )
        if problems:
            raise ConfigurationError(
                "Cliniko settings are invalid: "
                + "; ".join(f"{ENV_NAMES[name]}: {message}" for name, message in problems.items()),
                setting=", ".join(ENV_NAMES[name] for name in problems),
            )
        return ClinikoSettings(**values)  # type: ignore[arg-type]
