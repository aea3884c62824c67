"""Contacts whose date-times Cliniko writes in another RFC 3339 form than the seed's `Z`."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.integration.changefeed.test_cliniko_source import DOCUMENTED, answering, listed
from tests.integration.changefeed.test_exactly_once import quiet_feed, quiet_feed_store
from tests.integration.cliniko.test_contacts import scripted_client

NOW = dt.datetime(2016, 10, 29, 12, 0, tzinfo=dt.UTC)


def poll(stamp: str, *, accounts=("a",)) -> list[dict]:
    contact = {**DOCUMENTED, "created_at": stamp, "updated_at": stamp}
    client, server = scripted_client(answering(listed(contact)))
    try:
        feed = quiet_feed(
            client, quiet_feed_store(), dt.datetime(2016, 10, 28, tzinfo=dt.UTC), lambda: NOW
        )
        return [r.as_dict() for r in feed.run(list(accounts))]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "stamp",
    [
        "2016-10-28T23:43:31Z",
        "2016-10-29T10:43:31+11:00",
        "2016-10-28T18:43:31-05:00",
        "2016-10-28T23:43:31.123Z",
        "2016-10-28T23:43:31.123456Z",
        "2016-10-28t23:43:31Z",
        # RFC 3339 (5.6) lets "T" and "Z" be written in lower case; Python's fromisoformat
        # takes a lower-case "t" but not a "z": the account's every poll failed on it.
        "2016-10-28t23:43:31z",
        "2016-10-29T10:43:31.5+11:00",
    ],
)
def test_a_contact_stamped_in_any_rfc3339_form_is_published_and_moves_the_cursor(
    aws, stamp
) -> None:
    [result] = poll(stamp)
    assert result["error"] is None
    assert result["changes"] == 1
    assert result["cursor"] == "2016-10-28T23:43:31Z"


def test_a_contact_stamped_without_a_zone_fails_its_account_not_the_run(aws) -> None:
    # Off the spec (a date-time carries its offset): the account's poll should end with
    # cliniko_UnexpectedResponse, as any other answer off the spec does, not raise a TypeError.
    [result] = poll("2016-10-28T23:43:31")
    assert result["complete"] is False
    assert result["error"] == "cliniko_UnexpectedResponse"


def test_contacts_stamped_in_a_zone_s_repeated_hour_are_read_in_the_order_of_their_moments(
    aws,
) -> None:
    # Sydney's clocks go back from 03:00 to 02:00 on 5 April 2026: 02:45+11:00 comes before
    # 02:15+10:00. Listed in updated_at order (by moment) their wall-clock times run backwards;
    # read as text the page looked unsorted (the account failed), or the cursor went back.
    stamps = [
        "2026-04-05T02:45:00+11:00",  # 2026-04-04T15:45:00Z
        "2026-04-05T02:15:00+10:00",  # 2026-04-04T16:15:00Z
        "2026-04-05T02:30:00+10:00",  # 2026-04-04T16:30:00Z
    ]
    contacts = [
        {**DOCUMENTED, "id": str(100 + n), "created_at": stamp, "updated_at": stamp}
        for n, stamp in enumerate(stamps)
    ]
    client, server = scripted_client(answering(listed(*contacts)))
    try:
        feed = quiet_feed(
            client,
            quiet_feed_store(),
            dt.datetime(2026, 4, 4, 15, 0, tzinfo=dt.UTC),
            lambda: dt.datetime(2026, 4, 4, 17, 0, tzinfo=dt.UTC),
        )
        [result] = [r.as_dict() for r in feed.run(["a"])]
    finally:
        server.stop()
    assert result["error"] is None
    assert result["changes"] == 3
    assert result["cursor"] == "2026-04-04T16:30:00Z"
