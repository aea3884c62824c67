"""Listing a dead-letter queue (common/dead_letter_tool.DeadLetterQueue) against moto, when the
queue is too big to list within the time a listing hides what it received (HIDE_SECONDS).

Here the seconds are compressed (HIDE_SECONDS of 3) and each receive takes 0.5 s: 80 letters
take 4 s to receive, 10 at a time, as tens of thousands take minutes."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from cliniko_automations.common import dead_letter_tool
from cliniko_automations.common.dead_letter_tool import DeadLetterQueue

LETTERS = 80
# Far more receives than a listing of LETTERS letters needs (8, and 3 empty reads).
MOST_RECEIVES = 30


class SlowSqs:
    """SQS (moto) with a receive that takes `seconds`; stops a listing that never ends."""

    def __init__(self, sqs: Any, seconds: float) -> None:
        self._sqs = sqs
        self._seconds = seconds
        self.receives = 0

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives += 1
        if self.receives > MOST_RECEIVES:
            raise AssertionError(f"still listing after {MOST_RECEIVES} receives")
        time.sleep(self._seconds)
        answer: dict[str, Any] = self._sqs.receive_message(**kwargs)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


def test_a_queue_too_big_to_list_within_its_hide_is_listed_once_and_said_to_be_cut(
    aws, monkeypatch: pytest.MonkeyPatch
):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="letters")["QueueUrl"]
    for n in range(LETTERS):
        sqs.send_message(QueueUrl=url, MessageBody=f"letter {n}")
    monkeypatch.setattr(dead_letter_tool, "HIDE_SECONDS", 3)
    monkeypatch.setattr(dead_letter_tool, "LISTING_SECONDS", 1.5)
    queue = DeadLetterQueue(SlowSqs(sqs, 0.5), url)

    listed = queue.receive_all()

    ids = [message["MessageId"] for message in listed]
    assert len(ids) == len(set(ids))  # each letter once
    assert 0 < len(ids) < LETTERS
    assert not queue.complete
    # What was listed is still hidden (its receipt handles the newest), the rest in view.
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
    assert not {m["MessageId"] for m in left.get("Messages", [])} & set(ids)
    queue.release()


def test_a_queue_listed_within_its_hide_is_complete(aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="letters")["QueueUrl"]
    sent = {
        sqs.send_message(QueueUrl=url, MessageBody=f"letter {n}")["MessageId"] for n in range(25)
    }
    queue = DeadLetterQueue(sqs, url)

    listed = queue.receive_all()

    assert sorted(m["MessageId"] for m in listed) == sorted(sent)
    assert queue.complete
    queue.release()
