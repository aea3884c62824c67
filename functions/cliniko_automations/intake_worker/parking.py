"""The parked queue's SQS adapter (`PARKED_QUEUE_URL`): the worker's `Parking` port.

Parked are the submissions a person must look at (several contacts match, or only an
archived one: the decision is find_or_create's). The intake API parks too, on its own: a
submission past its source's hourly ceiling (intake_api/queue.py). The body is the queued
submission (its id and source: the values stay in the submission store), so once the
duplicates are sorted out it can be sent back to the main queue as is; the attributes say why
(a reason code and candidate contact ids, no personal data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cliniko_automations.intake.submission import QueuedSubmission, Submission
from cliniko_automations.intake_worker.queues import string_attributes


class SqsParking:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def park(self, submission: Submission, reason: str, candidate_ids: Sequence[str]) -> None:
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=QueuedSubmission.of(submission).to_json(),
            MessageAttributes=string_attributes(
                {
                    "reason": reason,
                    "submission_id": submission.submission_id,
                    "source": submission.source,
                    # Contact ids are Cliniko's record numbers, not personal data; capped so
                    # the attribute stays small.
                    "candidate_contact_ids": ",".join(list(candidate_ids)[:20]),
                }
            ),
        )
