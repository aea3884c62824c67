"""SQS event sources: poll a queue and invoke its function with genuine SQS events.

As Lambda's event source mapping does: up to BatchSize messages per invocation; on success
the batch is deleted; with ReportBatchItemFailures only the reported messages stay (they come
back when their visibility ends: the worker's backoff where it set one, else the queue's
visibility timeout; after maxReceiveCount the queue's redrive policy moves them to the
dead-letter queue); a function error, or a malformed failure report, leaves the whole batch for
redelivery.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from .functions import FunctionRuntime
from .template import SqsSource

logger = logging.getLogger("local_run.consumers")


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {
            "dataType": value["DataType"],
            "stringListValues": [],
            "binaryListValues": [],
        }
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            import base64

            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = item
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message.get("MD5OfBody")
                or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class QueueConsumer:
    def __init__(
        self,
        source: SqsSource,
        function: FunctionRuntime,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        region: str,
        *,
        wait_seconds: int = 1,
    ) -> None:
        self.source = source
        self.function = function
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self.wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.failed_items = 0

    def start(self) -> QueueConsumer:
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-{self.source.function}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.wait_seconds + 10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("polling %s failed", self.source.queue)
                self._stop.wait(1)

    def poll_once(self) -> int:
        """Receive one batch and hand it to the function; returns how many were received."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        self.batches += 1
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            result = self.function.invoke(event)
        except Exception:
            logger.exception("%s failed a batch of %d", self.source.function, len(messages))
            return len(messages)
        failed = self._failed_ids(result, messages)
        self.failed_items += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )
        logger.info("%s: batch of %d, %d failed", self.source.function, len(messages), len(failed))
        return len(messages)

    def _failed_ids(self, result: Any, messages: list[dict[str, Any]]) -> set[str]:
        if not self.source.report_batch_item_failures:
            return set()
        if not isinstance(result, dict) or not result.get("batchItemFailures"):
            return set()
        ids = {m["MessageId"] for m in messages}
        failed = set()
        for item in result["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in ids:
                # Lambda treats a report it cannot read as a failure of the whole batch.
                return ids
            failed.add(identifier)
        return failed
