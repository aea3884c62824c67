"""The contact store, rate limiter and fault decisions, without a server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cliniko_emulator.contact_rules import validate_contact_fields
from cliniko_emulator.faults import Faults
from cliniko_emulator.filters import SortKey, parse_filter
from cliniko_emulator.ratelimit import RateLimiter
from cliniko_emulator.store import (
    ContactStore,
    NotFound,
    ValidationFailed,
    normalize_number,
    render_contact,
)

ASC = [SortKey("created_at", False)]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 1) -> None:
        self.now += timedelta(seconds=seconds)


def test_create_fills_blanks_and_derives_fields() -> None:
    store = ContactStore()
    record = store.create("au1", {"first_name": "A", "country_code": "NZ", "type_code": 2})
    out = render_contact(record, "http://x/au1/v1")
    assert len(out["id"]) == 19 and out["id"].isdigit()
    assert out["country_code"] == "NZ" and out["country"] == "New Zealand"
    assert out["type"] == "3rd Party Payer"
    assert out["last_name"] == "" and out["phone_numbers"] == []
    assert out["links"] == {"self": f"http://x/au1/v1/contacts/{out['id']}"}


def test_read_only_and_unknown_fields_are_ignored() -> None:
    store = ContactStore()
    record = store.create(
        "au1", {"first_name": "A", "country": "France", "id": "1", "type": "Doctor", "x": 1}
    )
    out = render_contact(record, "")
    assert out["country"] == "" and out["type"] == "Standard" and out["id"] != "1"
    assert "x" not in out


def test_validation_errors_use_clinikos_messages() -> None:
    store = ContactStore()
    with pytest.raises(ValidationFailed) as failed:
        store.create("au1", {"email": "nope", "country_code": "ZZ", "last_name": "x" * 256})
    assert failed.value.errors == {
        "first_name": "can’t be blank",
        "email": "is invalid",
        "country_code": "is not included in the list",
        "last_name": "is too long (maximum is 255 characters)",
    }


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"first_name": ["x"]}, {"first_name": "is invalid"}),
        ({"type_code": {}}, {"type_code": "is not included in the list"}),
        ({"doctor_type": []}, {"doctor_type": "is not included in the list"}),
        ({"country_code": {"a": 1}}, {"country_code": "is not included in the list"}),
        ({"type_code": True}, {"type_code": "is not included in the list"}),
    ],
)
def test_wrong_types_are_validation_errors(body: dict, errors: dict) -> None:
    assert validate_contact_fields(body, creating=False) == errors


def test_update_is_partial_and_moves_updated_at_only_on_change() -> None:
    clock = Clock()
    store = ContactStore(clock=clock)
    record = store.create(
        "au1",
        {
            "first_name": "A",
            "email": "a@x.io",
            "phone_numbers": [{"number": "1", "phone_type": "Home"}],
        },
    )
    clock.tick()
    same = store.update("au1", record["id"], {"first_name": "A"})
    assert same["updated_at"] == record["updated_at"]
    changed = store.update("au1", record["id"], {"last_name": None, "email": "b@x.io"})
    assert changed["updated_at"] == clock.now and changed["first_name"] == "A"
    assert changed["last_name"] == "" and changed["email"] == "b@x.io"
    assert changed["phone_numbers"] == [{"number": "1", "phone_type": "Home"}]
    cleared = store.update("au1", record["id"], {"phone_numbers": None, "doctor_type": None})
    assert cleared["phone_numbers"] == [] and cleared["doctor_type"] is None


def test_archive_keeps_the_data_and_hides_from_queries() -> None:
    clock = Clock()
    store = ContactStore(clock=clock)
    record = store.create("au1", {"first_name": "A"})
    clock.tick(5)
    archived = store.archive("au1", record["id"])
    assert archived["archived_at"] == clock.now and archived["first_name"] == "A"
    clock.tick(5)
    assert store.archive("au1", record["id"])["archived_at"] == archived["archived_at"]
    assert store.query("au1", [], ASC, 0, 50) == ([], 0)
    page, total = store.query("au1", [parse_filter("archived_at:*")], ASC, 0, 50)
    assert total == 1 and page[0]["id"] == record["id"]


def test_unknown_id_and_other_shard() -> None:
    store = ContactStore()
    record = store.create("au1", {"first_name": "A"})
    with pytest.raises(NotFound):
        store.get("au2", record["id"])
    with pytest.raises(NotFound):
        store.update("au1", "1", {"first_name": "B"})
    with pytest.raises(NotFound):
        store.archive("au1", "1")


def test_query_pages_and_counts() -> None:
    store = ContactStore()
    ids = [store.create("au1", {"first_name": f"n{i}"})["id"] for i in range(7)]
    page, total = store.query("au1", [], ASC, 5, 5)
    assert total == 7 and [r["id"] for r in page] == ids[5:]


def test_seed_is_realistic_valid_and_deterministic() -> None:
    first, second = ContactStore(), ContactStore()
    a = first.seed("au1", 30, seed=7, archived=3)
    b = second.seed("au1", 30, seed=7, archived=3)
    strip = [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at", "archived_at")}
        for r in a
    ]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at", "archived_at")}
        for r in b
    ]
    assert sum(r["archived_at"] is not None for r in a) == 3
    assert [r["created_at"] for r in a] == sorted(r["created_at"] for r in a)
    assert all(
        validate_contact_fields(
            {k: r[k] for k in ("first_name", "email", "country_code")}, creating=True
        )
        == {}
        for r in a
    )
    given = first.seed(
        "au2",
        0,
        contacts=[{"first_name": "Z", "archived": True, "created_at": "2020-01-01T00:00:00Z"}],
    )
    assert given[0]["archived_at"] is not None
    assert given[0]["created_at"] == datetime(2020, 1, 1, tzinfo=UTC)


def test_state_file_round_trip(tmp_path) -> None:
    path = tmp_path / "state.json"
    store = ContactStore(path)
    record = store.create(
        "uk1", {"first_name": "A", "phone_numbers": [{"number": "1", "phone_type": "Fax"}]}
    )
    store.archive("uk1", record["id"])
    store.meta["keys"] = ["k-uk1"]
    store.save()
    assert json.loads(path.read_text())["shards"]["uk1"][0]["id"] == record["id"]
    again = ContactStore(path)
    assert again.get("uk1", record["id"]) == store.get("uk1", record["id"])
    assert again.meta["keys"] == ["k-uk1"]
    newer = again.create("uk1", {"first_name": "B"})
    assert int(newer["id"]) > int(record["id"])


def test_concurrent_creates_get_unique_ids() -> None:
    store = ContactStore()
    ids: list[str] = []

    def work() -> None:
        for _ in range(50):
            ids.append(store.create("au1", {"first_name": "A"})["id"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 200


@pytest.mark.parametrize(
    ("number", "normalized"),
    [("0400 000 000", "0400000000"), ("+61 (2) 9999-0000", "+61299990000")],
)
def test_normalize_number(number: str, normalized: str) -> None:
    assert normalize_number(number) == normalized


def test_rate_limiter_windows_and_reset() -> None:
    now = [1000.2]
    limiter = RateLimiter(3, time_scale=60, clock=lambda: now[0])  # a one-second "minute"
    assert [limiter.hit("k") for _ in range(3)] == [None, None, None]
    assert limiter.hit("k") == 1002  # window 1000.2..1001.2, rounded up
    assert limiter.hit("other") is None  # per key
    now[0] = 1001.3
    assert limiter.hit("k") is None
    limiter.configure(0)
    assert all(limiter.hit("k") is None for _ in range(100))
    with pytest.raises(ValueError):
        limiter.configure(5, time_scale=0)


def test_bulk_seeding_lays_fields_over_every_fake_contact() -> None:
    store = ContactStore()
    seeded = store.seed("au1", 50, seed=3, fields={"email": "bulk@bench.example.com"})
    assert {r["email"] for r in seeded} == {"bulk@bench.example.com"}
    assert len({r["last_name"] for r in seeded}) > 1  # the rest stays realistic
    with pytest.raises(ValidationFailed) as failed:
        store.seed("au1", 1, fields={"email": "not an email"})
    assert list(failed.value.errors) == ["fields.email"]


def test_an_id_filter_finds_what_a_full_scan_finds() -> None:
    # The id lookup is a shortcut: the other filters and archived contacts still apply.
    store = ContactStore()
    seeded = store.seed("au1", 40, seed=5, archived=5)
    ids = [r["id"] for r in seeded[::3]] + ["1", seeded[0]["id"]]
    by_id = parse_filter("id:=" + ",".join(ids))
    typed = parse_filter("type_code:=1")
    page, total = store.query("au1", [by_id, typed], [SortKey("id", False)], 0, 100)
    expected = [
        r["id"]
        for r in sorted(seeded, key=lambda r: r["id"])
        if r["id"] in ids and r["type_code"] == 1 and r["archived_at"] is None
    ]
    assert [r["id"] for r in page] == expected and total == len(expected)


def test_faults_are_reproducible_with_a_seed() -> None:
    def run() -> list:
        faults = Faults()
        faults.configure({"error_rate": 0.3, "drop_rate": 0.1, "seed": 42})
        return [faults.decide("GET", "/au1/v1/contacts") for _ in range(200)]

    first, second = run(), run()
    assert first == second
    errors = sum(1 for d in first if d.status)
    drops = sum(1 for d in first if d.drop)
    assert 30 <= errors <= 90 and 5 <= drops <= 40
    assert {d.status for d in first if d.status} <= {500, 502, 504}


def test_fail_next_methods_and_bad_settings() -> None:
    faults = Faults()
    faults.configure({"fail_next": [502, "drop", 429], "methods": ["post"]})
    contacts = "/au1/v1/contacts"
    assert faults.decide("GET", contacts).is_fault is False
    assert faults.decide("POST", contacts).status == 502
    assert faults.decide("POST", contacts).drop is True
    assert faults.decide("POST", contacts).throttle_reset is not None
    assert faults.decide("POST", contacts).is_fault is False
    for bad in (
        {"error_rate": 2},
        {"after_effect_rate": -0.1},
        {"statuses": [404]},
        {"latency_ms": -1},
        {"bogus": 1},
        {"fail_next": [200]},
        {"paths": "/archive"},
        {"paths": [""]},
    ):
        with pytest.raises((ValueError, TypeError)):
            faults.configure(bad)


def test_faults_limited_to_paths_leave_every_other_request_alone() -> None:
    faults = Faults()
    faults.configure({"error_rate": 1.0, "statuses": [500], "paths": ["/contacts/7/archive"]})
    assert faults.decide("POST", "/au1/v1/contacts/7/archive").status == 500
    assert faults.decide("POST", "/au1/v1/contacts/17/archive").is_fault is False
    assert faults.decide("GET", "/au1/v1/contacts").is_fault is False
