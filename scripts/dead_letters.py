#!/usr/bin/env python3
"""List, show, replay and delete the intake's dead letters (SubmissionDeadLetterQueue), or
with `--parked` its parked submissions (ParkedQueue).

    python scripts/dead_letters.py [--parked] list [--json]
    python scripts/dead_letters.py [--parked] show ID
    python scripts/dead_letters.py [--parked] replay ID | --all  # back to the submission queue
    python scripts/dead_letters.py [--parked] delete ID          # removed, not replayed

ID: the SQS message id or the submission id.

Queue URLs and the tables come from arguments or the environment:
`--dlq-url`/DEAD_LETTER_QUEUE_URL (with `--parked`: `--dlq-url`/PARKED_QUEUE_URL, the
ParkedQueueUrl output), `--queue-url`/SUBMISSION_QUEUE_URL,
`--table`/IDEMPOTENCY_TABLE, `--submission-table`/SUBMISSION_TABLE. Against a deployed
stack, take them from its outputs (or
`aws cloudformation describe-stack-resource --logical-resource-id SubmissionDeadLetterQueue`);
credentials and region as for the AWS CLI. AWS_ENDPOINT_URL points it at moto in tests.

Nothing personal is printed: a dead letter shows its ids, source, times, attempts, the
reason it failed (a code) and the NAMES of the fields it carries, never their values. A
parked submission shows the same, attempts aside, with its reason (the worker's `reason`
attribute: several_matches, archived_match, name_differs, ambiguous_recovery ...) and its
`candidates`, the ids of the Cliniko contacts it matched (record numbers, not personal data).

A dead letter carries only a submission id (the claim check): the values are in the
submission store. When that body is gone (an erasure deleted it, or it expired) the letter
says `body: gone`, and a replay of it is dropped by the worker, creating nobody. SQS
delivers a message at least once: a second copy can fail while the first holds the
submission, and land here after the first went in. Such a letter says `body: done at ...`,
and `replay` removes it rather than sending it round again.

Where the reason comes from: a permanent failure (Cliniko's 422, a malformed message) is
sent here by the worker with a `failure_reason` message attribute. A message SQS's redrive
moved here after five failed receives keeps its message id but carries nothing the worker
could add, so the worker stores the last failure reason by message id in the idempotency
table (`intake-failure#<message id>`), and this script reads it from there.

Listing receives every message (hiding it briefly, so each is seen once) and then makes them
visible again; replay sends the body to the submission queue and only then deletes the dead
letter, so a crash in between duplicates a message (which the worker's idempotency absorbs)
rather than losing one. `delete` removes a letter without replaying it (a parked submission
staff settled by hand, a letter whose body is gone); its stored body is left to expire, 16
days after it was last parked or dead-lettered.

Exit status: 0 done, 1 a letter not found or not replayed, or a mistake of the environment
(no region or credentials, a queue or table that is not there or of another kind: one line
naming it), 2 bad arguments, 130 interrupted, 141 output cut short by its reader (`| head`).
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("dead_letters.py")

import argparse
import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import boto3
from cliniko_automations.common.dead_letter_tool import (
    NO_ID,
    DeadLetterTool,
    add_commands,
    print_letter,
    print_table,
    run_command,
    string_attributes,
    whole_number,
)
from cliniko_automations.common.operator_cli import parsed_arguments, run_tool
from cliniko_automations.common.stack_resources import (
    DEAD_LETTER_QUEUE,
    IDEMPOTENCY_TABLE,
    PARKED_QUEUE,
    SUBMISSION_QUEUE,
    SUBMISSION_STORE,
    check_one_stack,
    check_queue,
    check_redrive,
    check_table,
    queue_stack,
    table_stack,
)
from cliniko_automations.common.submission_store import DoneSubmission, DynamoSubmissionStore
from cliniko_automations.intake.submission import QueuedSubmission, Submission, SubmissionInvalid
from cliniko_automations.intake_worker.find_or_create import present_fields
from cliniko_automations.intake_worker.store import DynamoFailures

NO_REASON = "unknown (no failure recorded)"


@dataclass
class DeadLetter:
    message_id: str
    submission_id: str
    source: str
    provider: str
    account: str
    received_at: str
    receive_count: int
    reason: str
    failed_at: str
    fields: list[str]
    body: str
    # What an operator must change before a replay can succeed (misconfiguration only).
    fix: str
    receipt_handle: str = field(repr=False)
    message: str = field(repr=False)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["receipt_handle"], data["message"]
        return data


@dataclass
class ParkedSubmission(DeadLetter):
    # The contacts the worker found (Cliniko's record numbers, not personal data).
    candidates: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        data = super().public()
        # A dead letter's alone: a submission is parked on its first look, and needs no fix.
        del data["receive_count"], data["failed_at"], data["fix"]
        return data


# How a letter whose submission body is no longer stored reads in `body`.
GONE = "gone"
# How a letter reads whose submission another delivery of it finished (SQS delivers at least
# once: a copy can fail while the other holds the submission, then the other goes in).
DONE = "done"
# How a letter reads whose message holds no submission id (anyone who can send to the queue;
# a whole submission from before the store): the worker dead-letters it as malformed_message.
NOT_QUEUED = "not a queued submission"


class DeadLetters(DeadLetterTool[DeadLetter]):
    # The message attribute the worker writes a letter's reason in.
    _reason_attribute = "failure_reason"

    def __init__(
        self,
        *,
        sqs: Any,
        dead_letter_queue_url: str,
        queue_url: str | None = None,
        failures: DynamoFailures | None = None,
        store: DynamoSubmissionStore | None = None,
    ) -> None:
        self._sqs = sqs
        super().__init__(sqs, dead_letter_queue_url)
        self._queue = queue_url
        self._failures = failures
        self._store = store

    def _order(self, letter: DeadLetter) -> Any:
        return (letter.received_at, letter.message_id)

    def _ids(self, letter: DeadLetter) -> tuple[str, ...]:
        return (letter.message_id, letter.submission_id)

    def replay(
        self, letters: Sequence[DeadLetter], report: Callable[[str], None] = lambda _: None
    ) -> tuple[list[str], list[str]]:
        """Send each letter back to the submission queue, then delete it: (the replayed
        message ids, a line per letter refused). A letter whose body is gone is refused and
        stays: the worker would drop its replay, and the letter is the last trace of it. One
        whose submission another delivery finished is removed, reported as such."""
        if not self._queue:
            raise SystemExit(
                "replay needs the submission queue: --queue-url or SUBMISSION_QUEUE_URL"
            )
        if self._store is None:
            # Without it no letter's body is known gone, and a letter whose body is gone would
            # be replayed, dropped by the worker, and its last trace deleted here.
            raise SystemExit(
                "replay needs the submission store: --submission-table or SUBMISSION_TABLE "
                "(the SubmissionStoreTableName output)"
            )
        replayed, refused = [], []
        for letter in letters:
            if letter.body.startswith(DONE):
                self._removed(
                    letter, report, f"removed {letter.message_id}: its submission {letter.body}"
                )
                continue
            if letter.body.startswith(GONE):
                refused.append(f"{letter.message_id}: its body is {letter.body}; kept")
                continue
            if letter.body == NOT_QUEUED:
                # Sent back, the worker would dead-letter it again as malformed_message.
                refused.append(
                    f"{letter.message_id}: {NOT_QUEUED}, which no replay mends; kept "
                    "(`delete` removes it)"
                )
                continue
            # A new message, which its queue (and the dead-letter queue, should it fail again)
            # keeps 14 days from now: its body must outlive it, as a parked one's does.
            self._store.keep(letter.submission_id)
            # Its clinic as its tenant on the fair queue, as the intake API sent it: without a
            # group, each replayed letter was a tenant of its own, and a replay of one clinic's
            # hundreds went out ahead of every other clinic's submissions.
            group = {"MessageGroupId": letter.account} if letter.account != "-" else {}
            self._sqs.send_message(
                QueueUrl=self._queue,
                MessageBody=letter.message,
                MessageAttributes={
                    "replayed_from": {"DataType": "String", "StringValue": letter.message_id}
                },
                **group,
            )
            self._replayed(letter, report)
            replayed.append(letter.message_id)
        return replayed, refused

    def _describe(self, message: Mapping[str, Any]) -> DeadLetter:
        attributes = string_attributes(message)
        reason = attributes.get(self._reason_attribute)
        receive_count = attributes.get("receive_count")
        failed_at = ""
        stored = self._failures.get(message["MessageId"]) if self._failures else None
        if stored is not None:
            reason = reason or stored.reason
            receive_count = receive_count or str(stored.receive_count)
            failed_at = stored.failed_at
        queued = _queued(message["Body"])
        submission, body = self._submission(queued)
        return self._letter(
            attributes,
            message_id=message["MessageId"],
            submission_id=queued.submission_id if queued else NO_ID,
            source=queued.source if queued else "-",
            provider=submission.provider if submission else "-",
            account=submission.account if submission else "-",
            received_at=submission.received_at.isoformat() if submission else "-",
            receive_count=whole_number(receive_count) or 0,
            reason=reason or NO_REASON,
            failed_at=failed_at,
            fields=list(present_fields(submission.draft)) if submission else [],
            body=body,
            fix=attributes.get("fix", ""),
            receipt_handle=message["ReceiptHandle"],
            message=message["Body"],
        )

    def _letter(self, attributes: Mapping[str, str], **values: Any) -> DeadLetter:
        return DeadLetter(**values)

    def _submission(self, queued: QueuedSubmission | None) -> tuple[Submission | None, str]:
        """The letter's submission from the store, and the state of its body."""
        if queued is None:
            return None, NOT_QUEUED
        if self._store is None:
            return None, "unknown (no --submission-table)"
        stored = self._store.get(queued.submission_id)
        if stored is None:
            return None, f"{GONE} (erased or expired): a replay would be dropped"
        if isinstance(stored, DoneSubmission):
            return None, f"{DONE} at {stored.done_at} by another delivery: nothing to replay"
        try:
            return Submission.from_json(stored.body), "stored"
        except SubmissionInvalid:
            return None, "malformed"


class ParkedSubmissions(DeadLetters):
    """The parked queue (ParkedQueue): submissions the worker left for a person (several
    contacts match, only an archived one ...), read and replayed as dead letters are. The
    worker sends each with a `reason` and its `candidate_contact_ids`."""

    noun = "parked submission"
    _reason_attribute = "reason"

    def _letter(self, attributes: Mapping[str, str], **values: Any) -> ParkedSubmission:
        ids = attributes.get("candidate_contact_ids", "")
        return ParkedSubmission(**values, candidates=[i for i in ids.split(",") if i])


def _queued(message_body: str) -> QueuedSubmission | None:
    try:
        return QueuedSubmission.from_json(message_body)
    except SubmissionInvalid:
        return None


def _table(letters: Sequence[DeadLetter], out: TextIO, *, parked: bool = False) -> None:
    columns = ("submission_id", "source", "received_at", "receive_count", "reason", "body")
    if parked:
        columns = ("submission_id", "source", "received_at", "reason", "candidates", "body")
    print_table(letters, columns, out)
    print(f"{len(letters)} {ParkedSubmissions.noun if parked else DeadLetters.noun}(s)", file=out)


def _show(letter: DeadLetter, out: TextIO) -> None:
    print_letter(letter, out, omitted_when_empty="fix")


def build(args: argparse.Namespace) -> DeadLetters:
    setting = "PARKED_QUEUE_URL" if args.parked else "DEAD_LETTER_QUEUE_URL"
    dlq = args.dlq_url or os.environ.get(setting)
    if not dlq:
        queue = "parked" if args.parked else "dead-letter"
        raise SystemExit(f"no {queue} queue: pass --dlq-url or set {setting}")
    # Failures are stored by the message id of a dead letter, never of a parked one.
    table = None if args.parked else args.table or os.environ.get("IDEMPOTENCY_TABLE")
    submission_table = args.submission_table or os.environ.get("SUBMISSION_TABLE")
    queue_url = args.queue_url or os.environ.get("SUBMISSION_QUEUE_URL")
    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    # Each one of the kind it is taken for, before anything is read or written: an output
    # copied for another read "0 dead letters" or "body gone", or replayed into the wrong queue.
    dlq_setting = "--dlq-url" if args.dlq_url else setting
    check_queue(sqs, dlq, PARKED_QUEUE if args.parked else DEAD_LETTER_QUEUE, dlq_setting)
    # And all of one stack: the parked queue, unlike the dead-letter queue, is tied to the
    # submission queue by no redrive, and a replay into another stack's lost the submission.
    stacks = {dlq_setting: queue_stack(sqs, dlq)}
    if queue_url:
        queue_setting = "--queue-url" if args.queue_url else "SUBMISSION_QUEUE_URL"
        redrive = check_queue(sqs, queue_url, SUBMISSION_QUEUE, queue_setting)
        if not args.parked:
            check_redrive(sqs, redrive, dlq, f"{queue_setting} and {dlq_setting}")
        stacks[queue_setting] = queue_stack(sqs, queue_url)
    if table:
        table_setting = "--table" if args.table else "IDEMPOTENCY_TABLE"
        arn = check_table(dynamodb, table, IDEMPOTENCY_TABLE, table_setting)
        stacks[table_setting] = table_stack(dynamodb, arn)
    if submission_table:
        store_setting = "--submission-table" if args.submission_table else "SUBMISSION_TABLE"
        arn = check_table(dynamodb, submission_table, SUBMISSION_STORE, store_setting)
        stacks[store_setting] = table_stack(dynamodb, arn)
    check_one_stack(stacks)
    return (ParkedSubmissions if args.parked else DeadLetters)(
        sqs=sqs,
        dead_letter_queue_url=dlq,
        queue_url=queue_url,
        failures=DynamoFailures(dynamodb, table) if table else None,
        store=DynamoSubmissionStore(dynamodb, submission_table) if submission_table else None,
    )


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parked",
        action="store_true",
        help="the parked queue rather than the dead-letter queue (env PARKED_QUEUE_URL)",
    )
    parser.add_argument(
        "--dlq-url",
        help="dead-letter queue URL (env DEAD_LETTER_QUEUE_URL), or with --parked the parked one",
    )
    parser.add_argument("--queue-url", help="submission queue URL (env SUBMISSION_QUEUE_URL)")
    parser.add_argument("--table", help="idempotency table, for reasons (env IDEMPOTENCY_TABLE)")
    parser.add_argument(
        "--submission-table", help="submission store, for field names (env SUBMISSION_TABLE)"
    )
    # Read ahead so that the subcommands' help names what `--parked` lists.
    ahead = argparse.ArgumentParser(add_help=False)
    ahead.add_argument("--parked", action="store_true")
    parked = ahead.parse_known_args(argv)[0].parked
    noun = ParkedSubmissions.noun if parked else DeadLetters.noun
    add_commands(
        parser,
        id_help="SQS message id or submission id",
        replay_help=f"send {noun}s back to the submission queue",
        noun=noun,
    )
    args = parsed_arguments("dead_letters.py", parser, argv)
    return run_tool(
        "dead_letters.py",
        lambda: run_command(
            args,
            build(args),
            out,
            table=functools.partial(_table, parked=args.parked),
            show=_show,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
