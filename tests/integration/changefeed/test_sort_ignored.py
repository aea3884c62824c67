"""A Cliniko that ignores `sort=updated_at,id` and answers in its default created_at order, with
a first page that happens to be in updated_at order: the page looks right, but a contact created
later (so on no page yet) changed before the page's newest. Moved to that page's newest change,
the cursor skipped it for good; the next page's count gives it away."""

from __future__ import annotations

import datetime as dt
import json

from tests.integration.changefeed.test_cliniko_source import DOCUMENTED, answering
from tests.integration.changefeed.test_exactly_once import poll_once, quiet_feed_store
from tests.integration.cliniko.test_contacts import scripted_client

START = dt.datetime(2016, 10, 28, 8, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2016, 10, 29, 12, 0, tzinfo=dt.UTC)


def stamp(minutes: int) -> str:
    return (START + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def contact(number: int, updated: int) -> dict:
    return {**DOCUMENTED, "id": str(1000 + number), "created_at": stamp(number),
            "updated_at": stamp(updated)}  # fmt: skip


def page(contacts: list[dict], total: int) -> bytes:
    links = {"self": "https://api.au1.cliniko.com/v1/contacts?page=1"}
    if total > len(contacts):
        links["next"] = "https://api.au1.cliniko.com/v1/contacts?page=2"
    return json.dumps({"contacts": contacts, "total_entries": total, "links": links}).encode()


def test_a_first_page_in_created_at_order_that_looks_sorted_does_not_move_the_cursor_past_the_rest(
    aws,
) -> None:
    # Contacts 1..101 made a minute apart; contact 100 then changed at minute 500. In created_at
    # order the first page (1..100) is in updated_at order too: 1..99, then 100 at minute 500.
    # Contact 101 (minute 101) is on the second page, and only the second.
    first = [contact(n, n) for n in range(1, 100)] + [contact(100, 500)]
    # The next request, updated_at >= minute 500: contact 100 alone. 101 changes had been
    # counted at or after the start, 99 of them before minute 500: at least 2 must follow.
    after = page([contact(100, 500)], 1)
    client, server = scripted_client(answering(page(first, 101), after))
    store = quiet_feed_store()
    try:
        result = poll_once(client, store, clock=lambda: NOW, start_at=START)
    finally:
        server.stop()
    assert result["error"] == "cliniko_UnexpectedResponse"
    # Not past contact 101's change (minute 101), which no page showed.
    assert store.cursor("test-clinic") <= START + dt.timedelta(minutes=101)
    assert result["cursor"] <= stamp(101)
