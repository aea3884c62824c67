"""The change feed's settings: one validated model, read from the environment."""

from __future__ import annotations

import dataclasses
import datetime as dt

from cliniko_automations.cliniko.pacing import CLINIKO_REQUESTS_PER_MINUTE
from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.settings import EnvironmentSettings, SettingsError, bounded

# How far ahead of this machine's clock BACKFILL_FROM may be (another clock's "now").
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeedSettings(EnvironmentSettings):
    describes = "change feed settings"

    feed_table: str
    event_bus_name: str
    # The HMAC key of the per-field hashes kept to name changed fields (never the values).
    hash_key_secret_name: str
    cliniko_accounts_file: str | None = None
    webhooks_file: str | None = None
    # Each poll re-reads this many seconds before the cursor: a change committed late in
    # a second the last poll already read is still seen (the dedupe drops the rest).
    overlap_seconds: int = bounded(5, ge=1, le=3600)
    # Where a first run starts; unset: from now (no history).
    backfill_from: dt.datetime | None = None
    # The feed's own share of the Cliniko user's 200 requests a minute: a cap for all the
    # feed's processes together on the shared budget (or this process's pace without it).
    requests_per_minute: int = bounded(20, ge=1, le=CLINIKO_REQUESTS_PER_MINUTE)
    # How long a contact's last published state is kept (its field hashes, for naming
    # changed fields; and its updated_at, for dropping duplicates).
    state_days: int = bounded(400, ge=1, le=3650)
    # No new Cliniko request starts with less time than this left in the invocation.
    stop_margin_seconds: float = bounded(35.0, ge=0)
    # The Cliniko client's settings (CLINIKO_USER_AGENT, ...), as given: checked when an
    # account's client is built, and a problem is reported as that account's error.
    cliniko: ClinikoVariables = dataclasses.field(default_factory=ClinikoVariables)

    def __post_init__(self) -> None:
        # A first run saves its start as the cursor: one in the future (2062 for 2026) would
        # publish nothing until then, each run reporting itself complete and caught up.
        if self.backfill_from and self.backfill_from > dt.datetime.now(dt.UTC) + CLOCK_SKEW:
            raise SettingsError(
                f"{self.describes} invalid: BACKFILL_FROM is in the future (the feed would "
                "start there: no change made before then would ever be published)"
            )
