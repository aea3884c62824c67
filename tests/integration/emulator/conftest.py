"""Helpers for the emulator's own HTTP tests: a raw httpx client with Cliniko's headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cliniko_emulator.control import plain_http_tls_context

from tests.fixtures.emulator import USER_AGENT


@pytest.fixture
def http(cliniko) -> Iterator[httpx.Client]:
    """httpx on the au1 base URL, authenticated with the test key, as Cliniko expects."""
    with httpx.Client(
        base_url=cliniko.base_url("au1"),
        auth=(cliniko.api_key, ""),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        timeout=10,
        verify=plain_http_tls_context(),
    ) as client:
        yield client
