"""Create, read, update and archive contacts over real HTTP, as Cliniko does them."""

from __future__ import annotations

import re

import httpx


def create(http: httpx.Client, **fields) -> dict:
    response = http.post("/contacts", json={"first_name": "John", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_cliniko_shape_with_location(http: httpx.Client, cliniko) -> None:
    response = http.post(
        "/contacts", json={"first_name": "John", "last_name": "Snow", "country_code": "AU"}
    )
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body["id"], str) and re.fullmatch(r"\d{19}", body["id"])
    assert response.headers["Location"] == f"{cliniko.base_url()}/contacts/{body['id']}"
    assert body["links"]["self"] == response.headers["Location"]
    assert body["country"] == "Australia"
    assert body["type_code"] == 0 and body["type"] == "Standard"
    assert body["email"] == "" and body["notes"] == "" and body["phone_numbers"] == []
    assert body["doctor_type"] is None and body["archived_at"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert body["created_at"] == body["updated_at"]


def test_get_one_and_unknown_id(http: httpx.Client) -> None:
    contact = create(http, email="a@example.com")
    assert http.get(f"/contacts/{contact['id']}").json() == contact
    missing = http.get("/contacts/1234567890123456789")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Not found"}


def test_ids_increase_and_are_unique(http: httpx.Client) -> None:
    ids = [int(create(http)["id"]) for _ in range(5)]
    assert ids == sorted(set(ids))


def test_update_changes_only_given_fields_and_replaces_phones(http: httpx.Client) -> None:
    contact = create(
        http,
        last_name="Snow",
        phone_numbers=[
            {"number": "0400 000 000", "phone_type": "Mobile"},
            {"number": "02 9999 9999", "phone_type": "Work"},
        ],
    )
    for method in ("PUT", "PATCH"):
        response = http.request(
            method,
            f"/contacts/{contact['id']}",
            json={
                "last_name": method,
                "phone_numbers": [{"number": "+61 3 1234", "phone_type": "Fax"}],
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["first_name"] == "John" and body["last_name"] == method
        assert body["phone_numbers"] == [
            {"number": "+61 3 1234", "phone_type": "Fax", "normalized_number": "+6131234"}
        ]


def test_delete_and_archive_archive(http: httpx.Client, cliniko) -> None:
    first, second = create(http), create(http)
    assert http.delete(f"/contacts/{first['id']}").status_code == 204
    response = http.post(f"/contacts/{second['id']}/archive")
    assert response.status_code == 204 and response.content == b""
    for contact in (first, second):
        stored = http.get(f"/contacts/{contact['id']}").json()
        assert stored["archived_at"] is not None
        assert stored["first_name"] == "John"  # archived, not deleted
    assert http.get("/contacts").json()["total_entries"] == 0
    assert len(cliniko.control.contacts(include_archived=True)) == 2


def test_concurrent_writes_from_many_connections(cliniko) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> list[str]:
        with httpx.Client(
            base_url=cliniko.base_url(),
            auth=(cliniko.api_key, ""),
            headers={"User-Agent": cliniko.user_agent},
        ) as client:
            made = []
            for i in range(10):
                response = client.post("/contacts", json={"first_name": f"t{n}-{i}"})
                assert response.status_code == 201
                made.append(response.json()["id"])
                assert client.patch(f"/contacts/{made[-1]}", json={"notes": "x"}).status_code == 200
            return made

    cliniko.control.set_rate_limit(per_minute=0)
    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = [i for batch in pool.map(work, range(6)) for i in batch]
    assert len(set(ids)) == 60
    stored = cliniko.control.contacts()
    assert len(stored) == 60 and all(c["notes"] == "x" for c in stored)
    assert cliniko.control.counters()["by_method_status"] == {"POST 201": 60, "PATCH 200": 60}
