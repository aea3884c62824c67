"""The worker with its AWS services stalled (they take the connection and never answer: an
outage, a NAT that forgot the function's connections): each record handed back as its own
failure within its share of the function's timeout as template.yaml sets it, so that a full
batch is answered. On botocore's defaults (60 s for an answer, DynamoDB's 4 attempts) one call
waited 240 s: the invocation was killed, every message of the batch (those done too) came back
only after the queue's 12-minute visibility timeout, a receive of each spent."""

from __future__ import annotations

from typing import Any

from cliniko_automations.intake.submission import ContactDraft
from cliniko_automations.intake_worker import handler as worker_handler
from cliniko_automations.intake_worker import runtime as worker_runtime
from local_run.template import SamApp

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.aws import finished_within, stalled_services
from tests.integration.intake_worker.resources import (
    json_submission,
    one_clinic_stack,
    sqs_event,
)

APP = SamApp.load()
WORKER_TIMEOUT_SECONDS = APP.resources["IntakeWorkerFunction"]["Properties"]["Timeout"]
(BATCH_SIZE,) = [s.batch_size for s in APP.sqs_sources() if s.function == "IntakeWorkerFunction"]
# Records of the batch sent (a full batch stalled took 80 s of the 120: 8 s a record, its read
# of the store and its failure's booking, two attempts of 2 s each).
RECORDS = 2


def test_records_against_stalled_aws_are_handed_back_within_their_share_of_the_timeout(
    aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    # DynamoDB and SQS both stalled, as when a NAT forgets every connection of the function.
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    for n in range(RECORDS):
        draft = ContactDraft(first_name="Ana", last_name=f"Lima{n}", email=f"ana{n}@example.com")
        stack.enqueue(json_submission(draft))
    messages: list[dict[str, Any]] = []
    while len(messages) < RECORDS:  # moto may answer a receive with fewer
        messages += stack.receive(max_messages=RECORDS - len(messages), visibility=600)
    context = LambdaContext(
        function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_SECONDS * 1000
    )
    share = WORKER_TIMEOUT_SECONDS * RECORDS / BATCH_SIZE

    with stalled_services(
        monkeypatch, "DYNAMODB", "SQS", forget=worker_runtime._runtime.cache_clear
    ):
        ended = finished_within(
            share,
            lambda: worker_handler.lambda_handler(sqs_event(messages, stack.queue_arn), context),
        )

    assert ended is not None, f"{RECORDS} records not answered within {share:.0f} s"
    assert ended.error is None
    failed = {item["itemIdentifier"] for item in ended.value["batchItemFailures"]}
    assert failed == {message["MessageId"] for message in messages}
    assert cliniko.control.contacts() == []
