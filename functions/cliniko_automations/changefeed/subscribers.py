"""Webhook subscribers: who gets which contact events, signed with which secret.

One YAML file (``webhooks.yaml`` beside this module, or env ``WEBHOOKS_FILE``). The change
feed reads it to sign each subscriber's deliveries;
``python -m cliniko_automations.changefeed.webhook_stack`` turns the same file into EventBridge
rules with API destinations (delivery, retries and rate limits are AWS's).

    python -m cliniko_automations.changefeed.subscribers --check [path]
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("changefeed.subscribers")

import dataclasses
import ipaddress
import os
import re
import sys
from collections.abc import Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args
from urllib.parse import urlsplit

from cliniko_automations.common.accounts import (
    WEBHOOK_SECRETS_FOLDER,
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
    named_item,
    print_problems,
)

if TYPE_CHECKING:
    import argparse

DEFAULT_PATH = Path(__file__).with_name("webhooks.yaml")

EventType = Literal["contact.created", "contact.updated", "contact.archived", "contact.unarchived"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


# AWS::Events::ApiDestination InvocationEndpoint, as EventBridge's API reference gives it: a
# URL it refuses (a fragment, a non-ASCII host, an IPv6 literal, over 2,048 characters) would
# pass here and fail only at the webhook stack's deploy.
_INVOCATION_ENDPOINT = re.compile(
    r"((%[0-9A-Fa-f]{2}|[-()_.!~*';/?:@&=+$,A-Za-z0-9])+)([).!';/?:,])?"
)
MAX_URL_LENGTH = 2048


def _https(value: str) -> str:
    # No whitespace, no control character and no CloudFormation syntax ({{resolve:...}}, ${...}):
    # the URL goes into the webhook stack's template as it is written here.
    if any(c.isspace() or not c.isprintable() for c in value) or "{{" in value or "${" in value:
        raise ValueError("must be a plain https URL (no spaces, no template syntax)")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 (read to check it: urlsplit raises on a port out of range)
    except ValueError:
        raise ValueError("must be an https URL with a valid port") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValueError("must be an https URL without credentials")
    if len(value) > MAX_URL_LENGTH or not _INVOCATION_ENDPOINT.fullmatch(value):
        raise ValueError(
            f"must be at most {MAX_URL_LENGTH} characters of what an EventBridge API "
            "destination takes: ASCII letters, digits, -._~!*'();:@&=+$,/? and %XX escapes "
            "(no #fragment, no IPv6 literal; write an international host in its xn-- form)"
        )
    if parts.port == 0:
        raise ValueError("must be an https URL with a valid port")
    if not value.startswith("https://") or "@" in parts.netloc:
        raise ValueError("must be an https URL without credentials, its scheme in lower case")
    if problem := _unreachable_host(parts.hostname):
        raise ValueError(problem)
    return value


# Names no public DNS answers: `localhost` (RFC 6761), mDNS's `local`, ICANN's private `internal`.
_PRIVATE_DOMAINS = ("localhost", "local", "internal")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _unreachable_host(host: str) -> str | None:
    """Why EventBridge could not deliver to `host`, or None. Its connections are public: a
    private, loopback or link-local address (the instance metadata's 169.254.169.254 among
    them) or a name only a local resolver knows sends every delivery, the contact's fields
    with them, to the dead-letter queue."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is not None:
        return None if address.is_global else "must be a public address, not a private one"
    labels = host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return "must have a host name of letters, digits and hyphens (or a public IPv4 address)"
    if len(labels) < 2 or labels[-1].isdigit() or labels[-1].startswith("0x"):
        # One label, or a number where the top-level domain goes: an address in another
        # form (2130706433, 0x7f000001 and 0177.0.0.1 are all 127.0.0.1 to a resolver).
        return "must have a public host name (name.tld) or a public IPv4 address"
    if labels[-1] in _PRIVATE_DOMAINS:
        return f"must have a public host name, not one under .{labels[-1]}"
    return None


SecretName = Annotated[str, Limits(pattern=r"^[A-Za-z0-9/_+=.@-]+$")]
# A change is published in one PutEvents call (10 entries at most): its event on the bus and a
# signed delivery for each subscriber that wants it.
MAX_SUBSCRIBERS_PER_EVENT = 9


# Plain frozen dataclasses (common/config_file.py says why): pydantic validates them from the
# YAML; the change feed builds them from the build's checked JSON.
@dataclasses.dataclass(frozen=True, kw_only=True)
class Subscriber:
    __pydantic_config__ = FORBID_EXTRA

    # Names the rule, the API destination and the connection: CloudFormation-safe.
    name: Annotated[str, Limits(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
    url: Annotated[str, Checked(_https)]
    events: Annotated[list[EventType], Limits(min_length=1)]
    # Secrets Manager name of the Standard Webhooks secret ("whsec_" + base64 of the key).
    secret: SecretName
    # Optional Secrets Manager name of a token sent as header `x-webhook-sender` (the API
    # destination connection's key), for receivers that also want a bearer-style check.
    auth_secret: SecretName | None = None
    # Accounts whose events are delivered (left out: every account; an empty list would be
    # none, a subscriber that never gets a delivery).
    accounts: Annotated[list[str], Limits(min_length=1)] | None = None
    # Full contact fields in the body: personal data leaves the stack; opt in per subscriber.
    include_fields: bool = False
    # API destination's InvocationRateLimitPerSecond.
    rate_per_second: Annotated[int, Limits(ge=1, le=300)] = 5

    def __post_init__(self) -> None:
        # Each is copied into the subscriber's rule pattern: a list repeated by mistake (or
        # by the thousand) would only grow it towards EventBridge's size limit.
        listed: tuple[tuple[str, list[str]], ...] = (
            ("events", [str(event) for event in self.events]),
            ("accounts", list(self.accounts or [])),
        )
        for field, values in listed:
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise ValueError(f"{field} must not repeat: {', '.join(repeated)}")

    def wants(self, event_type: str, account: str) -> bool:
        return event_type in self.events and (self.accounts is None or account in self.accounts)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Subscribers:
    __pydantic_config__ = FORBID_EXTRA

    subscribers: list[Subscriber] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        names = [subscriber.name for subscriber in self.subscribers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"subscriber names must be unique: {', '.join(repeated)}")
        # The webhook stack names each subscriber's resources by its logical name: two names
        # that give one (crm-1, crm1) would leave one subscriber without a rule. Compared
        # without their hyphens, as README states the rule: crm and c-rm give CrmRule and
        # CRmRule, ids told apart by case alone.
        by_logical: dict[str, list[str]] = {}
        for name in names:
            by_logical.setdefault(name.replace("-", ""), []).append(name)
        clashes = sorted(" and ".join(n) for n in by_logical.values() if len(n) > 1)
        if clashes:
            raise ValueError(
                "subscriber names must differ by more than their hyphens (they name the "
                f"webhook stack's resources): {'; '.join(clashes)}"
            )
        # A signing secret is what lets a receiver trust a delivery: one receiver holding
        # another's could forge the other's deliveries. An `auth_secret` goes out in clear in
        # every delivery's header, so a signing secret named there would hand it over.
        signing = [subscriber.secret for subscriber in self.subscribers]
        shared = sorted({secret for secret in signing if signing.count(secret) > 1})
        if shared:
            raise ValueError(f"each subscriber needs a signing secret of its own: {shared[0]!r}")
        sent = sorted({s.name for s in self.subscribers if s.auth_secret in signing})
        if sent:
            raise ValueError(
                f"an auth_secret is sent to the receiver, so it must not be a signing secret: "
                f"{', '.join(sent)}"
            )
        for event_type in EVENT_TYPES:
            wanting = [s.name for s in self.subscribers if event_type in s.events]
            if len(wanting) > MAX_SUBSCRIBERS_PER_EVENT:
                raise ValueError(
                    f"at most {MAX_SUBSCRIBERS_PER_EVENT} subscribers per event type: "
                    f"{event_type} has {len(wanting)}"
                )

    def secret_references(self) -> list[tuple[str, str]]:
        """(where in the file, secret name) for every secret the change feed reads: the signing
        secrets (an `auth_secret` is read by CloudFormation, at deploy time)."""
        return [
            (f"subscribers.{named_item(index, subscriber.name)}.secret", subscriber.secret)
            for index, subscriber in enumerate(self.subscribers)
        ]

    def sent_secret_problems(self, prefix: str, key_secrets: Container[str]) -> list[str]:
        """One problem per `auth_secret` that may hold what no receiver should get: it goes to
        the receiver in clear in every delivery, so it must be none of `key_secrets` (the
        accounts' Cliniko API keys) and, under `prefix`, sit in the webhooks' folder, where no
        other function's secret is (the signing secrets are told apart by name above)."""
        under = prefix + WEBHOOK_SECRETS_FOLDER
        problems = []
        for index, subscriber in enumerate(self.subscribers):
            name = subscriber.auth_secret
            where = f"subscribers.{named_item(index, subscriber.name)}.auth_secret"
            if name is None:
                continue
            if name in key_secrets:
                problems.append(f"{where}: {name!r} is a Cliniko API key's secret")
            elif prefix and name.startswith(prefix) and not name.startswith(under):
                problems.append(
                    f"{where}: {name!r} is sent to the receiver in every delivery: name a "
                    f"secret under {under!r}, where no other function's secret is"
                )
        return problems

    def unknown_accounts(self, accounts: Container[str]) -> list[str]:
        """One problem per account a subscriber names that is not among `accounts` (its
        deliveries for it would never come)."""
        return [
            f"subscribers.{named_item(index, subscriber.name)}.accounts: {account!r} is not in "
            "the Cliniko accounts file"
            for index, subscriber in enumerate(self.subscribers)
            for account in subscriber.accounts or ()
            if account not in accounts
        ]


def logical_name(name: str) -> str:
    """A subscriber's name as CloudFormation logical ids carry it: `crm-main` is `CrmMain`."""
    return "".join(part.capitalize() for part in name.split("-"))


def subscribers_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get("WEBHOOKS_FILE") or DEFAULT_PATH)


def load_subscribers(
    path: str | os.PathLike[str] | None = None, accounts: Container[str] | None = None
) -> Subscribers:
    """Read and validate the subscribers; with `accounts`, every account a subscriber names
    must be one of them."""
    resolved = subscribers_path(path)
    loaded = load_config_file(resolved, Subscribers, "`subscribers`")
    if accounts is not None and (problems := loaded.unknown_accounts(accounts)):
        raise ConfigError(resolved, problems)
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    return run_check(
        check,
        argv,
        prog="python -m cliniko_automations.changefeed.subscribers",
        description="Validate a webhook-subscribers file.",
        default=DEFAULT_PATH.name,
        accounts="the Cliniko accounts file",
        secrets_prefix="the change feed may read no other signing secret, and one it cannot "
        "read stops every poll",
    )


def check(args: argparse.Namespace) -> int:
    from cliniko_automations.common.printable import counted

    try:
        accounts = load_accounts(args.accounts)
        loaded = load_subscribers(args.path, accounts.accounts)
        require_secrets_within(
            subscribers_path(args.path),
            loaded.secret_references(),
            args.secrets_prefix,
            WEBHOOK_SECRETS_FOLDER,
        )
        keys = {name for _where, name in accounts.secret_references()}
        if problems := loaded.sent_secret_problems(args.secrets_prefix, keys):
            raise ConfigError(subscribers_path(args.path), problems)
    except ConfigError as exc:
        return print_problems(exc, "configuration")
    subscribers = counted(len(loaded.subscribers), "webhook subscriber")
    print(f"{subscribers_path(args.path)}: {subscribers}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
