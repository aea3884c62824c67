"""Authentication, shards, User-Agent and Content-Type, the way Cliniko treats them."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.fixtures.emulator import USER_AGENT


def test_key_authenticates_on_its_own_shard_only(cliniko) -> None:
    cliniko.control.add_key("MS0xotherkey-uk2")
    headers = {"User-Agent": USER_AGENT}
    ok = httpx.get(
        f"{cliniko.base_url('uk2')}/contacts", auth=("MS0xotherkey-uk2", ""), headers=headers
    )
    assert ok.status_code == 200
    wrong = httpx.get(
        f"{cliniko.base_url('au1')}/contacts", auth=("MS0xotherkey-uk2", ""), headers=headers
    )
    assert wrong.status_code == 401
    assert wrong.text == "HTTP Basic: Access denied.\n"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")


def test_key_without_suffix_is_au1_and_suffix_may_be_left_out(cliniko) -> None:
    assert cliniko.control.add_key("MS0xnosuffix") == "au1"
    headers = {"User-Agent": USER_AGENT}
    assert (
        httpx.get(
            f"{cliniko.base_url('au1')}/contacts", auth=("MS0xnosuffix", ""), headers=headers
        ).status_code
        == 200
    )
    assert (
        httpx.get(
            f"{cliniko.base_url('au2')}/contacts", auth=("MS0xnosuffix", ""), headers=headers
        ).status_code
        == 401
    )
    # Cliniko accepts the key with or without its shard suffix as the user name.
    bare = cliniko.api_key.rsplit("-", 1)[0]
    assert (
        httpx.get(
            f"{cliniko.base_url('au1')}/contacts", auth=(bare, ""), headers=headers
        ).status_code
        == 200
    )


def test_docs_test_vector_authenticates(cliniko) -> None:
    cliniko.control.add_key("MxJrZXkiOiI1Njd1amJmZTQ1NyJ9-au2")
    response = httpx.get(
        f"{cliniko.base_url('au2')}/contacts",
        headers={
            "Authorization": "Basic TXhKclpYa2lPaUkxTmpkMWFtSm1aVFExTnlKOS1hdTI6",
            "User-Agent": USER_AGENT,
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"unknown-au1:").decode(),
        "Basic !!!notbase64",
        "Bearer abc",
    ],
)
def test_bad_credentials_get_401(cliniko, authorization: str | None) -> None:
    cliniko.allow_invalid_requests()  # no Authorization breaks the spec's security on purpose
    headers = {"User-Agent": USER_AGENT}
    if authorization:
        headers["Authorization"] = authorization
    response = httpx.get(f"{cliniko.base_url()}/contacts", headers=headers)
    assert response.status_code == 401


def test_unregistered_keys_are_refused_by_the_inspection_api(cliniko) -> None:
    for bad in ("key-AU1", "key-toolong12", "", "with space"):
        with pytest.raises(RuntimeError, match="400"):
            cliniko.control.add_key(bad)


@pytest.mark.parametrize(
    "user_agent",
    [None, "", "python-httpx/0.28.1", "Acme Intake", "Acme (not-an-email)", "(it@acme.example)"],
)
def test_user_agent_without_name_and_email_is_refused(cliniko, user_agent: str | None) -> None:
    headers = {} if user_agent is None else {"User-Agent": user_agent}
    with httpx.Client(auth=(cliniko.api_key, "")) as client:
        if user_agent is None:
            client.headers.pop("User-Agent")
        response = client.get(f"{cliniko.base_url()}/contacts", headers=headers)
    assert response.status_code == 403
    assert response.text == "Requires a user agent"


@pytest.mark.parametrize("user_agent", ["Acme Clinic Intake (it@acme.example)", "x (a@b.co)"])
def test_user_agent_with_name_and_email_is_accepted(cliniko, user_agent: str) -> None:
    response = httpx.get(
        f"{cliniko.base_url()}/contacts",
        auth=(cliniko.api_key, ""),
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200


def test_body_without_json_content_type_is_ignored(http: httpx.Client, cliniko) -> None:
    cliniko.allow_invalid_requests()  # the spec only takes application/json bodies
    body = b'{"first_name": "John"}'
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"Content-Type": content_type} if content_type else {}
        response = http.post("/contacts", content=body, headers=headers)
        assert response.status_code == 422
        assert response.json() == {
            "message": "Validation Failed",
            "errors": {"first_name": "can’t be blank"},
        }
    created = http.post("/contacts", json={"first_name": "John"}).json()
    update = http.patch(
        f"/contacts/{created['id']}",
        content=b'{"first_name": "Jane"}',
        headers={"Content-Type": "text/plain"},
    )
    assert update.status_code == 200 and update.json()["first_name"] == "John"


def test_json_with_charset_is_json(http: httpx.Client) -> None:
    response = http.post(
        "/contacts",
        content='{"first_name": "Zoë"}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201 and response.json()["first_name"] == "Zoë"


def test_malformed_json_and_non_object_bodies_get_400(http: httpx.Client, cliniko) -> None:
    cliniko.allow_invalid_requests()
    for body in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        response = http.post(
            "/contacts", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, body
        assert "message" in response.json()


def test_unknown_routes_and_methods(http: httpx.Client, cliniko) -> None:
    cliniko.allow_invalid_requests()
    assert http.get("/patients").status_code == 404
    assert http.get("/contacts/not-a-number").status_code == 404
    response = http.delete("/contacts")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    assert http.get("/contacts/1/archive").status_code == 405


def test_read_only_key_gets_403_on_writes(cliniko) -> None:
    cliniko.control.add_key("MS0xreader-au1", read_only=True)
    (contact_id,) = cliniko.control.seed(1, seed=1)
    with httpx.Client(
        base_url=cliniko.base_url(),
        auth=("MS0xreader-au1", ""),
        headers={"User-Agent": USER_AGENT},
    ) as reader:
        assert reader.get("/contacts").status_code == 200
        assert reader.get(f"/contacts/{contact_id}").status_code == 200
        assert reader.post("/contacts", json={"first_name": "A"}).status_code == 403
        assert reader.patch(f"/contacts/{contact_id}", json={"notes": ""}).status_code == 403
        assert reader.post(f"/contacts/{contact_id}/archive").status_code == 403
        assert reader.delete(f"/contacts/{contact_id}").status_code == 403
    assert cliniko.control.contacts()[0]["archived_at"] is None


def test_keys_of_one_user_share_the_rate_limit(cliniko) -> None:
    cliniko.control.add_key("MS0xfirst-au1", user="practitioner-1")
    cliniko.control.add_key("MS0xsecond-au1", user="practitioner-1")
    cliniko.control.set_rate_limit(per_minute=4)
    statuses = []
    for key in ["MS0xfirst-au1", "MS0xsecond-au1"] * 3:
        response = httpx.get(
            f"{cliniko.base_url()}/contacts", auth=(key, ""), headers={"User-Agent": USER_AGENT}
        )
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]
    # The fixture's own key belongs to another user and still has its whole budget.
    response = httpx.get(
        f"{cliniko.base_url()}/contacts",
        auth=(cliniko.api_key, ""),
        headers={"User-Agent": USER_AGENT},
    )
    assert response.status_code == 200
