from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.integration.intake_worker.resources import create_worker_stack


@pytest.fixture
def silent_api_url() -> Iterator[str]:
    """An address that takes a connection and never answers: a request that gets as far as
    sending has passed every check before it."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


@pytest.fixture
def stack_env(aws) -> dict[str, str]:
    """The environment of a worker stack's tools (the dead-letter queue named too), in moto."""
    stack = create_worker_stack()
    return {**os.environ, **stack.env(DEAD_LETTER_QUEUE_URL=stack.dead_letter_queue_url)}
