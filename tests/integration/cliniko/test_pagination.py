"""Listing every contact over real HTTP against the emulator, counted in its request log."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.filters import KEYSET_SORT, DateTimeFilter, StringFilter

from tests.integration.changefeed.test_cliniko_source import DOCUMENTED, answering
from tests.integration.cliniko.test_contacts import scripted_client
from tests.integration.common.test_http_transport import answer
from tests.unit.cliniko.fake_clock import FakeClock


def _list_gets(cliniko) -> list[dict]:
    return [r for r in cliniko.control.requests() if r["method"] == "GET"]


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (1, 1), (100, 1), (101, 2), (250, 3)])
def test_every_page_is_read_and_next_ends_it(cliniko, count: int, pages: int) -> None:
    ids = cliniko.control.seed(count, seed=1)
    client = cliniko.client(clock=FakeClock())

    contacts = client.list_contacts()

    assert [c.id for c in contacts] == ids  # every contact, oldest first, none twice
    assert all(isinstance(c.id, str) for c in contacts)
    gets = _list_gets(cliniko)
    assert len(gets) == pages == client.request_count
    assert [g["query"]["page"] for g in gets] == [[str(n)] for n in range(1, pages + 1)]
    assert all(g["query"]["per_page"] == ["100"] for g in gets)
    assert all(g["status"] == 200 for g in gets)


def test_listing_1000_contacts_costs_exactly_10_requests(cliniko) -> None:
    cliniko.control.seed(1000, seed=2)
    client = cliniko.client(clock=FakeClock())

    seen = {c.id for c in client.iter_contacts()}

    assert len(seen) == 1000
    assert client.request_count == 10
    assert cliniko.control.counters()["by_method_status"]["GET 200"] == 10


def test_filters_and_sort_are_sent_on_every_page(cliniko) -> None:
    cliniko.control.seed(
        contacts=[
            {
                "first_name": f"F{n}",
                "last_name": "Same",
                "created_at": f"2020-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
            }
            for n in range(130)
        ]
    )
    cliniko.control.seed(20, seed=3)
    client = cliniko.client(clock=FakeClock())

    contacts = client.list_contacts([StringFilter("last_name").eq("Same")], sort="created_at:desc")

    assert len(contacts) == 130
    assert {c.last_name for c in contacts} == {"Same"}
    assert contacts[0].first_name == "F129"  # newest first
    gets = _list_gets(cliniko)
    assert len(gets) == 2
    for get in gets:
        assert get["query"]["q[]"] == ["last_name:=Same"]
        assert get["query"]["sort"] == ["created_at:desc"]


@pytest.mark.parametrize(("sort", "missed"), [(None, 1), (KEYSET_SORT, 0)])
def test_a_listing_by_id_misses_no_contact_when_one_leaves_it_between_pages(
    cliniko, sort, missed
) -> None:
    # 150 contacts of one email; after the first page, one of them takes another address (staff
    # correct it, an erasure scrubs it). By offset every later contact moves a place up, and
    # the next page starts one past the first it has not shown: listed never, counted right.
    email = "sam.person@example.org"
    ids = cliniko.control.seed(150, fields={"email": email})
    cliniko.control.seed(3, fields={"email": "someone.else@example.org"})
    client = cliniko.client(clock=FakeClock())
    listing = client.iter_contacts([StringFilter("email").eq(email)], sort)

    first_page = [next(listing).id for _ in range(100)]
    client.update_contact(first_page[49], {"email": "sam.work@example.org"})
    listed = {*first_page, *(c.id for c in listing)}

    holding = set(ids) - {first_page[49]}
    assert len(holding - listed) == missed
    if sort == KEYSET_SORT:
        later = _list_gets(cliniko)[-1]["query"]
        assert later["page"] == ["1"] and later["sort"] == ["id"]
        assert later["q[]"] == [f"email:={email}", f"id:>{max(first_page, key=int)}"]


def _page_of_ids(ids: list[int], more: bool, total: int = 200) -> bytes:
    links = {"self": "https://api.au1.cliniko.com/v1/contacts?page=1"}
    if more:
        links["next"] = "https://api.au1.cliniko.com/v1/contacts?page=2"
    contacts = [{**DOCUMENTED, "id": str(i)} for i in ids]
    return json.dumps({"contacts": contacts, "total_entries": total, "links": links}).encode()


@pytest.mark.parametrize(
    "pages",
    [
        [_page_of_ids([5, 3], True)],  # sort=id ignored: read on from 3, 4 would be skipped
        [_page_of_ids([3, 5], True), _page_of_ids([3, 5], True)],  # id:> ignored
        # Taken as the end, the rest of the person's contacts were never erased.
        [_page_of_ids([], True, total=150)],  # an empty page with more to come
        [_page_of_ids([3, 5], False, total=150)],  # a last page short of its count
    ],
)
def test_a_listing_by_id_refuses_pages_it_cannot_read_on_from(pages) -> None:
    client, server = scripted_client(answering(*pages))
    try:
        with pytest.raises((errors.UnexpectedResponse, errors.PaginationMismatch)):
            list(client.iter_contacts(sort=KEYSET_SORT))
    finally:
        server.stop()


def test_a_listing_by_id_of_one_page_takes_it_in_any_order() -> None:
    client, server = scripted_client(answering(_page_of_ids([5, 3], False, total=2)))
    try:
        assert [c.id for c in client.iter_contacts(sort=KEYSET_SORT)] == ["5", "3"]
    finally:
        server.stop()


def test_archived_contacts_only_when_asked(cliniko) -> None:
    cliniko.control.seed(5, archived=2, seed=4)
    client = cliniko.client(clock=FakeClock())

    assert len(client.list_contacts()) == 3
    everything = client.list_contacts([DateTimeFilter("archived_at").any()])
    assert len(everything) == 5
    only_archived = client.list_contacts([DateTimeFilter("archived_at").present()])
    assert len(only_archived) == 2
    assert all(c.archived_at for c in only_archived)


def test_contacts_changing_under_a_stable_count_raise(cliniko) -> None:
    """Newest first: a create pushes every contact one place down, an archive at the end keeps
    the count. The contact on the page boundary comes twice (skipped), so one is missing."""
    ids = cliniko.control.seed(250, seed=5)
    client = cliniko.client(clock=FakeClock())
    listing = client.iter_contacts(sort="created_at:desc")
    first_page = [next(listing) for _ in range(100)]
    assert len(first_page) == 100

    client.create_contact({"first_name": "Late", "last_name": "Arrival"})
    client.archive_contact(ids[0])  # the oldest, last in this order

    with pytest.raises(errors.PaginationMismatch) as caught:
        list(listing)
    assert caught.value.total_entries == 250
    assert caught.value.seen == 249


def test_a_count_that_changed_while_listing_is_logged_not_raised(cliniko, caplog) -> None:
    cliniko.control.seed(250, seed=6)
    client = cliniko.client(clock=FakeClock())
    listing = client.iter_contacts(sort="created_at:desc")
    first_page = [next(listing) for _ in range(100)]

    client.create_contact({"first_name": "Late", "last_name": "Arrival"})
    with caplog.at_level(logging.WARNING, logger="cliniko_automations.cliniko"):
        rest = list(listing)

    listed = [c.id for c in first_page + rest]
    assert len(listed) == len(set(listed)) == 250  # nothing yielded twice
    assert "contacts changed while listing" in caplog.text
    assert "Arrival" not in caplog.text and "@" not in caplog.text


def test_bad_sort_is_refused_before_sending(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(ValueError):
        client.list_contacts(sort="created_at desc; drop")
    with pytest.raises(TypeError):
        client.list_contacts(["email:=x@example.com"])  # type: ignore[list-item]
    assert client.request_count == 0


def _pages_of(size: int, total: int, total_entries: object = None):
    """A Cliniko that pages by `size` whatever per_page asks (its default is 50)."""

    def script(connection, request: bytes) -> None:
        target = request.split(b" ", 2)[1].decode()
        page = int(parse_qs(urlsplit(target).query).get("page", ["1"])[0])
        ids = range((page - 1) * size + 1, min(page * size, total) + 1)
        links = {"self": f"https://api.au1.cliniko.com/v1/contacts?page={page}"}
        if page * size < total:
            links["next"] = f"https://api.au1.cliniko.com/v1/contacts?page={page + 1}"
        body = {
            "contacts": [_contact(1390712996921090000 + i) for i in ids],
            "total_entries": total if total_entries is None else total_entries,
            "links": links,
        }
        answer(json.dumps(body).encode(), "Content-Type: application/json")(connection, request)

    return script


def test_a_cliniko_that_pages_by_fewer_than_asked_is_followed_to_the_end() -> None:
    client, server = scripted_client(_pages_of(50, 260))
    try:
        listed = client.list_contacts()
    finally:
        server.stop()
    assert len({c.id for c in listed}) == 260
    assert len(server.requests) == 6


def test_a_count_that_is_not_a_whole_number_is_an_answer_off_the_spec() -> None:
    client, server = scripted_client(_pages_of(100, 230, total_entries="230"))
    try:
        with pytest.raises(errors.UnexpectedResponse):
            client.list_contacts()
    finally:
        server.stop()


def _contact(contact_id: int) -> dict[str, object]:
    return {
        "id": str(contact_id),
        "first_name": "A",
        "created_at": "2026-12-01T00:00:00Z",
        "updated_at": "2026-12-01T00:00:00Z",
        "links": {"self": f"https://api.au1.cliniko.com/v1/contacts/{contact_id}"},
    }


def test_a_phone_without_its_number_is_kept_blank_not_a_failure_of_every_caller() -> None:
    # The generated parser kept the raw list, and to_dict() raised AttributeError on it. Each
    # entry stays (an erasure must still see a phone to scrub), with what it held.
    contact = _contact(1390712996921090001)
    contact["phone_numbers"] = [
        {"phone_type": "Mobile", "normalized_number": "+61400111222"},
        {"number": "0412 345 678"},
        "x",
    ]
    body = {"contacts": [contact], "total_entries": 1, "links": {"self": "x"}}
    client, server = scripted_client(answer(json.dumps(body).encode()))
    try:
        (listed,) = client.list_contacts()
    finally:
        server.stop()
    phones = listed.to_dict()["phone_numbers"]
    assert [p["number"] for p in phones] == ["", "0412 345 678", ""]
    assert phones[0]["normalized_number"] == "+61400111222"


def test_a_next_link_back_to_the_same_page_is_refused_not_followed() -> None:
    pages = iter([2, 2, None])  # a link to page 1 from page 1, twice, then none

    def script(connection, request: bytes) -> None:
        page = next(pages)
        links = {"self": "https://api.au1.cliniko.com/v1/contacts?page=1"}
        if page is not None:
            links["next"] = "https://api.au1.cliniko.com/v1/contacts?page=1"
        body = {"contacts": [_contact(1390712996921090001)], "total_entries": 1, "links": links}
        answer(json.dumps(body).encode())(connection, request)

    client, server = scripted_client(script)
    try:
        with pytest.raises(errors.UnexpectedResponse):
            client.list_contacts()
    finally:
        server.stop()
    assert len(server.requests) == 1


@pytest.mark.parametrize("link", [2, True, ["https://api.au1.cliniko.com/v1/contacts?page=2"]])
def test_a_next_link_that_is_not_a_link_is_an_answer_off_the_spec(link) -> None:
    body = {
        "contacts": [_contact(1390712996921090001)],
        "total_entries": 2,
        "links": {"self": "x", "next": link},
    }
    client, server = scripted_client(answer(json.dumps(body).encode()))
    try:
        with pytest.raises(errors.UnexpectedResponse):
            client.list_contacts()
        with pytest.raises(errors.UnexpectedResponse):
            client.contacts_page()
    finally:
        server.stop()


@pytest.mark.parametrize("listed", [0, 1], ids=["no-match", "after-the-last-contact"])
def test_an_empty_page_with_a_next_link_ends_a_listing_its_count_says_is_complete(listed) -> None:
    # Cliniko documents `links.next` as left out on the last page, but a next link on an
    # empty page past the count (no match at all, or past the last one) names no contact
    # more. Refused, every intake lookup of a new person failed into the dead-letter queue.
    def script(connection, request: bytes) -> None:
        page = int(parse_qs(urlsplit(request.split(b" ")[1].decode()).query)["page"][0])
        contacts = [_contact(1390712996921090001)] if page <= listed else []
        body = {
            "contacts": contacts,
            "total_entries": listed,
            "links": {
                "self": f"https://api.au1.cliniko.com/v1/contacts?page={page}",
                "next": f"https://api.au1.cliniko.com/v1/contacts?page={page + 1}",
            },
        }
        answer(json.dumps(body).encode())(connection, request)

    client, server = scripted_client(script)
    try:
        contacts = client.list_contacts()
    finally:
        server.stop()
    assert len(contacts) == listed
    assert len(server.requests) == listed + 1  # the empty page ends it; nothing is asked after
