"""The feed against servers answering as Cliniko's docs show a contact (the spec's example of
the contacts page, over real HTTP) and as a careless Cliniko might page: what it reads as
archived, where a listing ends, and the cursor it reports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cliniko_automations.changefeed import handler
from cliniko_automations.changefeed.changes import TRACKED_FIELDS, FieldHasher, classify
from cliniko_automations.changefeed.cliniko_source import ClinikoContactsSource
from cliniko_automations.changefeed.events import webhook_body
from cliniko_automations.changefeed.signing import sign, signing_keys
from cliniko_automations.cliniko import errors

from tests.integration.changefeed.stack import (
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
)
from tests.integration.cliniko.test_contacts import scripted_client
from tests.integration.common.test_http_transport import ScriptedServer

SPEC = yaml.safe_load((Path(__file__).resolve().parents[3] / "openapi.yaml").read_text())
# The example contact of Cliniko's contacts documentation, as the spec quotes it.
[DOCUMENTED] = SPEC["paths"]["/contacts"]["get"]["responses"]["200"]["content"]["application/json"][
    "examples"
]["seed"]["value"]["contacts"]
HASHER = FieldHasher(b"feed-hash-key-for-tests-only-32b")
SINCE = dt.datetime(2016, 10, 28, tzinfo=dt.UTC)


def listed(*contacts: dict[str, Any], next_page: bool = False) -> bytes:
    links = {"self": "https://api.au1.cliniko.com/v1/contacts?page=1"}
    if next_page:
        links["next"] = "https://api.au1.cliniko.com/v1/contacts?page=2"
    return json.dumps(
        {"contacts": list(contacts), "total_entries": len(contacts), "links": links}
    ).encode()


def answering(*listings: bytes):
    """A script answering each request with the next listing, the last one from then on."""
    answers = list(listings)

    def script(connection, request: bytes) -> None:
        body = answers.pop(0) if len(answers) > 1 else answers[0]
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        connection.sendall(head.encode() + b"\r\n\r\n" + body)

    return script


def read(*listings: bytes) -> list[Any]:
    """One snapshot a request, the server answering each listing in turn."""
    client, server = scripted_client(answering(*listings))
    try:
        source = ClinikoContactsSource(client)
        return [source.changed_since(SINCE, 1).contacts[0] for _ in listings]
    finally:
        server.stop()


ARCHIVED_BY_DELETE = {
    **DOCUMENTED,
    "updated_at": "2016-10-29T08:00:00Z",
    "deleted_at": "2016-10-29T08:00:00Z",
}


@pytest.mark.parametrize("mark", ["deleted_at", "archived_at"])
def test_a_contact_archived_with_either_mark_is_an_archive(mark: str) -> None:
    # deleted_at: the only mark the contacts page of Cliniko's docs shows (its DELETE
    # archives). Read by archived_at alone it was an update naming no field, and a restore
    # was never an unarchive.
    archived = {**DOCUMENTED, "updated_at": "2016-10-29T08:00:00Z", mark: "2016-10-29T08:00:00Z"}
    restored = {**DOCUMENTED, "updated_at": "2016-10-30T08:00:00Z"}
    before, after, back = read(listed(DOCUMENTED), listed(archived), listed(restored))

    first = classify("main", before, None, HASHER.hashes(before))
    assert first is not None and first.type == "contact.updated"
    change = classify("main", after, first.state, HASHER.hashes(after))
    assert change is not None
    assert (change.type, change.changed_fields) == ("contact.archived", ("archived_at",))
    restore = classify("main", back, change.state, HASHER.hashes(back))
    assert restore is not None and restore.type == "contact.unarchived"


def test_a_contact_first_seen_archived_by_delete_is_an_archive() -> None:
    [snapshot] = read(listed(ARCHIVED_BY_DELETE))
    change = classify("main", snapshot, None, HASHER.hashes(snapshot))
    assert change is not None
    assert (change.type, change.changed_fields) == ("contact.archived", ("archived_at",))
    assert change.with_fields()["contact"]["archived_at"] == "2016-10-29T08:00:00Z"


# The documented contact carries `country` (its name) and no `country_code`, and the list's
# no `doctor_type`: read as null, a country never changed and subscribers were told it had none.


def test_a_change_of_country_in_a_documented_listing_is_named_and_sent() -> None:
    assert "country_code" not in DOCUMENTED
    moved = {**DOCUMENTED, "updated_at": "2016-10-29T08:00:00Z", "country": "Australia"}
    before, after = read(listed(DOCUMENTED), listed(moved))
    first = classify("main", before, None, HASHER.hashes(before))
    assert first is not None
    assert first.with_fields()["contact"]["country_code"] == "EE"
    assert "country_code" in first.changed_fields
    change = classify("main", after, first.state, HASHER.hashes(after))
    assert change is not None
    assert change.changed_fields == ("country_code",)
    assert change.with_fields()["contact"]["country_code"] == "AU"


@pytest.mark.parametrize(
    ("shown", "published"),
    [
        ({"country": ""}, None),
        ({"country": None}, None),
        ({"country": "EE", "country_code": "EE"}, "EE"),
        ({"country_code": "EE"}, "EE"),
    ],
    ids=["blank name", "null name", "code beside the name", "code alone"],
)
def test_a_country_is_published_as_the_listing_shows_it(shown, published) -> None:
    contact = {k: v for k, v in DOCUMENTED.items() if k != "country"}
    [snapshot] = read(listed({**contact, **shown}))
    assert snapshot.fields["country_code"] == published


def test_a_field_the_listing_leaves_out_is_not_published_as_blank() -> None:
    # An unknown country name too: no code can be read from it.
    contact = {**DOCUMENTED, "country": "Atlantis"}
    assert "doctor_type" not in contact
    [snapshot] = read(listed(contact))
    change = classify("main", snapshot, None, HASHER.hashes(snapshot))
    assert change is not None
    published = change.with_fields()["contact"]
    assert "doctor_type" not in published
    assert "country_code" not in published
    assert published["first_name"] == DOCUMENTED["first_name"]
    # Hashed as null, as before: states recorded before this reading do not all change.
    as_null = dataclasses.replace(snapshot, fields={"doctor_type": None})
    assert HASHER.hashes(snapshot)["doctor_type"] == HASHER.hashes(as_null)["doctor_type"]


@pytest.fixture
def feed(aws, cliniko, tmp_path, monkeypatch):
    """The feed's stack, its first run starting at 09:00:00Z, its Cliniko a scripted server:
    `feed(script)` runs the handler once and answers the account's result."""
    created = create_feed_stack()
    feed_environment(monkeypatch, created, cliniko, tmp_path, BACKFILL_FROM="2026-01-05T09:00:00Z")
    servers: list[ScriptedServer] = []

    def run(script) -> dict[str, Any]:
        server = ScriptedServer(script)
        servers.append(server)
        monkeypatch.setenv("CLINIKO_BASE_URL", f"http://127.0.0.1:{server.port}/{{shard}}/v1")
        (account,) = handler.lambda_handler(SCHEDULED_EVENT, context())["accounts"]
        return account

    yield run
    for server in servers:
        server.stop()


def test_an_empty_page_with_a_next_link_ends_the_listing(feed) -> None:
    # A next link where there is no next page (nothing after it): every run was reported
    # incomplete (`empty_page_with_next_link`), the feed never caught up, and its behind
    # alarm fired on a quiet account.
    account = feed(answering(listed(next_page=True)))
    assert (account["complete"], account["error"], account["requests"]) == (True, None, 1)


def test_the_cursor_is_reported_in_utc_whatever_offset_cliniko_writes(feed) -> None:
    # Stored right, reported (the handler's answer, its log) as Cliniko's local time with a Z.
    changed = {**DOCUMENTED, "created_at": "2026-01-05T19:00:00+10:00"}
    changed["updated_at"] = "2026-01-05T19:00:30+10:00"
    account = feed(answering(listed(changed)))
    assert (account["changes"], account["cursor"]) == (1, "2026-01-05T09:00:30Z")


def test_a_text_with_half_an_emoji_is_read_with_the_broken_character_marked() -> None:
    # Cliniko's JSON can carry a lone surrogate (an emoji cut in two); kept, it could never be
    # encoded into a signed webhook, and every run failed on the contact.
    body = listed({**DOCUMENTED, "notes": "Allergic "}).replace(
        b'"notes": "Allergic "', b'"notes": "Allergic \\ud83d"'
    )
    (snapshot,) = read(body)
    assert snapshot.fields["notes"] == "Allergic \ufffd"
    sign(signing_keys("whsec_" + "A" * 32), "msg_1", 1, webhook_body(snapshot.fields))


# A page not in the order asked for (a Cliniko that ignored `sort`, answering in its default
# created_at order) stops the poll: the cursor must not move past the changes still unlisted.


def changed(contact_id: int, updated_at: str) -> dict[str, Any]:
    return {**DOCUMENTED, "id": contact_id, "updated_at": updated_at}


SECOND = dt.datetime(2016, 10, 29, 8, 0, 20, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("read", "page"),
    [
        # Default order (created_at): the newest change first, an older one after it.
        (lambda source: source.changed_since(SINCE, 1), [(1, "08:00:50"), (2, "08:00:20")]),
        # One second's page, read on by id.
        (lambda source: source.changed_in_second(SECOND, 0), [(9, "08:00:20"), (3, "08:00:20")]),
    ],
    ids=["by updated_at", "a second's by id"],
)
def test_a_page_not_in_the_order_asked_for_is_refused(read, page):
    listing = listed(*(changed(i, f"2016-10-29T{at}Z") for i, at in page), next_page=True)
    client, server = scripted_client(answering(listing))
    try:
        with pytest.raises(errors.UnexpectedResponse):
            read(ClinikoContactsSource(client))
    finally:
        server.stop()


def test_a_page_in_order_with_fractions_shown_is_read():
    page = listed(
        changed(7, "2016-10-29T08:00:20.900Z"),
        changed(3, "2016-10-29T08:00:20.950+00:00"),
        changed(5, "2016-10-29T08:00:21Z"),
    )
    client, server = scripted_client(answering(page))
    try:
        assert len(ClinikoContactsSource(client).changed_since(SINCE, 1).contacts) == 3
    finally:
        server.stop()


# States recorded before country_code was read from `country` hashed it as null for every
# contact of a documented listing: unknown, not a change.


def _as_the_release_before_read_it(snapshot):
    # The release before's _snapshot: body.get(name) for every field; the documented contact has no
    # country_code, so it was None.
    return dataclasses.replace(snapshot, fields={**snapshot.fields, "country_code": None})


def _hashed_before(snapshot):
    # The release before's FieldHasher.hashes: one hash per tracked field, nothing else.
    return {k: v for k, v in HASHER.hashes(snapshot).items() if k in TRACKED_FIELDS}


def test_a_contact_listed_again_in_the_overlap_after_the_upgrade_is_not_published_again():
    [snapshot] = read(listed(DOCUMENTED))
    old = _as_the_release_before_read_it(snapshot)
    before = classify("main", old, None, _hashed_before(old))
    assert before is not None  # published by the release before, its state kept
    # The first run after the deploy lists it again (the overlap): nothing changed in Cliniko.
    again = classify("main", snapshot, before.state, HASHER.hashes(snapshot), hasher=HASHER)
    assert again is None, again.changed_fields


@pytest.mark.parametrize(
    ("shown", "as_read_before", "changed", "named"),
    [
        # A documented listing: country_code hashed as null, unknown now, not changed.
        ({}, _as_the_release_before_read_it, {"first_name": "Renamed"}, ("first_name",)),
        # A listing that carried country_code (the spec's example does): hashed as it was.
        (
            {"country_code": "EE"},
            lambda snapshot: snapshot,
            {"country_code": "AU"},
            ("country_code",),
        ),
    ],
    ids=["documented listing", "code shown"],
)
def test_the_next_change_after_the_upgrade_names_only_what_changed(
    shown, as_read_before, changed, named
):
    [snapshot] = read(listed({**DOCUMENTED, **shown}))
    old = as_read_before(snapshot)
    before = classify("main", old, None, _hashed_before(old))
    moved = {**DOCUMENTED, **shown, "updated_at": "2016-10-29T08:00:00Z", **changed}
    [after] = read(listed(moved))
    change = classify("main", after, before.state, HASHER.hashes(after), hasher=HASHER)
    assert change is not None
    assert change.changed_fields == named
