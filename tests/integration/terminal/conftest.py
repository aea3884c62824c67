from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def silent_api_url() -> Iterator[str]:
    """An address that takes a connection and never answers: a request that gets as far as
    sending has passed every check before it."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
