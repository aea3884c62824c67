"""Pages too long to hold: contacts' `notes` are unbounded, and a page of 100 contacts with long
notes passes the 8 MiB the client holds (`MAX_ANSWER_BYTES`). Refused again by every run, it
stopped a cleanup rule, an erasure's lookup and the change feed for good; now the same contacts
are read in pages half the size, down to one contact, from the same one on."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.filters import KEYSET_SORT, NumericFilter, StringFilter

from tests.integration.cliniko.test_contacts import scripted_client
from tests.integration.cliniko.test_pagination import _contact as contact_item
from tests.integration.common.test_http_transport import answer

LONG = "n" * 90_000  # 100 of them pass 8 MiB; 50 do not


def seed(cliniko, notes: list[str]) -> list[str]:
    """Contacts with these notes, in id order, seeded 50 at a time (no HTTP create each)."""
    ids: list[str] = []
    for start in range(0, len(notes), 50):
        ids += cliniko.control.seed(
            contacts=[
                {"first_name": f"C{start + n}", "email": f"c{start + n}@example.com", "notes": text}
                for n, text in enumerate(notes[start : start + 50])
            ]
        )
    return ids


def listings(cliniko) -> list[tuple[int, int]]:
    """(page, per_page) of each listing request Cliniko got, in order."""
    return [
        (int(r["query"]["page"][0]), int(r["query"]["per_page"][0]))
        for r in cliniko.control.requests()
        if r["method"] == "GET" and r["path"].endswith("/contacts")
    ]


def test_a_first_page_too_long_is_read_in_halves_to_the_end(cliniko):
    ids = seed(cliniko, [LONG] * 130)
    client = cliniko.client()

    listed = [c.id for c in client.list_contacts()]

    assert listed == ids
    # Refused at 100; the rest of the listing at 50.
    assert listings(cliniko) == [(1, 100), (1, 50), (2, 50), (3, 50)]


def test_a_later_page_too_long_goes_on_from_its_first_contact(cliniko):
    ids = seed(cliniko, ["short"] * 100 + [LONG] * 100 + ["short"] * 10)
    client = cliniko.client()

    listed = [c.id for c in client.list_contacts()]

    assert listed == ids
    # Page 2 of 100 starts at contact 100: page 3 of 50.
    assert listings(cliniko) == [(1, 100), (2, 100), (3, 50), (4, 50), (5, 50)]


def test_an_odd_size_halved_skips_what_was_read_and_reads_on_at_the_smaller_size(cliniko):
    # 25 contacts of 400 kB pass 8 MiB (10 MB); 12 of them do not.
    ids = seed(cliniko, ["short"] * 25 + ["m" * 400_000] * 25)
    client = cliniko.client()

    listed = [c.id for c in client.list_contacts()]

    assert listed == ids
    # Page 2 of 25 starts at contact 25; page 3 of 12 starts at 24, read already.
    assert listings(cliniko) == [(1, 100), (1, 50), (1, 25), (2, 25), (3, 12), (4, 12), (5, 12)]


def test_a_listing_by_id_reads_a_page_too_long_in_halves_from_the_last_id(cliniko):
    ids = seed(cliniko, ["short"] * 100 + [LONG] * 100 + ["short"] * 10)
    client = cliniko.client()

    listed = [c.id for c in client.list_contacts(sort=KEYSET_SORT)]

    assert listed == ids
    # Each page is the first one, from the last id read; the one too long is read at 50.
    assert listings(cliniko) == [(1, 100), (1, 100), (1, 50), (1, 50), (1, 50)]
    after = [r["query"].get("q[]") for r in cliniko.control.requests() if r["method"] == "GET"]
    assert after == [None, *([[f"id:>{ids[99]}"]] * 2), [f"id:>{ids[149]}"], [f"id:>{ids[199]}"]]


def test_contacts_page_says_where_a_page_read_smaller_ends(cliniko):
    ids = seed(cliniko, ["short"] * 100 + [LONG] * 120)
    client = cliniko.client()

    page = client.contacts_page(sort="id", page=2)

    assert [c.id for c in page.contacts] == ids[100:150]
    assert (page.page, page.per_page, page.has_next, page.total_entries) == (3, 50, True, 220)
    following = client.contacts_page(sort="id", page=page.page + 1, per_page=page.per_page)
    assert [c.id for c in following.contacts] == ids[150:200]


def test_the_ids_a_cleanup_asks_about_are_read_in_halves_too(cliniko):
    """The cleanup asks which of 100 ledger ids match in one `id:=` listing."""
    ids = seed(cliniko, [LONG] * 100)
    client = cliniko.client()

    matched = [c.id for c in client.iter_contacts([NumericFilter("id").eq(ids)])]

    assert sorted(matched) == sorted(ids)
    assert listings(cliniko) == [(1, 100), (1, 50), (2, 50)]


def test_one_contact_too_long_to_hold_is_still_answer_too_long(cliniko):
    seed(cliniko, ["short"] * 3)
    cliniko.control.seed(
        contacts=[{"first_name": "Huge", "email": "huge@example.com", "notes": "n" * (9 << 20)}]
    )
    client = cliniko.client()

    with pytest.raises(errors.AnswerTooLong):
        client.list_contacts([StringFilter("email").eq("huge@example.com")])
    # Down to one contact, then refused: the contact alone is too long.
    assert [size for _, size in listings(cliniko)] == [100, 50, 25, 12, 6, 3, 1]
    with pytest.raises(errors.AnswerTooLong):
        client.list_contacts(sort="id")


def _smaller_pages(empty: bool):
    """A Cliniko whose pages of 100 are too long to hold, and whose smaller pages either keep
    sending next links past its count (120) or are empty with a next link."""

    def script(connection, request: bytes) -> None:
        line = request.split(b"\r\n", 1)[0].decode()
        page = int(re.search(r"[?&]page=(\d+)", line).group(1))
        size = int(re.search(r"per_page=(\d+)", line).group(1))
        if size == 100:
            body = b" " * (9 << 20)
        else:
            first = (page - 1) * size + 1
            body = json.dumps(
                {
                    "contacts": [] if empty else [_contact(first + n) for n in range(size)],
                    "total_entries": 120,
                    "links": {
                        "self": f"https://api.au1.cliniko.com/v1/contacts?page={page}",
                        "next": f"https://api.au1.cliniko.com/v1/contacts?page={page + 1}",
                    },
                }
            ).encode()
        answer(body, "Content-Type: application/json")(connection, request)

    return script


def _contact(number: int) -> dict[str, object]:
    return contact_item(1390712996921090000 + number)


@pytest.mark.parametrize("empty", [False, True], ids=["endless-next-links", "empty-page"])
def test_the_listing_s_guards_hold_at_the_smaller_size(empty):
    client, server = scripted_client(_smaller_pages(empty))
    try:
        with pytest.raises(errors.UnexpectedResponse) as caught:
            client.list_contacts()
    finally:
        client.close()
        server.stop()
    assert not isinstance(caught.value, errors.AnswerTooLong)
    assert ("empty page" if empty else "kept sending next links") in str(caught.value)
    # 120 contacts are 3 pages of 50: at most one page past them, never an endless listing.
    assert len(server.requests) == (2 if empty else 6)


# A Cliniko that pages by fewer than asked (its default, 50), one of whose pages is too long
# to hold: the page is read again in halves from its own first contact, reckoned at the size
# the server serves (reckoned at the size asked, 100, the listing jumped a served page ahead and
# skipped 100 contacts: a PaginationMismatch, or, with the count moving meanwhile, 200 of 300
# contacts and a warning).
BY_50_TOTAL = 300
BY_50_LONG = range(100, 150)  # contacts with long notes: a page of 50 of them is too long to hold


def _capped_at_50(drift: int = 0):
    def script(connection, request: bytes) -> None:
        query = parse_qs(urlsplit(request.split(b" ", 2)[1].decode()).query)
        page, asked = int(query["page"][0]), int(query["per_page"][0])
        size = min(asked, 50)  # pages by 50 whatever per_page asks above it
        served = range((page - 1) * size, min(page * size, BY_50_TOTAL))
        if size >= 50 and any(n in BY_50_LONG for n in served):
            body = b" " * (9 << 20)
        else:
            links = {"self": f"https://api.au1.cliniko.com/v1/contacts?page={page}"}
            if page * size < BY_50_TOTAL:
                links["next"] = f"https://api.au1.cliniko.com/v1/contacts?page={page + 1}"
            body = json.dumps(
                {
                    "contacts": [_contact(n) for n in served],
                    # `drift`: one contact added meanwhile, counted from the second page on
                    "total_entries": BY_50_TOTAL + (drift if page > 1 else 0),
                    "links": links,
                }
            ).encode()
        answer(body, "Content-Type: application/json")(connection, request)

    return script


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
    assert sorted(listed) == list(range(BY_50_TOTAL))
