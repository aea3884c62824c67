"""Lists over HTTP: pagination, links, order, sort and every q[] operator."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest


def seed(cliniko, *contacts: dict) -> list[str]:
    return cliniko.control.seed(contacts=contacts)


def listed(http: httpx.Client, *filters: str, **params) -> list[str]:
    query = [("q[]", f) for f in filters] + [(k, str(v)) for k, v in params.items()]
    response = http.get("/contacts", params=query)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["contacts"]]


def test_pages_links_and_total(http: httpx.Client, cliniko) -> None:
    ids = cliniko.control.seed(120, seed=1)
    first = http.get("/contacts").json()
    assert first["total_entries"] == 120 and len(first["contacts"]) == 50
    assert [c["id"] for c in first["contacts"]] == ids[:50]
    assert set(first["links"]) == {"self", "next"}  # no "previous" on page 1, not even null
    seen: list[str] = []
    url: str | None = f"{cliniko.base_url()}/contacts?per_page=100"
    pages = 0
    while url:
        assert url.startswith("http://127.0.0.1:")  # absolute links
        body = http.get(url).json()
        seen += [c["id"] for c in body["contacts"]]
        url = body["links"].get("next")
        pages += 1
    assert seen == ids and pages == 2
    last = http.get("/contacts", params={"page": 3, "per_page": 50}).json()
    assert set(last["links"]) == {"self", "previous"} and len(last["contacts"]) == 20
    beyond = http.get("/contacts", params={"page": 9}).json()
    assert beyond["contacts"] == [] and beyond["total_entries"] == 120


def test_links_keep_filters_and_encoding(http: httpx.Client, cliniko) -> None:
    seed(cliniko, *({"first_name": "A", "email": f"a+{i}@example.com"} for i in range(3)))
    body = http.get(
        "/contacts", params=[("q[]", "email:~a+"), ("per_page", "1"), ("sort", "id:desc")]
    ).json()
    assert body["total_entries"] == 3
    query = parse_qsl(urlsplit(body["links"]["next"]).query)
    assert ("q[]", "email:~a+") in query and ("page", "2") in query and ("sort", "id:desc") in query
    assert "%2B" in body["links"]["next"]  # `+` stays a plus, never a space


@pytest.mark.parametrize(
    "params", [{"per_page": 0}, {"per_page": 101}, {"per_page": "x"}, {"page": 0}, {"page": -1}]
)
def test_out_of_range_paging_gets_400(http: httpx.Client, cliniko, params: dict) -> None:
    cliniko.allow_invalid_requests()
    response = http.get("/contacts", params=params)
    assert response.status_code == 400
    assert "must be" in response.json()["message"]


def test_per_page_100_is_allowed(http: httpx.Client, cliniko) -> None:
    cliniko.control.seed(101, seed=2)
    assert len(listed(http, per_page=100)) == 100


def test_default_order_is_created_at_then_id(http: httpx.Client, cliniko) -> None:
    ids = seed(
        cliniko,
        {"first_name": "late", "created_at": "2024-03-01T00:00:00Z"},
        {"first_name": "early", "created_at": "2024-01-01T00:00:00Z"},
        {"first_name": "same", "created_at": "2024-01-01T00:00:00Z"},
    )
    assert listed(http) == [ids[1], ids[2], ids[0]]
    assert listed(http, sort="created_at:desc") == [ids[0], ids[1], ids[2]]
    assert listed(http, order="desc") == [ids[0], ids[1], ids[2]]
    assert listed(http, sort="first_name") == [ids[1], ids[0], ids[2]]
    assert listed(http, sort="created_at,first_name:desc") == [ids[2], ids[1], ids[0]]


def test_bad_sort_gets_400(http: httpx.Client) -> None:
    for sort in ("shoe_size", "id:sideways"):
        response = http.get("/contacts", params={"sort": sort})
        assert response.status_code == 400 and response.json()["message"]


@pytest.fixture
def people(cliniko) -> dict[str, str]:
    names = ["ann", "bob", "cat", "dan"]
    ids = seed(
        cliniko,
        {"first_name": "Ann", "last_name": "Lee", "email": "Ann.Lee+x@Example.com",
         "company_name": "Acme", "occupation": "GP", "type_code": 1,
         "created_at": "2024-01-01T00:00:00Z"},
        {"first_name": "Bob", "last_name": "O'Neil", "email": "bob@example.org", "type_code": 2,
         "created_at": "2024-02-01T00:00:00Z", "updated_at": "2024-04-01T00:00:00Z"},
        {"first_name": "Cat", "last_name": "Lee_Smith", "email": "", "type_code": 0,
         "created_at": "2024-03-01T00:00:00Z", "archived_at": "2024-05-01T00:00:00Z"},
        {"first_name": "Dan", "last_name": "Ng", "email": "dan@example.com", "type_code": 0,
         "created_at": "2024-04-01T00:00:00Z"},
    )  # fmt: skip
    return dict(zip(names, ids, strict=True))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), ["ann", "bob", "dan"]),
        (("email:=ann.lee+x@example.com",), ["ann"]),
        (("email:=Ann.Lee+x@Example.com",), []),
        (("email:!=bob@example.org",), ["ann", "dan"]),
        (("email:~EXAMPLE.com",), ["ann", "dan"]),
        (("email:~~%@example.%",), ["ann", "bob", "dan"]),
        (("email:?", "archived_at:*"), ["ann", "bob", "dan"]),
        (("email:!?", "archived_at:*"), ["cat"]),
        (("first_name:=Ann",), ["ann"]),
        (("first_name:!=Ann",), ["bob", "dan"]),
        (("first_name:~a",), ["ann", "dan"]),
        (("last_name:~~Lee%", "archived_at:*"), ["ann", "cat"]),
        (("last_name:=O'Neil",), ["bob"]),
        (("company_name:=Acme",), ["ann"]),
        (("company_name:?",), ["ann"]),
        (("occupation:!?",), ["bob", "dan"]),
        (("occupation:~g",), ["ann"]),
        (("type_code:=0",), ["dan"]),
        (("type_code:=0", "archived_at:*"), ["cat", "dan"]),
        (("type_code:!=0",), ["ann", "bob"]),
        (("type_code:>0",), ["ann", "bob"]),
        (("type_code:>=2",), ["bob"]),
        (("type_code:<1",), ["dan"]),
        (("type_code:<=1",), ["ann", "dan"]),
        (("type_code:=1,2",), ["ann", "bob"]),
        (("type_code:?",), ["ann", "bob", "dan"]),
        (("type_code:!?",), []),
        (("created_at:>2024-02-01T00:00:00Z",), ["dan"]),
        (("created_at:>=2024-02-01T00:00:00Z",), ["bob", "dan"]),
        (("created_at:<2024-02-01T00:00:00Z",), ["ann"]),
        (("created_at:<=2024-02-01T00:00:00Z", "archived_at:*"), ["ann", "bob"]),
        (("updated_at:>=2024-04-01T00:00:00Z",), ["bob", "dan"]),
        (("created_at:*",), ["ann", "bob", "dan"]),
        (("created_at:?",), ["ann", "bob", "dan"]),
        (("created_at:!?",), []),
        (("archived_at:*",), ["ann", "bob", "cat", "dan"]),
        (("archived_at:?",), ["cat"]),
        (("archived_at:!?",), ["ann", "bob", "dan"]),
        (("archived_at:>2024-04-30T00:00:00Z",), ["cat"]),
        (("archived_at:<2024-04-30T00:00:00Z",), []),
        (("deleted_at:?", "archived_at:*"), []),
        (("deleted_at:!?",), ["ann", "bob", "dan"]),
        (("first_name:~a", "type_code:=0"), ["dan"]),  # ANDed
    ],
)
def test_filters_over_http(
    http: httpx.Client, people: dict, filters: tuple, expected: list
) -> None:
    assert listed(http, *filters) == [people[name] for name in expected]


def test_id_filters(http: httpx.Client, people: dict) -> None:
    ann, bob, dan = people["ann"], people["bob"], people["dan"]
    assert listed(http, f"id:={bob}") == [bob]
    assert listed(http, f"id:={ann},{dan}") == [ann, dan]
    assert listed(http, f"id:>{ann}") == [bob, dan]
    assert listed(http, f"id:>={bob}") == [bob, dan]
    assert listed(http, f"id:<{bob}") == [ann]
    assert listed(http, f"id:<={bob}") == [ann, bob]
    assert listed(http, f"id:!={bob}") == [ann, dan]
    assert listed(http, "id:?") == [ann, bob, dan]
    assert listed(http, "id:!?") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("notes:=x", "notes is not filterable"),
        ("phone_numbers:?", "phone_numbers is not filterable"),
        ("email", "Invalid filter"),
        ("id:=abc", "not a valid integer"),
        ("created_at:=2024-01-01T00:00:00Z", "Invalid filter"),
        ("created_at:>someday", "not a valid date-time"),
    ],
)
def test_bad_filters_get_400(http: httpx.Client, raw: str, message: str) -> None:
    response = http.get("/contacts", params={"q[]": raw})
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_shards_are_separate(http: httpx.Client, cliniko) -> None:
    cliniko.control.seed(3, shard="uk1", seed=1)
    assert http.get("/contacts").json()["total_entries"] == 0
    assert len(cliniko.control.contacts(shard="uk1")) == 3
