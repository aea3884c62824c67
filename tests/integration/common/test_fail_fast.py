"""`aws.FAIL_FAST` against a service that takes the connection and never answers: two
attempts of 2 s each, then the caller's own error, within the intake API's 10 s timeout
(botocore's `max_attempts` 2 had made three)."""

from __future__ import annotations

import socket
import threading
import time

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from cliniko_automations.common import aws


def test_a_stalled_service_gets_two_attempts(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    taken: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listening:

        def take_and_never_answer() -> None:
            while True:
                try:
                    taken.append(listening.accept()[0])
                except OSError:  # closed: the test is over
                    return

        threading.Thread(target=take_and_never_answer, daemon=True).start()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        sqs = boto3.session.Session(region_name="eu-west-1").client(
            "sqs", endpoint_url=url, config=aws.FAIL_FAST
        )
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            sqs.list_queues()
        elapsed = time.monotonic() - started
    for connection in taken:
        connection.close()
    assert len(taken) == 2
    assert elapsed < 2 * (1 + 2) + 1  # two attempts' waits and standard mode's first backoff
