"""The submission queue (SQS): the only place the API side touches it.

A submission is accepted once SendMessage returns; if SQS cannot take it, the caller answers
503 so the provider delivers again (nothing is half-accepted).
"""

from __future__ import annotations

from functools import cache

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.intake.errors import ServiceUnavailable
from cliniko_automations.intake.submission import Submission

# Fail fast: a provider is waiting (Tally gives 10 s), the function's timeout is 10 s, and a
# Lambda timeout would reach the sender as API Gateway's 500. A 503 makes the provider retry.
_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "max_attempts": 2})


@cache
def _sqs() -> BaseClient:
    return boto3.client("sqs", config=_CONFIG)


class SubmissionQueue:
    def __init__(self, queue_url: str, client: BaseClient | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, submission: Submission) -> str:
        """Queue the submission; returns SQS's message id."""
        client = self._client or _sqs()
        try:
            answer = client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=submission.model_dump_json(),
                # Ids only, so dead letters can be listed without opening their bodies.
                MessageAttributes={
                    "submission_id": {
                        "DataType": "String",
                        "StringValue": submission.submission_id,
                    },
                    "source": {"DataType": "String", "StringValue": submission.source},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("queue", type(exc).__name__) from None
        return answer["MessageId"]
