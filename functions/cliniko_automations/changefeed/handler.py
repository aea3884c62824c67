"""Scheduled change feed (EventBridge schedule): poll each Cliniko account's contacts and
publish their changes to the contacts event bus, and signed deliveries for webhook subscribers.

An operator may invoke it with `{"accounts": ["name", ...]}` to poll some accounts only.
Logs and the answer carry account names, counts, event types and lags only: never fields.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.changefeed.bus import EventBridgeSink
from cliniko_automations.changefeed.changes import FieldHasher
from cliniko_automations.changefeed.cliniko_source import ClinikoContactsSource
from cliniko_automations.changefeed.core import AccountResult, ChangeFeed, SourceUnavailable
from cliniko_automations.changefeed.events import EventBuilder
from cliniko_automations.changefeed.settings import FeedSettings
from cliniko_automations.changefeed.signing import keys_in_secret
from cliniko_automations.changefeed.store import DynamoFeedStore
from cliniko_automations.changefeed.subscribers import load_subscribers
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common import aws
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.common.cliniko_accounts import (
    client_for_secret,
    key_replaced,
    time_left_after,
)
from cliniko_automations.common.import_collector import import_finished
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import diagnose, report, report_account_key
from cliniko_automations.common.secrets import (
    SecretMisconfigured,
    SecretUnavailable,
    prefetch_secrets,
    read_secret,
)

logger = function_logger("changefeed")
metrics = Metrics(service="changefeed")

# CloudWatch takes at most 100 values of one metric in one record.
LAG_SAMPLES = 100
# Kept from Cliniko's requests for what follows their last answer: the page's events and
# records, the cursor.
RESERVE_SECONDS = 5.0


def _accounts(event: Any, configured: list[str]) -> list[str]:
    names = event.get("accounts") if isinstance(event, dict) else None
    if names is None:
        return configured
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError("accounts must be a non-empty list of account names")
    unknown = sorted(set(names) - set(configured))
    if unknown:
        raise ValueError(f"no account named {', '.join(unknown)}")
    # Each once: one run's polls share its lease, which admits its owner again, so an
    # account named twice was polled twice at once and each change published twice.
    return list(dict.fromkeys(names))


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = FeedSettings.from_env()
    configured = load_accounts(settings.cliniko_accounts_file)
    try:
        accounts = _accounts(event, configured.names())
    except ValueError as error:
        logger.warning("change feed invocation refused", extra={"problem": str(error)})
        return {"error": str(error)}
    subscribers = load_subscribers(settings.webhooks_file)
    store = DynamoFeedStore(
        aws.client("dynamodb", config=aws.FAIL_FAST),
        settings.feed_table,
        state_days=settings.state_days,
    )
    margin_ms = settings.stop_margin_seconds * 1000
    key_ids: dict[str, str] = {}  # the key each account's client was made with

    def misconfigured(account: str, error: Exception) -> None:
        # One line naming the setting and the fix, and the Misconfigured metric (alarmed):
        # the account's result alone says only what failed.
        secret = configured.accounts[account].api_key_secret
        report_account_key(error, account, secret, logger=logger, metrics=metrics)

    def source_for_account(account: str) -> ClinikoContactsSource:
        # The feed's one place that builds its Cliniko clients: bulk, so intake and erasure
        # are served first from the user's shared budget; capped at its own share (every feed
        # process together when the budget is shared).
        try:
            client = client_for_secret(
                configured.accounts[account].api_key_secret,
                priority="bulk",
                requests_per_minute=settings.requests_per_minute,
                caller="changefeed",
                settings=settings.cliniko,
                time_left=time_left_after(
                    lambda: context.get_remaining_time_in_millis() / 1000, RESERVE_SECONDS
                ),
            )
        except SecretUnavailable as exc:
            if isinstance(exc, SecretMisconfigured):
                misconfigured(account, exc)
            raise SourceUnavailable(f"secret_{type(exc).__name__}") from None
        except ConfigurationError as exc:  # the key malformed, or a Cliniko setting
            misconfigured(account, exc)
            raise
        key_ids[account] = client.key_id
        return ClinikoContactsSource(client)

    try:
        hasher = _hasher(settings.hash_key_secret_name)
        keys = {s.name: keys_in_secret(read_secret, s.secret) for s in subscribers.subscribers}
    except SecretMisconfigured as error:
        # Every subscriber's deliveries wait, none is published without its signature: no
        # account is polled, so the cursors stay and the changes made meanwhile are published
        # once the secret is fixed. One line naming it and the fix, and the Misconfigured
        # count its alarm watches, instead of a traceback every minute.
        where = {name: w for w, name in subscribers.secret_references()}.get(error.name or "")
        problem = diagnose(
            error,
            where=f"webhooks.yaml {where}" if where else "the stack's ChangeFeedHashKeySecret",
        )
        if problem is not None:
            report(problem, logger=logger, metrics=metrics)
        return {"error": error.reason, "secret": error.name}
    feed = ChangeFeed(
        source_for_account=source_for_account,
        store=store,
        sink=EventBridgeSink(aws.client("events", config=aws.FAIL_FAST), settings.event_bus_name),
        hasher=hasher,
        builder=EventBuilder(subscribers.subscribers, keys, clock=time.time),
        overlap=dt.timedelta(seconds=settings.overlap_seconds),
        start_at=settings.backfill_from,
        # One per invocation, not Lambda's request id: every delivery of one asynchronous
        # invocation (a retry, a duplicate from Lambda's queue) carries the same request id,
        # and the lease admits its owner again.
        run_id=f"{context.aws_request_id}/{uuid.uuid4().hex}",
        lease_seconds=context.get_remaining_time_in_millis() / 1000,
        out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
        on_access_refused=misconfigured,
        key_replaced=lambda account: key_replaced(
            configured.accounts[account].api_key_secret, key_ids.get(account)
        ),
    )
    results = feed.run(accounts)
    for result in results:
        _report(result, store.caught_up_at(result.account))
    return {"accounts": [result.as_dict() for result in results]}


def _hasher(secret: str) -> FieldHasher:
    """The field hasher keyed by the stack's hash-key secret `secret`; a value too short to be
    a key is named as a secret to fix, as an unreadable one is."""
    try:
        return FieldHasher(read_secret(secret).encode())
    except ValueError as error:
        raise SecretMisconfigured(f"secret {secret!r}: {error}", name=secret) from None


def _report(result: AccountResult, caught_up_at: dt.datetime | None) -> None:
    logger.info("change feed polled an account", extra=result.as_dict())
    metrics.add_metric(name="ChangesSeen", unit=MetricUnit.Count, value=result.changes)
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=result.events)
    metrics.add_metric(name="DuplicatesDropped", unit=MetricUnit.Count, value=result.duplicates)
    metrics.add_metric(name="FeedRequests", unit=MetricUnit.Count, value=result.requests)
    for lag in lag_sample(result.lags):
        metrics.add_metric(name="ChangeLagSeconds", unit=MetricUnit.Seconds, value=lag)
    # Minutes since this account's changes were last all published: the lag alarm's metric
    # (in minutes, so the alarm's threshold is the ChangeFeedLagAlarmMinutes parameter).
    behind = (
        (dt.datetime.now(dt.UTC) - caught_up_at).total_seconds() / 60 if caught_up_at else 1440.0
    )
    metrics.add_metric(name="FeedBehindMinutes", unit=MetricUnit.Count, value=max(0.0, behind))


def lag_sample(lags: list[float], size: int = LAG_SAMPLES) -> list[float]:
    """At most `size` of `lags`, spread evenly over them in order, the shortest and the longest
    included: the dashboard's p50 and p95 are read from what is published. (Every step-th of
    them cut to the first `size` was the shortest `size` whenever their count was not a
    multiple of `size`, so the changes that waited longest went unseen.)"""
    ordered = sorted(lags)
    if len(ordered) <= size:
        return ordered
    last = len(ordered) - 1
    return [ordered[round(i * last / (size - 1))] for i in range(size)]


def _secrets_read() -> list[str]:
    """Every secret a poll reads: the hash key, each account's key, each subscriber's."""
    settings = FeedSettings.from_env()
    accounts = load_accounts(settings.cliniko_accounts_file).accounts.values()
    subscribers = load_subscribers(settings.webhooks_file).subscribers
    return [
        settings.hash_key_secret_name,
        *(account.api_key_secret for account in accounts),
        *(subscriber.secret for subscriber in subscribers),
    ]


# Their reads start now, during Lambda's init, and overlap the first poll's work.
prefetch_secrets(_secrets_read)

# Last: the import is over (common/import_collector.py).
import_finished()
