"""Shard parsing, the auth header, the User-Agent rule and the base URL: pure rules."""

from __future__ import annotations

import ssl

import pytest
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.cliniko.config import (
    basic_auth_header,
    check_user_agent,
    resolve_base_url,
    shard_for_key,
)
from cliniko_automations.cliniko.errors import ConfigurationError

DOCS_KEY = "MxJrZXkiOiI1Njd1amJmZTQ1NyJ9-au2"
UA = "Acme Clinic Intake (it@acme.example)"


def test_docs_test_vector_for_the_auth_header() -> None:
    assert basic_auth_header(DOCS_KEY) == "Basic TXhKclpYa2lPaUkxTmpkMWFtSm1aVFExTnlKOS1hdTI6"


@pytest.mark.parametrize(
    ("key", "shard"),
    [
        (DOCS_KEY, "au2"),
        ("MS0xabc-au1", "au1"),
        ("MS0xabc-uk2", "uk2"),
        ("MS0xabc-ca1", "ca1"),
        ("MS0xabc-eu1", "eu1"),
        ("MS0xabc-us1", "us1"),  # a shard not in the known list is still a shard
        ("MS0xabc-au12", "au12"),
        ("a-b-c-uk1", "uk1"),  # the suffix after the LAST dash
        ("MxJrZXkiOiI1Njd1amJmZTQ1NyJ9", "au1"),  # no suffix: au1
    ],
)
def test_shard_comes_from_the_suffix(key: str, shard: str) -> None:
    assert shard_for_key(key) == shard


@pytest.mark.parametrize(
    "key",
    [
        "MS0xabc-AU2",  # upper case
        "MS0xabc-au",  # no digits
        "MS0xabc-au123",  # three digits
        "MS0xabc-a1",
        "MS0xabc-",  # empty suffix
        "MS0xabc-au2 ",  # trailing space
        "MS0xabc-au2\n",  # a newline from a pasted secret
        "MS0xabc-au١",  # a non-ASCII digit
        "MS0xabc-auX",
        "",
    ],
)
def test_malformed_suffix_is_a_configuration_error_not_au1(key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        shard_for_key(key)
    assert key.strip() == "" or key.strip() not in str(caught.value)


def test_errors_never_quote_the_key() -> None:
    key = "MS0xsecretsecretsecret-notashard"
    with pytest.raises(ConfigurationError) as caught:
        ClinikoClient(key, UA)
    assert "secret" not in str(caught.value)
    assert "notashard" not in str(caught.value)


def test_a_key_far_longer_than_clinikos_is_refused_without_quoting_it() -> None:
    ClinikoClient("MS0x" + "k" * 492 + "-au1", UA)  # 500 characters: taken
    with pytest.raises(ConfigurationError) as caught:
        ClinikoClient("MS0x" + "k" * 60_000 + "-au1", UA)
    assert "60008 characters long" in str(caught.value)
    assert "kkkk" not in str(caught.value)


def test_key_must_be_a_non_empty_string() -> None:
    with pytest.raises(ConfigurationError):
        ClinikoClient(None, UA)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "user_agent",
    [
        UA,
        "Acme (it@acme.example)",
        "Acme Clinic Intake v2 (it+cliniko@acme.example)",
        "A (a@b.co)",
    ],
)
def test_user_agent_accepted(user_agent: str) -> None:
    assert check_user_agent(user_agent) == user_agent


@pytest.mark.parametrize(
    "user_agent",
    [
        "Acme Clinic Intake",  # no email
        "Acme Clinic Intake it@acme.example",  # no parentheses
        "(it@acme.example)",  # no name
        " (it@acme.example)",
        "Acme (not-an-email)",
        "Acme (it@acme)",
        "Acme (it@acme.example) ",
        "Acme(it@acme.example)",
        "Acme (it@acme.example)\r\nX-Evil: 1",
        "Clínica (it@acme.example)",  # a header value must be ASCII
        "",
        None,
    ],
)
def test_user_agent_refused(user_agent: object) -> None:
    with pytest.raises(ConfigurationError):
        check_user_agent(user_agent)


def test_client_refuses_a_bad_user_agent() -> None:
    with pytest.raises(ConfigurationError):
        ClinikoClient(DOCS_KEY, "python-httpx/0.28")


def test_default_base_url_uses_the_shard() -> None:
    assert resolve_base_url("au2") == "https://api.au2.cliniko.com/v1"
    assert ClinikoClient(DOCS_KEY, UA).base_url == "https://api.au2.cliniko.com/v1"


def test_base_url_override_with_and_without_shard() -> None:
    assert resolve_base_url("uk1", "http://127.0.0.1:8080/{shard}/v1/") == (
        "http://127.0.0.1:8080/uk1/v1"
    )
    assert resolve_base_url("uk1", "http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"


@pytest.mark.parametrize(
    "base_url",
    [
        "",
        "ftp://x/{shard}",
        "127.0.0.1:8080",
        "http://x/{region}/v1",
        "http://u:p@x/v1",
        "http://x/v1?a=1",
    ],
)
def test_bad_base_url_refused(base_url: str) -> None:
    with pytest.raises(ConfigurationError):
        resolve_base_url("au1", base_url)


def test_client_checks_its_numbers() -> None:
    with pytest.raises(ConfigurationError):
        ClinikoClient(DOCS_KEY, UA, requests_per_minute=0)
    with pytest.raises(ConfigurationError):
        ClinikoClient(DOCS_KEY, UA, timeout=0)


def test_client_sends_json_auth_and_user_agent_headers() -> None:
    client = ClinikoClient(DOCS_KEY, UA)
    # The headers the generated client will send on every request.
    headers = client._api.get_httpx_client().headers
    assert headers["authorization"] == "Basic TXhKclpYa2lPaUkxTmpkMWFtSm1aVFExTnlKOS1hdTI6"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == UA
    timeout = client._api.get_httpx_client().timeout
    assert timeout.connect == 3.0
    assert timeout.read == 10.0
    assert DOCS_KEY not in repr(client)
    assert "TXhK" not in repr(client)


def test_clients_share_one_tls_context_that_verifies_certificates() -> None:
    # Loading the CA bundle costs 30-60 ms: a second client (a second account) reuses it.
    first = ClinikoClient(DOCS_KEY, UA)._transport._inner.ssl_context  # type: ignore[attr-defined]
    second = ClinikoClient("MS0xotherkey-uk1", UA)._transport._inner.ssl_context  # type: ignore[attr-defined]
    assert first is second
    assert first.verify_mode is ssl.CERT_REQUIRED and first.check_hostname
