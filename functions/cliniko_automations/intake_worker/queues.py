"""The submission queue's SQS adapter for the worker: retry backoff and dead-lettering.

- Dead letters: SQS's redrive moves a message there after five failed receives. Permanent
  failures (Cliniko's 422, a malformed message) are sent there directly, with the reason as
  message attributes, and deleted from the main queue: retrying them would only fail again.
- Backoff: a failed message's visibility timeout is raised to an exponential delay based
  on its receive count, so Cliniko gets room instead of five retries in a row.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Mapping
from typing import Any

from cliniko_automations.common.aws import queue_url_for

MAX_VISIBILITY_SECONDS = 43_200  # SQS's ceiling for a visibility timeout


def string_attributes(values: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    return {
        key: {"DataType": "String", "StringValue": value}
        for key, value in values.items()
        if value  # SQS rejects empty string attributes
    }


class SqsQueues:
    """Main-queue backoff and dead-lettering, from the queue ARN an SQS event carries."""

    def __init__(self, client: Any, *, dead_letter_queue_url: str | None = None) -> None:
        self._client = client
        self._dlq_url = dead_letter_queue_url

    @staticmethod
    def queue_url(queue_arn: str) -> str:
        return queue_url_for(queue_arn)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one adapter per container, few queues
    def dead_letter_url(self, queue_arn: str) -> str:
        """DEAD_LETTER_QUEUE_URL when configured, else the main queue's redrive target (read
        with GetQueueAttributes, which Lambda's SQS event source permissions include)."""
        if self._dlq_url:
            return self._dlq_url
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.queue_url(queue_arn), AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        policy = attributes.get("RedrivePolicy")
        if not policy:
            raise RuntimeError("the submission queue has no redrive policy (dead-letter queue)")
        return self.queue_url(json.loads(policy)["deadLetterTargetArn"])

    def back_off(
        self,
        queue_arn: str,
        receipt_handle: str,
        receive_count: int,
        base: int,
        cap: int,
        at_least: float = 0.0,
    ) -> int:
        """Hide the message for base * 2^(receives-1) seconds (full jitter above half), and
        for at least `at_least` seconds (a rate limit's reset: sooner is refused again)."""
        delay = min(cap, base * 2 ** max(0, receive_count - 1), MAX_VISIBILITY_SECONDS)
        delay = int(delay / 2 + random.uniform(0, delay / 2))  # noqa: S311
        delay = min(max(delay, math.ceil(at_least)), MAX_VISIBILITY_SECONDS)
        self._client.change_message_visibility(
            QueueUrl=self.queue_url(queue_arn),
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=delay,
        )
        return delay

    def dead_letter(self, queue_arn: str, body: str, attributes: Mapping[str, str | None]) -> str:
        """Send a message body to the dead-letter queue with its reason; returns its new id."""
        answer = self._client.send_message(
            QueueUrl=self.dead_letter_url(queue_arn),
            MessageBody=body,
            MessageAttributes=string_attributes(attributes),
        )
        message_id: str = answer["MessageId"]
        return message_id
