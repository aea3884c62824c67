"""When a submission was made: the provider's own time where its payload has one, else when
the API first received it; never later than that first receipt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cliniko_automations.intake.submission import ContactDraft, Submission
from cliniko_automations.intake_api.providers import jotform, json_api, tally, typeform, webflow
from cliniko_automations.intake_api.providers.base import Delivery, provider_time

from tests.unit.intake_api import samples

SAMPLE_TIME = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def json_delivery(body: bytes, **headers: str) -> Delivery:
    return Delivery(body, {"content-type": "application/json", **headers}, {}, "application/json")


@pytest.mark.parametrize(
    ("adapter", "body"),
    [
        (typeform, samples.typeform_body()),  # form_response.submitted_at
        (tally, samples.tally_body()),  # data.createdAt
        (webflow, samples.webflow_body()),  # payload.submittedAt
    ],
    ids=["typeform", "tally", "webflow"],
)
def test_providers_that_stamp_a_submission_give_its_time(adapter, body) -> None:
    assert adapter.parse(json_delivery(body)).submitted_at == SAMPLE_TIME


def test_providers_without_a_submission_time_give_none() -> None:
    assert json_api.parse(json_delivery(samples.json_body())).submitted_at is None
    body, content_type = samples.jotform_body()
    delivery = Delivery(body, {"content-type": content_type}, {}, content_type)
    assert jotform.parse(delivery).submitted_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T10:00:00Z", SAMPLE_TIME),
        ("2026-11-23T21:00:00+11:00", SAMPLE_TIME),
        ("2026-11-23T10:00:00.000Z", SAMPLE_TIME),
        ("2026-11-23T10:00:00", None),  # no zone: which clock? ignored
        ("yesterday", None),
        (1764000000, None),
        (None, None),
        ("9" * 100, None),
        # the calendar's edges do not fit once moved to UTC: ignored, not a 503
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
    ],
)
def test_provider_time_reads_zoned_iso_times_only(value, expected) -> None:
    assert provider_time(value) == expected


def submission(**times: datetime | None) -> Submission:
    return Submission(
        submission_id="s-1",
        idempotency_key="src:1",
        source="src",
        provider="json",
        account="a",
        received_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
        draft=ContactDraft(first_name="A"),
        **times,
    )


def test_made_at_prefers_the_providers_time_then_the_first_receipt() -> None:
    first = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert submission().made_at == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # A redelivery days later: made when we first saw it.
    assert submission(first_received_at=first).made_at == first
    assert submission(submitted_at=SAMPLE_TIME, first_received_at=first).made_at == SAMPLE_TIME
    # A provider time after our first receipt cannot be true: the receipt bounds it.
    later = datetime(2026, 12, 5, tzinfo=UTC)
    assert submission(submitted_at=later, first_received_at=first).made_at == first
