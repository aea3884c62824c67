"""The intake API's collaborators, built from its settings: the form sources (parsed once per
container), the core's `Services`, and the claim-check queue an accepted submission goes to."""

from __future__ import annotations

import dataclasses
import functools

from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.common.person_keys import PersonKeys, submission_keys
from cliniko_automations.common.secret_text import trimmed
from cliniko_automations.common.secrets import (
    SecretNotPlainText,
    SecretUnavailable,
    read_secret,
    rotated_values,
)
from cliniko_automations.intake.config import FormSources, load_form_sources
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api.accept import Accepted, Services
from cliniko_automations.intake_api.captcha import verify_captcha
from cliniko_automations.intake_api.errors import ServiceUnavailable
from cliniko_automations.intake_api.queue import SubmissionQueue
from cliniko_automations.intake_api.settings import ApiSettings
from cliniko_automations.intake_api.telemetry import count_signature_checked


@functools.lru_cache(maxsize=8)
def load_sources(path: str | None, accounts_path: str | None) -> FormSources:
    # Parsed once per container (and per file, so tests can point FORM_SOURCES_FILE elsewhere).
    return load_form_sources(path, load_accounts(accounts_path).accounts)


def form_sources(settings: ApiSettings) -> FormSources:
    return load_sources(settings.form_sources_file, settings.cliniko_accounts_file)


def read_form_secret(name: str, *, prefix: str | None = None) -> str:
    """A form source's signing secret or token: one value. Two separated by white space (a
    webhook secret's `whsec_NEW whsec_OLD` while it is rotated) were taken as one key, and
    every delivery was refused 401, which a provider does not deliver again; refused as not
    plain text, the provider is answered 503 and the operator told the fix."""
    value = read_secret(name, prefix=prefix)
    if any(character.isspace() for character in trimmed(value)):
        raise SecretNotPlainText(
            f"secret {name!r} holds two values", name=name, holds="values separated by spaces"
        )
    return value


def services(settings: ApiSettings) -> Services:
    return Services(
        sources=form_sources(settings),
        read_secret=functools.partial(read_form_secret, prefix=settings.secrets_prefix),
        rotated_secret=functools.partial(rotated_values, prefix=settings.secrets_prefix),
        verify_captcha=verify_captcha,
        max_body_bytes=settings.max_body_bytes,
        signature_checked=count_signature_checked,
    )


def queue_accepted(outcome: Accepted, settings: ApiSettings) -> Accepted:
    """Body into the store, id onto the queue (the parked queue, held, once its source's
    hourly ceiling is reached); a failure sends a browser to the error page."""
    submission = outcome.submission
    ceiling = form_sources(settings).sources[submission.source].hourly_ceiling
    try:
        held = SubmissionQueue(
            settings.submission_queue_url,
            settings.submission_table,
            parked_queue_url=settings.parked_queue_url,
        ).send(
            submission,
            _person_keys(submission, settings),
            hourly_ceiling=settings.source_hourly_ceiling if ceiling is None else ceiling,
        )
        return dataclasses.replace(outcome, held=held)
    except ServiceUnavailable as exc:
        if outcome.redirects is not None:
            exc.redirect_to = outcome.redirects.error_url_for(exc.reason)
            exc.cors_origin = outcome.cors_origin
        raise


def _person_keys(submission: Submission, settings: ApiSettings) -> PersonKeys:
    """The keyed hashes an erasure finds this submission's body by (the erasure's own helper):
    its email's, or without one its name's and phones' (the worker's identity then)."""
    draft = submission.draft
    phones = [phone.number for phone in draft.phone_numbers]
    if not draft.lookup_email and not (draft.first_name and draft.last_name and phones):
        return PersonKeys()  # nothing to hash: the pepper is not needed
    try:
        pepper = read_secret(settings.pepper_secret_name)
    except SecretUnavailable:
        raise ServiceUnavailable("secrets", "pepper") from None
    return submission_keys(pepper, draft.lookup_email, draft.first_name, draft.last_name, phones)
