"""scripts/dead_letters.py against moto: list, show (no personal values), replay, delete; with
`--parked`, the same on the parked queue, from a submission the worker parked."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError
from cliniko_automations.common import dead_letter_tool
from cliniko_automations.common.dead_letter_tool import run_command
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.submission_store import DAY
from cliniko_automations.intake.submission import (
    ContactDraft,
    PhoneNumber,
    QueuedSubmission,
    Submission,
)
from cliniko_automations.intake_worker.store import DynamoFailures, FailureRecord

from tests.e2e.leak_search import leaks
from tests.integration.intake_worker.resources import (
    DEAD_LETTERS_SCRIPT,
    WorkerStack,
    create_worker_stack,
    load_dead_letters_script,
    put_secrets,
    worker_environment,
    write_worker_config,
)
from tests.integration.intake_worker.test_handler import age_body, body_expires_in, run_until_empty

PERSONAL = ("Ana", "Lima", "ana.lima@example.com", "0412 345 678")


dead_letters = load_dead_letters_script()


@pytest.fixture
def stack(aws: str, monkeypatch: pytest.MonkeyPatch) -> WorkerStack:
    stack = create_worker_stack()
    for name, value in stack.env(DEAD_LETTER_QUEUE_URL=stack.dead_letter_queue_url).items():
        monkeypatch.setenv(name, value)
    return stack


def submission(n: int) -> Submission:
    return Submission(
        submission_id=f"sub-{n}",
        idempotency_key=f"test-json:{n}",
        source="test-json",
        provider="json",
        account="test-clinic",
        received_at=datetime(2026, 11, 23, 12, n, tzinfo=UTC),
        draft=ContactDraft(
            first_name="Ana",
            last_name="Lima",
            email="ana.lima@example.com",
            phone_numbers=(PhoneNumber(number="0412 345 678"),),
        ),
    )


def fill(stack: WorkerStack) -> dict[str, str]:
    """Three dead letters: redriven (reason stored), sent directly (reason attribute), junk
    (with an attempt count that is not a number: anyone who can send to the queue sets it)."""
    ids = {}
    redriven = stack.enqueue(submission(1), queue_url=stack.dead_letter_queue_url)
    DynamoFailures(stack.dynamodb, stack.idempotency_table).record(
        FailureRecord(redriven, "cliniko_server_error", "sub-1", "test-json", 5, "2026-11-23")
    )
    ids["redriven"] = redriven
    stack.store().put("sub-2", submission(2).to_json(), PersonKeys())
    ids["direct"] = stack.sqs.send_message(
        QueueUrl=stack.dead_letter_queue_url,
        MessageBody=stack.queued_message(submission(2)),
        MessageAttributes={
            "failure_reason": {
                "DataType": "String",
                "StringValue": "cliniko_validation_failed:email",
            },
            "receive_count": {"DataType": "String", "StringValue": "1"},
        },
    )["MessageId"]
    ids["junk"] = stack.sqs.send_message(
        QueueUrl=stack.dead_letter_queue_url,
        MessageBody="not a submission",
        MessageAttributes={"receive_count": {"DataType": "String", "StringValue": "many"}},
    )["MessageId"]
    return ids


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = dead_letters.main(list(argv), out=out)
    return code, out.getvalue()


def test_list_shows_ids_sources_attempts_and_reasons(stack: WorkerStack) -> None:
    ids = fill(stack)
    code, text = run("list")
    assert code == 0
    assert "sub-1" in text and "cliniko_server_error" in text
    assert "sub-2" in text and "cliniko_validation_failed:email" in text
    assert dead_letters.NO_REASON in text
    assert "3 dead letter(s)" in text
    assert not any(value in text for value in PERSONAL)
    code, text = run("list", "--json")
    rows = {row["message_id"]: row for row in map(json.loads, text.splitlines())}
    assert rows[ids["redriven"]]["receive_count"] == 5
    assert rows[ids["direct"]]["reason"] == "cliniko_validation_failed:email"
    assert rows[ids["junk"]]["submission_id"] == "-"
    assert rows[ids["junk"]]["receive_count"] == 0
    # Listing hides nothing for good: all three are still there, visible.
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


def test_a_listing_cut_short_says_so(stack: WorkerStack, monkeypatch, capsys) -> None:
    # A queue too big to receive within LISTING_SECONDS (common/dead_letter_tool.py): here no
    # time at all, so nothing is listed, and the operator is told the queue holds more.
    fill(stack)
    monkeypatch.setattr(dead_letter_tool, "LISTING_SECONDS", 0)
    code, _ = run("replay", "--all")
    assert code == 0
    assert capsys.readouterr().err == (
        "the listing stopped after 0 s: the queue holds more dead letters than were listed; "
        "a run lists from the front of the queue, so settle those listed (replay or delete "
        "them) and run again for the rest\nnothing to replay\n"
    )
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


def test_show_names_fields_without_values(stack: WorkerStack) -> None:
    fill(stack)
    code, text = run("show", "sub-1")
    assert code == 0
    assert "email, first_name, last_name, phone_numbers" in text
    assert "cliniko_server_error" in text
    assert not any(value in text for value in PERSONAL)
    assert run("show", "nope")[0] == 1


def test_replay_one_then_all(stack: WorkerStack, capsys) -> None:
    ids = fill(stack)
    code, text = run("replay", ids["direct"])
    assert code == 0 and ids["direct"] in text
    [replayed] = stack.drain(stack.queue_url)
    assert QueuedSubmission.from_json(replayed["Body"]).submission_id == "sub-2"
    assert replayed["MessageAttributes"]["replayed_from"]["StringValue"] == ids["direct"]
    # Its clinic's message group, as the intake API sends it (the fair queue's tenant).
    assert replayed["Attributes"]["MessageGroupId"] == "test-clinic"
    assert stack.counts(stack.dead_letter_queue_url) == (2, 0)

    code, text = run("replay", "--all")
    # The junk letter holds no submission: sent back, the worker would dead-letter it again.
    assert code == 1 and text.count("replayed") == 1
    assert [
        QueuedSubmission.from_json(m["Body"]).submission_id for m in stack.drain(stack.queue_url)
    ] == ["sub-1"]
    (letter,) = stack.drain(stack.dead_letter_queue_url)
    assert letter["MessageId"] == ids["junk"]
    assert f"{ids['junk']}: not a queued submission, which no replay mends" in (
        capsys.readouterr().err
    )


def test_delete_removes_a_letter_without_replaying_it(stack: WorkerStack, capsys) -> None:
    ids = fill(stack)
    assert run("delete", "sub-2") == (0, f"deleted {ids['direct']}\n")
    assert stack.counts(stack.dead_letter_queue_url) == (2, 0)
    assert stack.counts(stack.queue_url) == (0, 0)
    assert run("delete", "nope")[0] == 1
    assert capsys.readouterr().err == "no dead letter with id nope\n"
    assert stack.counts(stack.dead_letter_queue_url) == (2, 0)


def test_the_listings_dash_names_no_letter(stack: WorkerStack, capsys) -> None:
    # A letter holding no submission id (sent by something else, or a whole submission from
    # an older release: a person's values, kept for staff) lists its submission id as "-".
    # Copied from the table, `delete -` deleted every such letter at once, the other's
    # submission with it.
    ids = fill(stack)
    older = stack.sqs.send_message(
        QueueUrl=stack.dead_letter_queue_url, MessageBody='{"first_name": "Ana"}'
    )["MessageId"]
    assert run("delete", "-") == (1, "")
    assert capsys.readouterr().err == "no dead letter with id -\n"
    assert stack.counts(stack.dead_letter_queue_url) == (4, 0)
    assert run("delete", ids["junk"]) == (0, f"deleted {ids['junk']}\n")
    assert [m["MessageId"] for m in stack.drain(stack.dead_letter_queue_url)].count(older) == 1


def test_a_release_sqs_failed_in_part_is_asked_again(
    stack: WorkerStack, monkeypatch, capsys
) -> None:
    # ChangeMessageVisibilityBatch answers 200 with entries SQS failed on its side
    # (SenderFault false): taken as done, those letters stayed hidden for HIDE_SECONDS, and
    # a `replay --all` right after the listing said "nothing to replay".
    fill(stack)
    failed_once = []

    def fail_every_entry_once(params: dict, **_: object) -> tuple[object, dict] | None:
        if failed_once:
            return None
        failed_once.append(1)
        failures = [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"}
            for entry in json.loads(params["body"])["Entries"]
        ]
        return AWSResponse(params["url"], 200, {}, None), {"Successful": [], "Failed": failures}

    session = boto3.session.Session()  # the script's clients come from the default session
    session.events.register("before-call.sqs.ChangeMessageVisibilityBatch", fail_every_entry_once)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    assert run("list")[0] == 0
    assert failed_once
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


def test_a_replayed_body_outlives_the_new_message(stack: WorkerStack) -> None:
    # The replay is a new message, kept 14 days from now by the queue, and by the dead-letter
    # queue if it fails again: a body stored 12 days ago expired under it, and that letter
    # could never be replayed (its body gone), the submission lost.
    ids = fill(stack)
    age_body(stack, submission(2), days_left=4)
    assert run("replay", ids["direct"])[0] == 0
    assert body_expires_in(stack, submission(2)) > 15 * DAY


def test_a_replay_cut_short_has_said_what_it_moved(
    stack: WorkerStack, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(stack)
    sends = []

    def throttle_the_second_send(**_: object) -> None:
        sends.append(1)
        if len(sends) == 2:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "SendMessage")

    session = boto3.session.Session()  # the script's clients come from the default session
    session.events.register("before-call.sqs.SendMessage", throttle_the_second_send)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    code, text = run("replay", "--all")
    assert code == 1 and "ThrottlingException" in capsys.readouterr().err
    # The one letter moved before the failure is named: it left the dead-letter queue.
    (moved,) = [line.removeprefix("replayed ") for line in text.splitlines()]
    assert len(stack.drain(stack.queue_url)) == 1
    assert stack.counts(stack.dead_letter_queue_url) == (2, 0)
    assert moved not in run("list", "--json")[1]


# The store too: without it a letter whose body is gone reads "unknown", and replayed, the
# worker would drop it and the letter, its last trace, would be deleted.
@pytest.mark.parametrize("setting", ["SUBMISSION_QUEUE_URL", "SUBMISSION_TABLE"])
def test_replay_needs_the_submission_queue_and_store(
    stack: WorkerStack, monkeypatch, setting
) -> None:
    fill(stack)
    monkeypatch.delenv(setting)
    with pytest.raises(SystemExit, match=setting):
        run("replay", "--all")
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


@pytest.mark.parametrize(
    ("mode", "setting"), [([], "DEAD_LETTER_QUEUE_URL"), (["--parked"], "PARKED_QUEUE_URL")]
)
def test_without_a_dead_letter_queue_it_says_so(
    monkeypatch: pytest.MonkeyPatch, mode, setting
) -> None:
    monkeypatch.delenv(setting, raising=False)
    with pytest.raises(SystemExit, match=setting):
        run(*mode, "list")


def test_a_listing_that_fails_part_way_hides_nothing(stack: WorkerStack, monkeypatch) -> None:
    """DynamoDB failing (out of reach) after SQS has handed over (and hidden) the letters fails
    the listing: they are visible again at once, not for the visibility timeout."""
    ids = fill(stack)
    reads = []

    def out_of_reach_after_the_first_read(**_: object) -> None:
        reads.append(1)
        if len(reads) > 1:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    session = boto3.session.Session()  # the script's clients come from the default session
    session.events.register("before-call.dynamodb.GetItem", out_of_reach_after_the_first_read)
    with monkeypatch.context() as patched:
        patched.setattr(boto3, "DEFAULT_SESSION", session)
        assert run("list")[0] == 1
    assert len(reads) == 2  # part-way: a letter read, the next one's read failed
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)
    code, text = run("replay", "--all")  # 1: the junk letter is kept, as no replay mends it
    assert code == 1 and all(f"replayed {ids[kind]}" in text for kind in ("redriven", "direct"))


def test_ctrl_c_while_listing_releases_what_was_received(stack: WorkerStack) -> None:
    fill(stack)
    sqs = boto3.client("sqs")
    receives = []

    def interrupt_the_second_receive(**_: object) -> None:
        receives.append(1)
        if len(receives) == 2:  # the first answer's letters are already hidden
            raise KeyboardInterrupt

    sqs.meta.events.register("before-call.sqs.ReceiveMessage", interrupt_the_second_receive)
    tool = dead_letters.DeadLetters(sqs=sqs, dead_letter_queue_url=stack.dead_letter_queue_url)
    listing = argparse.Namespace(command="list", json=False)
    with pytest.raises(KeyboardInterrupt):
        run_command(
            listing, tool, io.StringIO(), table=dead_letters._table, show=dead_letters._show
        )
    assert len(receives) == 2
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


def test_environment_mistakes_are_one_line_and_exit_1(stack: WorkerStack, capsys) -> None:
    fill(stack)
    assert run("--dlq-url", stack.dead_letter_queue_url + "-typo", "list")[0] == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dead_letters.py: QueueDoesNotExist") and "does not exist" in line
    # Named (README "Operating"): AWS's answer says only that some queue or table is missing.
    assert line.endswith(f"(queue {stack.dead_letter_queue_url}-typo)")
    assert run("--submission-table", "no-such-table", "show", "sub-1")[0] == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dead_letters.py: ResourceNotFoundException")
    assert line.endswith("(table no-such-table)")


def table_items(stack: WorkerStack, table: str) -> list[dict]:
    return stack.dynamodb.scan(TableName=table)["Items"]


# Each table or queue setting given another of the stack's, as an operator copies the wrong
# output: (mode, setting, the attribute of the stack it is given, what the line says it is not).
# Before: IDEMPOTENCY_TABLE of the submission store (both keyed `id`) replayed with no reason
# shown; SUBMISSION_TABLE of the idempotency table refused every letter as "body gone";
# SUBMISSION_QUEUE_URL of the dead-letter queue "replayed" each letter into its own queue, of
# the parked queue moved them there; DEAD_LETTER_QUEUE_URL of the parked or submission queue,
# PARKED_QUEUE_URL of the dead-letter queue, replayed what the operator never asked to; the
# ledger (keyed otherwise) was a ValidationException naming no setting.
WRONG = [
    ([], "IDEMPOTENCY_TABLE", "submission_table", "is not the idempotency table"),
    ([], "IDEMPOTENCY_TABLE", "ledger_table", "is not the idempotency table"),
    ([], "SUBMISSION_TABLE", "idempotency_table", "is not the submission store"),
    ([], "SUBMISSION_TABLE", "ledger_table", "is not the submission store"),
    ([], "SUBMISSION_QUEUE_URL", "dead_letter_queue_url", "is not the submission queue"),
    ([], "SUBMISSION_QUEUE_URL", "parked_queue_url", "is not the submission queue"),
    ([], "DEAD_LETTER_QUEUE_URL", "queue_url", "is not the submission dead-letter queue"),
    ([], "DEAD_LETTER_QUEUE_URL", "parked_queue_url", "is not the submission dead-letter queue"),
    (["--parked"], "PARKED_QUEUE_URL", "dead_letter_queue_url", "is not the parked queue"),
    (["--parked"], "PARKED_QUEUE_URL", "queue_url", "is not the parked queue"),
    (["--parked"], "SUBMISSION_TABLE", "idempotency_table", "is not the submission store"),
]


@pytest.mark.parametrize(("mode", "setting", "given", "said"), WRONG)
def test_a_table_or_queue_of_another_kind_is_one_line_and_nothing_moves(
    stack: WorkerStack, capsys, monkeypatch, mode, setting, given, said
) -> None:
    fill(stack)
    stack.enqueue(submission(7))
    stack.enqueue(submission(8), queue_url=stack.parked_queue_url)
    monkeypatch.setenv("PARKED_QUEUE_URL", stack.parked_queue_url)
    wrong = getattr(stack, given)
    monkeypatch.setenv(setting, wrong)
    queues = (stack.queue_url, stack.dead_letter_queue_url, stack.parked_queue_url)
    tables = (stack.idempotency_table, stack.submission_table, stack.ledger_table)
    before = [stack.counts(q) for q in queues], [table_items(stack, t) for t in tables]

    for command in (["list"], ["replay", "--all"]):
        assert run(*mode, *command)[0] == 1
        (line,) = capsys.readouterr().err.splitlines()
        kind = "queue" if setting.endswith("_URL") else "table"
        assert line.startswith(f"dead_letters.py: {setting}: {kind} {wrong} {said} (")

    assert ([stack.counts(q) for q in queues], [table_items(stack, t) for t in tables]) == before


def test_a_submission_queue_of_another_stack_is_one_line(stack: WorkerStack, capsys) -> None:
    # Both queues of their kind, but the dev stack's submission queue with the prod stack's
    # dead letters: a replay would send them to the other stack's worker.
    fill(stack)
    other = create_worker_stack("other")
    assert run("--queue-url", other.queue_url, "replay", "--all")[0] == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "dead_letters.py: --queue-url and DEAD_LETTER_QUEUE_URL: the submission queue does not "
        "redrive to this dead-letter queue"
    )
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)
    assert other.counts(other.queue_url) == (0, 0)


@pytest.mark.parametrize("setting", ["SUBMISSION_QUEUE_URL", "SUBMISSION_TABLE"])
def test_a_parked_replay_into_another_stack_is_one_line(
    stack: WorkerStack, monkeypatch, capsys, setting
) -> None:
    # Each of its kind, but the dev stack's with the prod stack's parked queue: replayed into
    # the other stack's submission queue, a submission was dropped there (its body in this
    # stack's store) and its letter deleted here, the submission lost.
    stack.enqueue(submission(8), queue_url=stack.parked_queue_url)
    other = create_worker_stack("other")
    monkeypatch.setenv("PARKED_QUEUE_URL", stack.parked_queue_url)
    monkeypatch.setenv(
        setting, other.queue_url if setting == "SUBMISSION_QUEUE_URL" else other.submission_table
    )
    assert run("--parked", "replay", "--all")[0] == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "not one stack's: take them all from the same stack's outputs" in line
    assert "PARKED_QUEUE_URL of intake" in line and f"{setting} of other" in line
    assert stack.counts(stack.parked_queue_url) == (1, 0)
    assert other.counts(other.queue_url) == (0, 0)


def test_letters_another_reader_holds_are_told_not_taken_for_none(stack: WorkerStack, capsys):
    # Hidden by a run killed mid-replay (or a colleague's still running): a run right after it
    # said "nothing to replay" and exited 0, and `list` "0 dead letter(s)", the queue full.
    fill(stack)
    stack.sqs.receive_message(
        QueueUrl=stack.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=120
    )
    capsys.readouterr()

    assert run("replay", "--all")[0] == 1
    held, nothing = capsys.readouterr().err.splitlines()
    assert held.startswith("about 3 more dead letter(s) are hidden by another reader")
    assert nothing == "nothing to replay"
    code, listed = run("list")
    assert code == 0 and "0 dead letter(s)" in listed
    assert "about 3 more" in capsys.readouterr().err


def script(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(DEAD_LETTERS_SCRIPT), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_no_region_is_one_line(stack: WorkerStack) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    env["AWS_CONFIG_FILE"] = os.devnull
    _, err = script("list", env=env).communicate(timeout=60)
    assert err.strip() == "dead_letters.py: NoRegionError: You must specify a region."


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("localhost:4566", "Invalid endpoint: localhost:4566"),  # botocore's own check
        ("http://localhost:99999", "Port out of range 0-65535"),  # urllib's, called by it
        ("http://[::1", "Invalid IPv6 URL"),
    ],
)
def test_a_malformed_endpoint_setting_is_one_line(stack: WorkerStack, endpoint, said) -> None:
    listing = script("list", env={**os.environ, "AWS_ENDPOINT_URL": endpoint})
    _, err = listing.communicate(timeout=60)
    assert listing.returncode == 1
    assert err.strip() == f"dead_letters.py: ValueError: {said}"


def test_a_letter_holding_a_lone_surrogate_is_listed_with_the_others(stack: WorkerStack) -> None:
    # Valid JSON (an escaped lone surrogate) from anyone who can send to the queue: UTF-8
    # cannot print it, and the listing stopped there with a traceback.
    fill(stack)
    stack.sqs.send_message(
        QueueUrl=stack.dead_letter_queue_url,
        MessageBody='{"submission_id": "\\ud800", "source": "x"}',
    )
    listing = script("list", env=dict(os.environ))
    out, err = listing.communicate(timeout=60)
    assert (listing.returncode, err) == (0, "")
    assert "4 dead letter(s)" in out and "sub-1" in out and "sub-2" in out
    assert "\\ud800" in out


def test_a_reader_that_stops_reading_ends_it_quietly(stack: WorkerStack) -> None:
    fill(stack)
    listing = script("list", "--json", env=dict(os.environ))
    listing.stdout.close()  # as `| head -1` does once it has its line
    err = listing.stderr.read()
    listing.stderr.close()
    assert listing.wait(timeout=60) == 141
    assert err == ""
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)


# A person tests/e2e/leak_search.py finds wherever their values go (whole, encoded, any case).
MARKED = ContactDraft(
    first_name="Zephyrine",
    last_name="Quillfeather",
    email="zephyrine@qx7marker.example.com",
    phone_numbers=(PhoneNumber(number="0412 345 678"),),
)


def leaked(*outputs: str) -> list[str]:
    return leaks("printed", outputs) + [o for o in outputs if "0412 345 678" in o]


def parked_submission(stack: WorkerStack, cliniko, n: int) -> tuple[Submission, list[str]]:
    """A submission the worker parks (`several_matches`: two Cliniko contacts share its
    email), and the ids of those contacts."""
    client = cliniko.client()
    made = [client.create_contact({"first_name": "Zephyrine", "email": MARKED.email}) for _ in "ab"]
    sub = dataclasses.replace(submission(n), draft=MARKED)
    stack.enqueue(sub)
    run_until_empty(stack)
    assert stack.counts(stack.parked_queue_url) == (1, 0)
    return sub, [str(contact.id) for contact in made]


@pytest.fixture
def worker(stack: WorkerStack, cliniko, monkeypatch, tmp_path) -> WorkerStack:
    """The stack, with the worker's environment and the Cliniko emulator."""
    put_secrets({"tests/cliniko/test-clinic": cliniko.api_key})
    worker_environment(monkeypatch, stack, cliniko.base_url_template, write_worker_config(tmp_path))
    return stack


def test_a_parked_submission_is_listed_shown_and_replayed_once_merged(worker, cliniko) -> None:
    sub, candidates = parked_submission(worker, cliniko, 7)
    code, listed = run("--parked", "list")
    assert code == 0
    assert sub.submission_id in listed and "several_matches" in listed
    assert ", ".join(candidates) in listed and "1 parked submission(s)" in listed
    code, rows = run("--parked", "list", "--json")
    (row,) = map(json.loads, rows.splitlines())
    assert (row["reason"], row["candidates"], row["body"]) == (
        "several_matches",
        candidates,
        "stored",
    )
    assert "receive_count" not in row  # a dead letter's
    code, shown = run("--parked", "show", sub.submission_id)
    assert code == 0
    assert f"candidates:    {', '.join(candidates)}" in shown.splitlines()
    assert "email, first_name, last_name, phone_numbers" in shown
    assert worker.counts(worker.parked_queue_url) == (1, 0)  # the listings hid nothing

    # Staff merge the duplicates (Cliniko keeps one, archives the other), then replay.
    cliniko.client().archive_contact(candidates[1])
    age_body(worker, sub, days_left=2)
    code, replayed = run("--parked", "replay", sub.submission_id)
    assert (code, replayed) == (0, f"replayed {row['message_id']}\n")
    assert worker.counts(worker.parked_queue_url) == (0, 0)
    # A new message, kept 14 days by the submission queue: its body outlives it.
    assert body_expires_in(worker, sub) > 15 * DAY
    run_until_empty(worker)
    assert worker.drain(worker.parked_queue_url) == []
    active = cliniko.control.contacts(include_archived=False)
    assert [(c["id"], c["last_name"]) for c in active] == [(candidates[0], "Quillfeather")]
    assert leaked(listed, rows, shown, replayed) == []


def test_a_parked_submission_settled_by_hand_is_deleted(worker, cliniko, capsys) -> None:
    sub, _ = parked_submission(worker, cliniko, 8)
    (row,) = map(json.loads, run("--parked", "list", "--json")[1].splitlines())
    code, deleted = run("--parked", "delete", sub.submission_id)
    assert (code, deleted) == (0, f"deleted {row['message_id']}\n")
    assert worker.counts(worker.parked_queue_url) == (0, 0)
    assert worker.counts(worker.queue_url) == (0, 0)  # not replayed
    assert len(cliniko.control.contacts()) == 2  # nothing written
    assert run("--parked", "delete", sub.submission_id) == (1, "")
    assert capsys.readouterr().err == f"no parked submission with id {sub.submission_id}\n"
    assert leaked(deleted) == []


@pytest.mark.parametrize(
    ("argv", "said", "not_said"),
    [
        (["--help"], "list the dead letters", "parked submission"),
        (["--parked", "--help"], "list the parked submissions", "dead letter"),
        (["--parked", "replay", "--help"], "every parked submission", "dead letter"),
    ],
)
def test_the_help_names_what_the_queue_holds(argv, said, not_said, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        dead_letters.main(argv)
    helped = capsys.readouterr().out.split("positional arguments:")[1]  # past the description
    assert exited.value.code == 0 and said in helped and not_said not in helped
