"""Contacts carrying large text (Cliniko's `notes` are unbounded): a page of them must not stop
an account's feed for good."""

from __future__ import annotations

import pytest

from tests.integration.changefeed.stack import (
    create_feed_stack,
    feed_environment,
    run_feed,
)

PAST = "2026-01-05T09:00:00Z"
LATER = "2026-01-05T09:00:05Z"


@pytest.fixture
def stack(aws, cliniko, tmp_path, monkeypatch):
    created = create_feed_stack()
    feed_environment(monkeypatch, created, cliniko, tmp_path, BACKFILL_FROM="2026-01-05T08:59:00Z")
    return created


def test_a_page_of_contacts_with_long_notes_does_not_stop_the_feed(stack, cliniko):
    # 100 contacts with 90 kB of notes each (9 MB on one page of 100), then one small change.
    for batch in range(2):
        cliniko.control.seed(
            contacts=[
                {
                    "first_name": f"Long{batch}-{n}",
                    "notes": "n" * 90_000,
                    "created_at": PAST,
                    "updated_at": PAST,
                }
                for n in range(50)
            ]
        )
    (later,) = cliniko.control.seed(
        contacts=[{"first_name": "Later", "created_at": LATER, "updated_at": LATER}]
    )
    result = run_feed()
    assert result["complete"] and result["error"] is None, result
    published = {e["detail"]["contact_id"] for e in stack.drain()}
    assert str(later) in published, "the later change is never published"
    assert len(published) == 101


def test_one_contact_too_long_to_hold_stops_its_account_s_feed_and_says_why(stack, cliniko):
    """The limit left: a contact whose notes alone pass 8 MiB cannot be read at all."""
    cliniko.control.seed(
        contacts=[
            {
                "first_name": "Huge",
                "notes": "n" * (9 * 2**20),
                "created_at": PAST,
                "updated_at": PAST,
            }
        ]
    )
    results = [run_feed() for _ in range(2)]
    assert [r["error"] for r in results] == ["cliniko_AnswerTooLong"] * 2
    assert results[-1]["cursor"] == "2026-01-05T08:59:00Z"
