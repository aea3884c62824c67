"""The intake API's settings: one validated model, read from the environment."""

from __future__ import annotations

import dataclasses

from cliniko_automations.common.settings import EnvironmentSettings, SettingsError, bounded
from cliniko_automations.intake_api.accept import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_SOURCE_HOURLY_CEILING,
)

__all__ = ["ApiSettings", "SettingsError"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiSettings(EnvironmentSettings):
    describes = "intake API settings"

    submission_queue_url: str
    # The claim-check store of submission bodies, indexed by the email's keyed hash (HMAC
    # with the erasure pepper), so an erasure reaches what the queues hold.
    submission_table: str
    pepper_secret_name: str
    form_sources_file: str | None = None
    # The accounts the sources name (each source's account is checked against it at load).
    cliniko_accounts_file: str | None = None
    # The template's SecretsPrefix: a secret named outside it is refused naming the fix.
    secrets_prefix: str | None = None
    # At most what the function parses within its 256 MB and 10 s: 6 MB of JSON `{},` held
    # 300 MB more and took 5.5 s of CPU (512 KiB: 32 MB, 0.9 s); a submission is 300 KB at
    # most (accept.MAX_STORED_BYTES) whatever the body.
    max_body_bytes: int = bounded(DEFAULT_MAX_BODY_BYTES, gt=0, le=512 * 1024)
    # Where a source's submissions past its hourly ceiling are held for staff (the worker's
    # parked queue: `dead_letters.py --parked replay` sends them on). Without it, no ceiling.
    parked_queue_url: str | None = None
    # How many of one source's submissions the worker is sent in an hour (UTC), unless the
    # source sets its own `hourly_ceiling`; 0: none. A form's URL is public, and a bot
    # posting valid-looking people made one contact in Cliniko each, as fast as the budget
    # allowed (some 95 a minute), for as long as the backlog it queued lasted.
    source_hourly_ceiling: int = bounded(DEFAULT_SOURCE_HOURLY_CEILING, ge=0)
