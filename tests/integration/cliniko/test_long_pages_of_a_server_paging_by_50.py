"""A Cliniko that pages by fewer than asked (its default, 50), one of whose pages is too long
to hold: the page is read again in halves from its own first contact, reckoned at the size
the server serves (reckoned at the size asked, 100, the listing jumped a served page ahead and
skipped 100 contacts: a PaginationMismatch, or, with the count moving meanwhile, 200 of 300
contacts and a warning)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.cliniko.test_contacts import scripted_client
from tests.integration.common.test_http_transport import answer

TOTAL = 300
LONG = range(100, 150)  # contacts with long notes: a page of 50 of them is too long to hold


def _capped_at_50(drift: int = 0):
    def script(connection, request: bytes) -> None:
        query = parse_qs(urlsplit(request.split(b" ", 2)[1].decode()).query)
        page, asked = int(query["page"][0]), int(query["per_page"][0])
        size = min(asked, 50)  # pages by 50 whatever per_page asks above it
        served = range((page - 1) * size, min(page * size, TOTAL))
        if size >= 50 and any(n in LONG for n in served):
            body = b" " * (9 << 20)
        else:
            links = {"self": f"https://api.au1.cliniko.com/v1/contacts?page={page}"}
            if page * size < TOTAL:
                links["next"] = f"https://api.au1.cliniko.com/v1/contacts?page={page + 1}"
            body = json.dumps(
                {
                    "contacts": [_contact(n) for n in served],
                    # `drift`: one contact added meanwhile, counted from the second page on
                    "total_entries": TOTAL + (drift if page > 1 else 0),
                    "links": links,
                }
            ).encode()
        answer(body, "Content-Type: application/json")(connection, request)

    return script


def _contact(n: int) -> dict[str, object]:
    contact_id = 1390712996921090000 + n
    return {
        "id": str(contact_id),
        "first_name": "A",
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
        "links": {"self": f"https://api.au1.cliniko.com/v1/contacts/{contact_id}"},
    }


@pytest.mark.parametrize("drift", [0, 1], ids=["count-steady", "count-changed"])
def test_a_long_page_of_a_cliniko_paging_by_50_is_read_on_from_its_first_contact(drift):
    client, server = scripted_client(_capped_at_50(drift))
    try:
        listed = [int(c.id) - 1390712996921090000 for c in client.list_contacts()]
    finally:
        client.close()
        server.stop()
    # Every contact once: none of 100..199 skipped (count-steady raised PaginationMismatch,
    # count-changed returned 200 of 300 contacts with a warning only).
    assert sorted(listed) == list(range(TOTAL))
