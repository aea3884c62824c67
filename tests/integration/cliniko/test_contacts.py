"""Contacts over real HTTP: filters arriving intact, CRUD, headers, ids and error mapping."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cliniko_automations.cliniko import ClinikoClient, Contact, ContactWrite, errors
from cliniko_automations.cliniko.filters import DateTimeFilter, NumericFilter, StringFilter
from cliniko_automations.common import http_transport
from cliniko_client.models import PhoneNumberWrite, PhoneType

from tests.integration.common.test_http_transport import ScriptedServer, answer
from tests.unit.cliniko.fake_clock import FakeClock

UA = "Tests (tests@example.com)"


def test_plus_in_an_email_filter_arrives_intact(cliniko) -> None:
    cliniko.control.seed(
        contacts=[
            {"first_name": "Plus", "email": "a+b@example.com"},
            {"first_name": "Dash", "email": "a-b@example.com"},
            {"first_name": "Bare", "email": "ab@example.com"},
        ]
    )
    client = cliniko.client(clock=FakeClock())

    found = client.list_contacts([StringFilter("email").eq("a+b@example.com")])

    assert [c.first_name for c in found] == ["Plus"]
    logged = cliniko.control.requests()[-1]
    assert logged["query"]["q[]"] == ["email:=a+b@example.com"]
    assert "a%2Bb%40example.com" in logged["query_string"]


def test_numeric_list_and_date_time_filters(cliniko) -> None:
    ids = cliniko.control.seed(
        contacts=[
            {"first_name": "Old", "created_at": "2019-01-01T00:00:00Z"},
            {"first_name": "Mid", "created_at": "2020-06-01T12:00:00Z"},
            {"first_name": "New", "created_at": "2021-01-01T00:00:00Z"},
        ]
    )
    client = cliniko.client(clock=FakeClock())

    by_id = client.list_contacts([NumericFilter("id").eq([ids[0], ids[2]])])
    assert [c.id for c in by_id] == [ids[0], ids[2]]

    sydney = dt.timezone(dt.timedelta(hours=10))
    after = dt.datetime(2020, 6, 1, 22, 0, 0, tzinfo=sydney)  # 12:00Z: "Mid" is not after it
    newer = client.list_contacts([DateTimeFilter("created_at").gt(after)])
    assert [c.first_name for c in newer] == ["New"]
    from_mid = client.list_contacts([DateTimeFilter("created_at").ge(after)])
    assert [c.first_name for c in from_mid] == ["Mid", "New"]
    assert cliniko.control.requests()[-1]["query"]["q[]"] == ["created_at:>=2020-06-01T12:00:00Z"]


def test_create_get_update_archive_round_trip_keeps_ids_as_strings(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())

    created = client.create_contact(
        {
            "first_name": "John",
            "last_name": "Snow",
            "country_code": "AU",
            "phone_numbers": [{"number": "0412 345 678", "phone_type": "Mobile"}],
        }
    )
    assert isinstance(created, Contact)
    assert isinstance(created.id, str) and created.id.isdigit() and len(created.id) >= 16
    assert created.country == "Australia"

    fetched = client.get_contact(created.id)
    assert fetched.id == created.id
    assert fetched.last_name == "Snow"

    updated = client.update_contact(created.id, ContactWrite(last_name="Stark"))
    assert updated.id == created.id
    assert updated.last_name == "Stark"
    assert updated.first_name == "John"  # PATCH changes only what it sends

    assert client.archive_contact(created.id) is None
    assert client.list_contacts() == []
    archived = client.list_contacts([DateTimeFilter("archived_at").any()])
    assert [c.id for c in archived] == [created.id]

    log = cliniko.control.requests()
    assert [(r["method"], r["status"]) for r in log] == [
        ("POST", 201),
        ("GET", 200),
        ("PATCH", 200),
        ("POST", 204),
        ("GET", 200),
        ("GET", 200),
    ]
    assert all(r["user_agent"] == UA for r in log)
    assert all(r["content_type"] == "application/json" for r in log if r["body"])
    assert log[2]["body"] == {"last_name": "Stark"}


@pytest.mark.parametrize(
    "phones",
    [
        [{"number": "1", "phone_type": "Home"}],
        [PhoneNumberWrite(number="1", phone_type=PhoneType.HOME)],
    ],
    ids=["mappings", "models"],
)
@pytest.mark.parametrize("as_model", [False, True], ids=["body-mapping", "body-ContactWrite"])
def test_a_contact_is_created_and_updated_with_phone_numbers(cliniko, phones, as_model) -> None:
    # A hand-built ContactWrite holding plain phone mappings used to fail in the generated
    # to_dict (AttributeError), reported as an answer off the spec.
    client = cliniko.client(clock=FakeClock())

    def body(**fields):
        return ContactWrite(**fields) if as_model else fields

    created = client.create_contact(body(first_name="Ana", phone_numbers=phones))
    mobile = [{"number": "0412 345 678", "phone_type": "Mobile"}]
    client.update_contact(created.id, body(phone_numbers=mobile))

    [create, update] = cliniko.control.requests()
    assert create["status"] == 201 and update["status"] == 200
    assert create["body"]["phone_numbers"] == [{"number": "1", "phone_type": "Home"}]
    assert update["body"] == {"phone_numbers": mobile}
    [stored] = cliniko.control.contacts()
    assert [(p["number"], p["phone_type"]) for p in stored["phone_numbers"]] == [
        ("0412 345 678", "Mobile")
    ]


@pytest.mark.parametrize(
    ("phones", "problem"),
    [
        ([{"number": "1", "phone_type": "home"}], "phone_type is not included in the list"),
        ([{"number": " ", "phone_type": "Home"}], "number can’t be blank"),
        ([{"phone_type": "Home"}], "is invalid"),
        ("0412 345 678", "is invalid"),  # not a list at all
        ({"number": "1", "phone_type": "Home"}, "is invalid"),
    ],
)
def test_a_phone_list_the_model_cannot_hold_is_refused_before_sending(cliniko, phones, problem):
    client = cliniko.client(clock=FakeClock())
    for body in (
        {"first_name": "Ana", "phone_numbers": phones},
        ContactWrite(first_name="Ana", phone_numbers=phones),
    ):
        with pytest.raises(errors.ValidationFailed) as caught:
            client.create_contact(body)
        assert caught.value.errors == {"phone_numbers": problem}
    assert cliniko.control.requests() == []


def test_a_body_json_cannot_carry_is_refused_before_sending(cliniko) -> None:
    # A lone surrogate no UTF-8 holds: raised while the request was built, it read as an
    # answer off the spec, and the worker took the create for one that may have been made.
    client = cliniko.client(clock=FakeClock())
    for body in ({"first_name": "Ana\ud800"}, {"first_name": "Ana", "notes": "x\udfff"}):
        with pytest.raises(errors.ValidationFailed) as caught:
            client.create_contact(body)
        assert (caught.value.errors, caught.value.status_code) == (
            {"body": "cannot be sent as JSON"},
            None,
        )
    assert cliniko.control.requests() == []


def test_an_int_id_is_accepted_and_a_bad_one_refused_before_sending(cliniko) -> None:
    (contact_id,) = cliniko.control.seed(1, seed=9)
    client = cliniko.client(clock=FakeClock())
    assert client.get_contact(int(contact_id)).id == contact_id  # type: ignore[arg-type]
    # Past int64's maximum no Cliniko id can be (the spec's ContactIdDigits).
    too_big = ("9223372036854775808", "9" * 19, "1" * 20, 2**63)
    for bad in ("", "12a", "../1", "1.5", None, True, 1.0, 0, -1, *too_big):
        with pytest.raises(ValueError):
            client.get_contact(bad)  # type: ignore[arg-type]
    assert client.request_count == 1


def test_an_archived_contact_is_reached_by_id_only_when_asked(cliniko) -> None:
    # A Cliniko that hides archived contacts asked by id without a filter on archived_at.
    cliniko.control.set_behaviour(archived_get="hidden")
    (contact_id,) = cliniko.control.seed(1, archived=1, seed=12)
    client = cliniko.client(clock=FakeClock())

    with pytest.raises(errors.NotFound):
        client.get_contact(contact_id)
    assert client.get_contact(contact_id, include_archived=True).archived_at
    updated = client.update_contact(contact_id, {"notes": ""}, include_archived=True)
    assert updated.id == contact_id
    assert [r["query"].get("q[]") for r in cliniko.control.requests()] == [
        None,
        ["archived_at:*"],
        ["archived_at:*"],
    ]


def test_not_found(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(errors.NotFound) as caught:
        client.get_contact("1390712996921091568")
    assert caught.value.status_code == 404
    with pytest.raises(errors.NotFound):
        client.archive_contact("1390712996921091568")
    with pytest.raises(errors.NotFound):  # the largest id there can be is still asked for
        client.get_contact(str(2**63 - 1))


def test_validation_failed_carries_each_field_message(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(errors.ValidationFailed) as caught:
        client.create_contact({"first_name": "", "email": "not-an-email", "country_code": "ZZ"})
    failure = caught.value
    assert failure.status_code == 422
    assert failure.errors["first_name"] == "can’t be blank"
    assert set(failure.errors) == {"first_name", "email", "country_code"}
    assert "not-an-email" not in str(failure)


def test_unknown_fields_are_refused_locally(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(errors.ValidationFailed) as caught:
        client.create_contact({"first_name": "A", "firstname": "typo", "country": "Australia"})
    assert set(caught.value.errors) == {"firstname", "country"}
    assert caught.value.status_code is None
    with pytest.raises(TypeError):
        client.create_contact(["first_name", "A"])  # type: ignore[arg-type]
    assert client.request_count == 0


def test_a_filter_on_a_field_that_is_not_filterable_is_a_bad_request(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(errors.BadRequest) as caught:
        client.list_contacts([StringFilter("notes").eq("x")])
    assert caught.value.status_code == 400
    assert "notes" in str(caught.value)
    assert client.request_count == 1  # a 400 is not retried


def test_key_on_the_wrong_shard_is_unauthorized_with_a_hint(cliniko) -> None:
    wrong_shard_key = cliniko.api_key.rsplit("-", 1)[0] + "-uk1"
    client = cliniko.client(api_key=wrong_shard_key, clock=FakeClock())
    with pytest.raises(errors.Unauthorized) as caught:
        client.list_contacts()
    assert caught.value.shard == "uk1"
    assert "another shard" in str(caught.value)
    assert wrong_shard_key not in str(caught.value)
    assert cliniko.control.requests()[-1]["path"].startswith("/uk1/v1/")
    assert client.request_count == 1


def test_unknown_key_is_unauthorized(cliniko) -> None:
    client = cliniko.client(api_key="MS0xnotregistered-au1", clock=FakeClock())
    with pytest.raises(errors.Unauthorized):
        client.get_contact("1")


def test_key_without_suffix_goes_to_au1(cliniko) -> None:
    bare = cliniko.api_key.rsplit("-", 1)[0]
    client = ClinikoClient(bare, UA, base_url=cliniko.base_url_template, clock=FakeClock())
    try:
        assert client.list_contacts() == []
    finally:
        client.close()
    assert cliniko.control.requests()[-1]["path"] == "/au1/v1/contacts"


def test_one_client_serves_several_threads(cliniko) -> None:
    ids = cliniko.control.seed(8, seed=11)
    client = cliniko.client(clock=FakeClock())

    with ThreadPoolExecutor(max_workers=4) as pool:
        fetched = list(pool.map(lambda contact_id: client.get_contact(contact_id).id, ids * 3))

    assert fetched == ids * 3
    assert client.request_count == 24
    assert cliniko.control.counters()["by_method_status"]["GET 200"] == 24


def test_a_refused_filter_quoted_back_does_not_leak_the_email(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    with pytest.raises(errors.BadRequest) as caught:
        client.list_contacts([StringFilter("id").eq("someone+x@example.com")])
    assert "@" not in str(caught.value)
    assert "example.com" not in str(caught.value)


ID = "1390712996921091568"


def scripted_client(script, clock: FakeClock | None = None) -> tuple[ClinikoClient, ScriptedServer]:
    """A client of a server on 127.0.0.1 that answers as `script` writes."""
    server = ScriptedServer(script)
    client = ClinikoClient(
        "MS0xtestkey0000000000000000-au1",
        "Tests (tests@example.com)",
        base_url=f"http://127.0.0.1:{server.port}/{{shard}}/v1",
        clock=clock or FakeClock(),
    )
    return client, server


def only_the_seeds_route(method: bytes, seeds_answer, other_status: str):
    """A Cliniko as the contacts page of its docs describes it: requests by `method` (the
    seed's route: PUT to update, DELETE to archive) get `seeds_answer`; any other is answered
    `other_status` (404 or 405: the current route is not there)."""

    def script(connection, request: bytes) -> None:
        if request.startswith(method + b" "):
            seeds_answer(connection, request)
        else:
            answer(b'{"message": "Not found"}', status=other_status)(connection, request)

    return script


CONTACT = json.dumps(
    {
        "id": ID,
        "first_name": "Ana",
        "created_at": "2026-12-03T00:00:00Z",
        "updated_at": "2026-12-03T00:00:00Z",
    }
).encode()
CONTACT_PATH = f"/au1/v1/contacts/{ID}".encode()


@pytest.mark.parametrize("status", ["404 Not Found", "405 Method Not Allowed"])
@pytest.mark.parametrize(
    ("work", "current", "seeds", "seeds_answer"),
    [
        (
            lambda client: client.update_contact(ID, {"first_name": "Ana"}),
            [b"PATCH", CONTACT_PATH],
            [b"PUT", CONTACT_PATH],
            answer(CONTACT, "Content-Type: application/json"),
        ),
        (
            lambda client: client.archive_contact(ID),
            [b"POST", CONTACT_PATH + b"/archive"],
            [b"DELETE", CONTACT_PATH],
            answer(b"", status="204 No Content"),
        ),
    ],
    ids=["update", "archive"],
)
def test_a_missing_current_route_falls_back_to_the_seeds(
    work, current, seeds, seeds_answer, status
) -> None:
    client, server = scripted_client(only_the_seeds_route(seeds[0], seeds_answer, status))
    try:
        work(client)
        work(client)
    finally:
        server.stop()
    # Done, and done the next time by the seed's route at once.
    assert [r.split(b" ", 2)[:2] for r in server.requests] == [current, seeds, seeds]


@pytest.mark.parametrize(
    ("work", "methods"),
    [
        (lambda client: client.update_contact(ID, {"first_name": "Ana"}), [b"PATCH", b"PUT"]),
        (lambda client: client.archive_contact(ID), [b"POST", b"DELETE"]),
    ],
    ids=["update", "archive"],
)
def test_a_contact_the_current_route_does_not_find_is_not_found_where_the_seeds_is_no_method(
    work, methods
) -> None:
    no_method = answer(b'{"message": "Method not allowed"}', status="405 Method Not Allowed")
    client, server = scripted_client(only_the_seeds_route(methods[1], no_method, "404 Not Found"))
    try:
        with pytest.raises(errors.NotFound):
            work(client)
    finally:
        server.stop()
    assert [r.split(b" ", 1)[0] for r in server.requests] == methods


def test_a_cliniko_without_patch_updates_by_put_and_a_missing_contact_is_not_found(
    cliniko,
) -> None:
    cliniko.control.set_behaviour(update_methods=["PUT"])
    client = cliniko.client()
    made = client.create_contact({"first_name": "Ana", "last_name": "Lima"})
    cliniko.control.clear_requests()

    assert client.update_contact(made.id, {"occupation": "Physio"}).occupation == "Physio"
    assert client.update_contact(made.id, {"last_name": "Lima-Sousa"}).last_name == "Lima-Sousa"
    with pytest.raises(errors.NotFound):
        client.update_contact("1390712996921099999", {"occupation": "Physio"})

    assert [r["method"] for r in cliniko.control.requests()] == ["PATCH", "PUT", "PUT", "PUT"]
    kept = cliniko.control.contacts()[0]
    assert (kept["first_name"], kept["occupation"]) == ("Ana", "Physio")  # a partial body


def test_a_missing_contact_is_not_found_by_patch_then_put(cliniko) -> None:
    client = cliniko.client()
    with pytest.raises(errors.NotFound):
        client.update_contact("1390712996921099999", {"occupation": "Physio"})
    assert [r["method"] for r in cliniko.control.requests()] == ["PATCH", "PUT"]


def test_an_archive_answered_200_with_a_body_is_archived() -> None:
    body = b'{"id": "1390712996921091568", "archived_at": "2026-12-03T00:00:00Z"}'
    client, server = scripted_client(answer(body, "Content-Type: application/json"))
    try:
        assert client.archive_contact(ID) is None
    finally:
        server.stop()
    assert len(server.requests) == 1


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_ANSWERS = {
    "a page": (b'{"contacts": [{"id": 1, "notes": ' + DEEP + b'}], "total_entries": 1}', "200 OK"),
    "an error": (b'{"message": ' + DEEP + b"}", "422 Unprocessable Entity"),
}


@pytest.mark.parametrize("kind", DEEP_ANSWERS)
def test_an_answer_nested_deeper_than_json_can_read_is_an_error_of_cliniko_s(kind):
    body, status = DEEP_ANSWERS[kind]
    # Past the parser's recursion limit: a RecursionError out of a client is no ClinikoError,
    # and each caller's handling of Cliniko's errors missed it.
    client, server = scripted_client(answer(body, "Content-Type: application/json", status=status))
    try:
        with pytest.raises(errors.ClinikoError):
            client.list_contacts([])
    finally:
        server.stop()


class SteppingClocks:
    """`time` as the transport reads it, moved on by hand: a warm process's requests some
    seconds apart, without waiting for them."""

    def __init__(self) -> None:
        self.passed = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.passed

    def time(self) -> float:
        return time.time() + self.passed


def test_a_connection_whose_answer_was_read_is_kept_for_the_next_request(monkeypatch):
    # Each answer read whole puts its connection back, and its time is when the keep-alive
    # expiry (5 s idle) counts from: requests 4 s apart go out on one connection, however
    # long ago the client was made.
    clocks = SteppingClocks()
    monkeypatch.setattr(http_transport, "time", clocks)
    client, server = scripted_client(answer(CONTACT, "Content-Type: application/json"))
    try:
        for _ in range(3):
            clocks.passed += 4.0
            assert client.get_contact(ID).id == ID
    finally:
        client.close()
        server.stop()
    assert (len(server.requests), server.connections) == (3, 1)
