"""`aws.FAIL_FAST` against a service that takes the connection and never answers: two
attempts of 2 s each, then the caller's own error, within the intake API's 10 s timeout
(botocore's `max_attempts` 2 had made three)."""

from __future__ import annotations

import socket
import time

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from cliniko_automations.common import aws

from tests.fixtures.aws import stalled_endpoint


def test_a_stalled_service_gets_two_attempts(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    taken: list[socket.socket] = []
    with stalled_endpoint(taken) as url:
        sqs = boto3.session.Session(region_name="eu-west-1").client(
            "sqs", endpoint_url=url, config=aws.FAIL_FAST
        )
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            sqs.list_queues()
        elapsed = time.monotonic() - started
    assert len(taken) == 2
    assert elapsed < 2 * (1 + 2) + 1  # two attempts' waits and standard mode's first backoff
