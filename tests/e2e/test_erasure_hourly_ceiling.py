"""The stack's ceiling on contacts erased per rolling hour (erasure/ceiling.py, stack parameter
ErasureHourlyLimit): what one mistaken or malicious caller can scrub before anyone looks.

Before it, a loop of erasure requests (an operator's script over the wrong CSV, a leaked
credential that may invoke the API) scrubbed and archived 35 contacts in 8 s, stopped only when
Cliniko's 200 requests a minute ran out (and the intake's with them), and one request whose
email 40 contacts shared scrubbed all 40 in 1.4 s once `erase_all_matches` was added; no alarm
watched either. API Gateway events into the Lambda handler, the Cliniko emulator over real
HTTP, moto for the tables."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from cliniko_automations.erasure import api_handler
from cliniko_automations.erasure.ceiling import DynamoHourlyCeiling
from cliniko_automations.erasure.errors import OverHourlyLimit, RequestInProgress
from cliniko_automations.erasure.scrub import PLACEHOLDER_FIRST_NAME

from tests.e2e.test_erasure_api import LambdaContext, erasure, get, http_api_event, writes
from tests.e2e.test_incident_drills import RESOURCES, alarm_fires, alarm_sum
from tests.integration.erasure import stack

erasure_stack = stack.erasure_stack  # the fixture


def post(body: dict) -> tuple[int, dict, dict]:
    event = http_api_event("POST", "/erasure-requests", body=body)
    response = api_handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}


def scrubbed(erasure_stack, contact_id: str) -> bool:
    return erasure_stack.contact(contact_id)["first_name"] == PLACEHOLDER_FIRST_NAME


def test_a_loop_of_erasures_stops_at_the_ceiling_with_429_and_the_alarm(
    erasure_stack, monkeypatch, capsys
):
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "3")
    ids = [erasure_stack.seed(email=f"row{i}@example.com") for i in range(6)]
    capsys.readouterr()
    answers = []
    for i, contact_id in enumerate(ids):
        before = len(erasure_stack.log())
        status, body, headers = post(erasure(request_id=f"csv-row-{i}", contact_id=contact_id))
        answers.append((status, body, headers, erasure_stack.log()[before:]))
    out = capsys.readouterr().out

    assert [a[0] for a in answers] == [200, 200, 200, 429, 429, 429]
    assert [scrubbed(erasure_stack, c) for c in ids] == [True] * 3 + [False] * 3
    for _, body, headers, sent in answers[3:]:
        assert body["reason"] == "erasure_hourly_limit"
        assert (body["limit"], body["used"]) == (3, 3)
        assert "ErasureHourlyLimit" in body["message"]
        # The hour frees its first erasure's room first: within the hour, never later.
        assert 3500 < int(headers["Retry-After"]) <= 3600
        # Refused before the lookup: none of the clinic's Cliniko budget spent on it.
        assert sent == []
    assert alarm_sum("ErasureHourlyLimitAlarm", out) == 3
    assert alarm_fires("ErasureHourlyLimitAlarm", [(0.0, out)], 300.0)
    assert alarm_sum("ErasureUnavailableAlarm", out) == 0


def test_a_stack_whose_ceiling_is_0_has_none(erasure_stack, monkeypatch):
    # ErasureHourlyLimit 0 (the template's MinValue) turns the ceiling off: read as a ceiling
    # of nothing, every erasure of such a stack would be refused 429.
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "0")
    ids = [erasure_stack.seed(email=f"off{i}@example.com") for i in range(3)]
    answers = [post(erasure(request_id=f"off-{i}", contact_id=c))[0] for i, c in enumerate(ids)]
    assert answers == [200, 200, 200]
    assert all(scrubbed(erasure_stack, c) for c in ids)


def test_a_refused_request_stays_open_and_goes_through_later_with_the_same_id(
    erasure_stack, monkeypatch
):
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "1")
    first, second = erasure_stack.seed(email="a@example.com"), erasure_stack.seed()
    assert post(erasure(request_id="r-1", contact_id=first))[0] == 200

    before = len(erasure_stack.log())
    status, body, _ = post(erasure(request_id="r-2", contact_id=second))
    assert status == 429 and body["request_id"] == "r-2"
    assert erasure_stack.log()[before:] == []  # a ceiling of one is full before any lookup
    state, record = get("r-2")
    assert state == 200 and record["status"] == "open"
    # Its due date counts from its receipt: left so, the daily check counts it overdue.
    assert record["due_at"] and record["received_at"]

    # The operator raises the ceiling (a deploy of ErasureHourlyLimit): the same id goes
    # through, once, and is no duplicate of the refused attempt.
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "2")
    status, body, _ = post(erasure(request_id="r-2", contact_id=second))
    assert status == 200, body
    assert body["result"] == "erased" and scrubbed(erasure_stack, second)
    before = len(erasure_stack.log())
    assert post(erasure(request_id="r-2", contact_id=second))[1]["result"] == "erased"
    assert erasure_stack.log()[before:] == []  # the stored outcome, Cliniko untouched


def test_one_request_matching_more_contacts_than_the_ceiling_scrubs_none(
    erasure_stack, monkeypatch
):
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "5")
    shared = "front-desk@example.com"
    ids = [erasure_stack.seed(email=shared, first_name=f"N{i}") for i in range(8)]
    assert post(erasure(request_id="wide", email=shared))[0] == 409
    before = len(erasure_stack.log())

    status, body, headers = post(erasure(request_id="wide", email=shared, erase_all_matches=True))

    assert status == 429
    assert (body["would_erase"], body["limit"], body["used"]) == (8, 5, 0)
    # Waiting never makes room for 8 under 5: no Retry-After, the message says what will.
    assert "Retry-After" not in headers
    assert "raise the stack parameter ErasureHourlyLimit" in body["message"]
    assert writes(erasure_stack.log()[before:]) == []
    assert not any(scrubbed(erasure_stack, c) for c in ids)
    assert "ceiling" in get("wide")[1]["message"]

    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "8")
    status, body, _ = post(erasure(request_id="wide", email=shared, erase_all_matches=True))
    assert status == 200 and body["result"] == "erased"
    assert all(scrubbed(erasure_stack, c) for c in ids)


def test_dry_runs_and_requests_that_find_nobody_take_no_room(erasure_stack, monkeypatch):
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "1")
    contact_id = erasure_stack.seed()
    assert post(erasure(request_id="d-1", contact_id=contact_id, dry_run=True))[0] == 200
    status, body, _ = post(erasure(request_id="n-1", email="nobody@example.com"))
    assert (status, body["result"]) == (200, "no_record_found")

    status, body, _ = post(erasure(request_id="e-1", contact_id=contact_id))

    assert (status, body["result"]) == (200, "erased")


def test_a_retry_of_a_failed_attempt_is_not_counted_twice(erasure_stack, monkeypatch):
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "1")
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[503], methods=["PATCH"])
    assert post(erasure(request_id="f-1", contact_id=contact_id))[0] == 502
    erasure_stack.cliniko.control.clear_faults()

    status, body, _ = post(erasure(request_id="f-1", contact_id=contact_id))

    assert (status, body["result"]) == (200, "erased")


def test_the_rolling_hour_frees_room_as_its_admissions_age(aws):
    stack.create_table("IdempotencyTable", "ceiling-idempotency")
    ceiling = DynamoHourlyCeiling("ceiling-idempotency", 3, dynamodb=boto3.client("dynamodb"))
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    ceiling.admit("a", 2, start)
    ceiling.admit("b", 1, start + timedelta(minutes=20))

    with pytest.raises(OverHourlyLimit) as refused:
        ceiling.admit("c", 1, start + timedelta(minutes=30))
    assert refused.value.retry_after == 30 * 60  # when "a" leaves the hour
    with pytest.raises(OverHourlyLimit) as refused:
        ceiling.admit("c", 3, start + timedelta(minutes=30))
    assert refused.value.retry_after == 50 * 60  # when "b" leaves it too

    ceiling.admit("c", 2, start + timedelta(minutes=60, seconds=1))
    with pytest.raises(OverHourlyLimit):
        ceiling.check_room("d", start + timedelta(minutes=61))


def test_erasures_at_once_never_share_the_last_room(aws):
    stack.create_table("IdempotencyTable", "ceiling-idempotency")
    now = datetime.now(UTC)
    admitted: list[str] = []
    refused: list[str] = []
    go = threading.Barrier(6)

    def one(request_id: str) -> None:
        ceiling = DynamoHourlyCeiling("ceiling-idempotency", 2, dynamodb=boto3.client("dynamodb"))
        go.wait()
        try:
            ceiling.admit(request_id, 1, now)
            admitted.append(request_id)
        except OverHourlyLimit:
            refused.append(request_id)

    threads = [threading.Thread(target=one, args=(f"t-{i}",)) for i in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert time.monotonic() - started < 30
    # Once two are in, every other reads a full hour: none retries past its rereads.
    assert (len(admitted), len(refused)) == (2, 4)


def test_the_local_cli_is_bound_by_the_same_ceiling_and_says_so(erasure_stack, monkeypatch, capsys):
    from tests.e2e.test_erasure_cli import load_cli

    cli = load_cli()
    monkeypatch.setenv("ERASURE_HOURLY_LIMIT", "1")
    first, second = erasure_stack.seed(email="one@example.com"), erasure_stack.seed()
    request = ["request", "--reason", "GDPR art. 17", "--request-id"]
    assert cli.main([*request, "cli-1", "--contact-id", first]) == 0
    capsys.readouterr()

    code = cli.main([*request, "cli-2", "--contact-id", second])

    out = capsys.readouterr().out
    assert code == cli.EXIT_ATTENTION, out
    assert "Request cli-2: open" in out
    assert "1 of the stack's ceiling of 1 per hour (ErasureHourlyLimit) are used" in out
    assert "send the same request id again in" in out
    assert not scrubbed(erasure_stack, second)


def test_each_request_counts_the_contacts_it_scrubbed_for_the_day_s_alarm(
    erasure_stack, monkeypatch, capsys
):
    # A caller pacing itself under the hourly ceiling is never refused: the day's count of
    # contacts erased (ContactsErasedAlarm, threshold ErasureHourlyLimit) tells of it.
    shared = "twins@example.com"
    twins = [erasure_stack.seed(email=shared, first_name=f"T{i}") for i in range(2)]
    single = erasure_stack.seed()
    capsys.readouterr()

    post(erasure(request_id="dry", contact_id=single, dry_run=True))
    post(erasure(request_id="nobody", email="nobody@example.com"))
    post(erasure(request_id="twins", email=shared, erase_all_matches=True))
    post(erasure(request_id="twins", email=shared, erase_all_matches=True))  # stored outcome
    post(erasure(request_id="single", contact_id=single))
    out = capsys.readouterr().out

    assert all(scrubbed(erasure_stack, c) for c in [*twins, single])
    # 2 + 1 scrubbed; the dry run, nobody found and the stored answer count 0.
    assert alarm_sum("ContactsErasedAlarm", out) == 3
    threshold = RESOURCES["ContactsErasedAlarm"]["Properties"]["Threshold"]
    assert threshold == {"Ref": "ErasureHourlyLimit"}


def test_an_erasure_reads_the_ceiling_once_and_a_write_since_is_read_again(aws):
    stack.create_table("IdempotencyTable", "ceiling-idempotency")
    dynamodb = boto3.client("dynamodb")
    reads: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append("get"))
    ceiling = DynamoHourlyCeiling("ceiling-idempotency", 2, dynamodb=dynamodb)
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    room = ceiling.check_room("a", now)
    ceiling.admit("a", 1, now, room)
    assert reads == ["get"]  # admit wrote over check_room's read

    # Another erasure takes the last room between this one's check and its admission: the
    # version condition refuses the write over the stale read, and the item is read again.
    room = ceiling.check_room("b", now)
    DynamoHourlyCeiling("ceiling-idempotency", 2, dynamodb=boto3.client("dynamodb")).admit(
        "c", 1, now
    )
    with pytest.raises(OverHourlyLimit) as refused:
        ceiling.admit("b", 1, now, room)
    assert (refused.value.used, reads) == (2, ["get"] * 3)


def test_an_erasure_that_loses_every_reread_is_told_to_retry_not_let_through_uncounted(aws):
    # Each time this erasure reads the hour, another erasure writes it before this one can:
    # past its rereads it is answered "in progress, try again" (409), and nothing of it is
    # counted; let through, it would scrub with no room taken, unbounded by the ceiling.
    stack.create_table("IdempotencyTable", "ceiling-idempotency")
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    others = DynamoHourlyCeiling("ceiling-idempotency", 100, dynamodb=boto3.client("dynamodb"))
    written: list[str] = []

    def another_erasure_writes(**_):
        written.append(f"other-{len(written)}")
        others.admit(written[-1], 1, now)

    dynamodb = boto3.client("dynamodb")
    dynamodb.meta.events.register("after-call.dynamodb.GetItem", another_erasure_writes)
    ceiling = DynamoHourlyCeiling("ceiling-idempotency", 100, dynamodb=dynamodb)

    with pytest.raises(RequestInProgress):
        ceiling.admit("unlucky", 1, now)
    room = others.check_room("later", now)
    assert room is not None
    assert sorted(a.request_id for a in room.admitted) == sorted(written)
