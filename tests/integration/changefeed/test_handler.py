"""The scheduled change feed: moto (feed table, contacts bus read through an SQS rule, secrets),
the emulator over HTTP, and the function's environment as template.yaml sets it."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from cliniko_automations.changefeed import cliniko_source, handler
from cliniko_automations.common.secrets import clear_secret_caches
from cliniko_automations.common.settings import SettingsError

from tests.integration.changefeed.stack import (
    EVENT_DETAIL_KEYS,
    HASH_KEY_SECRET,
    KEY_SECRET,
    SCHEDULED_EVENT,
    caught_up_hours_ago,
    context,
    create_feed_stack,
    feed_environment,
    subscribed,
)
from tests.integration.cleanup.tables import TEMPLATE, create_table
from tests.integration.intake_worker.resources import captured_logs, emf_metrics

PAST = "2026-01-05T09:00:00Z"


@pytest.fixture
def stack(aws, cliniko, tmp_path, monkeypatch):
    created = create_feed_stack()
    feed_environment(monkeypatch, created, cliniko, tmp_path)
    return created


def run(event=SCHEDULED_EVENT):
    return handler.lambda_handler(event, context())


def details(stack):
    return [event["detail"] for event in stack.drain()]


def test_the_first_run_starts_from_now_and_publishes_no_history(stack, cliniko):
    cliniko.control.churn(30, at=PAST)
    (account,) = run()["accounts"]
    assert (account["changes"], account["complete"], account["requests"]) == (0, True, 1)
    assert details(stack) == []


def test_each_kind_of_change_becomes_its_event_with_field_names_only(stack, cliniko, capsys):
    cliniko.control.seed(
        contacts=[
            {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": "ada@example.com",
                "created_at": PAST,
                "updated_at": PAST,
            },
            {
                "first_name": "Grace",
                "last_name": "Hopper",
                "email": "grace@example.com",
                "created_at": PAST,
                "updated_at": PAST,
                "archived_at": PAST,
            },
        ]
    )
    ada, grace = (c["id"] for c in cliniko.control.contacts())
    backfill = "2026-01-05T08:59:00Z"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BACKFILL_FROM", backfill)
        first = run()["accounts"][0]
    assert first["by_type"] == {"contact.created": 1, "contact.archived": 1}
    stack.drain()

    client = cliniko.client()
    client.update_contact(ada, {"email": "ada.l@example.com", "city": "London"})
    cliniko.control.unarchive(grace)
    created = client.create_contact({"first_name": "Alan", "last_name": "Turing"})
    answer = run()["accounts"][0]
    assert answer["by_type"] == {
        "contact.updated": 1,
        "contact.unarchived": 1,
        "contact.created": 1,
    }
    by_contact = {d["contact_id"]: d for d in details(stack)}
    assert by_contact[ada]["type"] == "contact.updated"
    assert by_contact[ada]["changed_fields"] == ["email", "city"]
    assert by_contact[grace]["type"] == "contact.unarchived"
    assert by_contact[grace]["changed_fields"] == ["archived_at"]
    assert by_contact[created.id]["type"] == "contact.created"
    assert set(by_contact[ada]) == EVENT_DETAIL_KEYS
    client.archive_contact(ada)
    run()
    (archived,) = details(stack)
    assert (archived["type"], archived["changed_fields"]) == ("contact.archived", ["archived_at"])
    # Neither the events nor the logs carry a value of the person.
    output = capsys.readouterr().out
    for value in ("Ada", "Lovelace", "ada.l@example.com", "London", "Turing", "Hopper"):
        assert value not in output
        assert value not in json.dumps(by_contact)


def test_the_bus_events_have_a_detail_type_per_change(stack, cliniko):
    run()
    cliniko.client().create_contact({"first_name": "Alan", "last_name": "Turing"})
    run()
    (event,) = stack.drain()
    assert (event["source"], event["detail-type"]) == (
        "cliniko-automations.contacts",
        "contact.created",
    )


def test_a_quiet_minute_costs_one_request(stack, cliniko):
    run()
    cliniko.control.clear_requests()
    for _ in range(3):
        (account,) = run()["accounts"]
        assert account["requests"] == 1
    requests = cliniko.control.requests()
    assert len(requests) == 3
    query = requests[0]["query"]
    assert "q[]" in json.dumps(query) and "archived_at:*" in json.dumps(query)


def test_metrics_count_changes_events_duplicates_and_lag(stack, cliniko, capsys):
    run()
    cliniko.control.churn(12, kinds=["create"])
    run()
    capsys.readouterr()
    run()  # the overlap lists the same contacts again: all dropped as duplicates
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["ChangesSeen"] == 0
    assert metrics["DuplicatesDropped"] >= 1
    assert metrics["FeedRequests"] == 1
    assert metrics["FeedBehindMinutes"] < 1


def test_lag_is_measured_from_updated_at(stack, cliniko, capsys):
    run()
    cliniko.control.churn(5, kinds=["create"])
    answer = run()["accounts"][0]
    assert answer["changes"] == 5
    assert 0 <= answer["max_lag_seconds"] < 60
    assert emf_metrics(capsys.readouterr().out)["ChangeLagSeconds"] >= 0


def test_a_cliniko_clock_running_ahead_does_not_carry_the_cursor_past_later_changes(stack, cliniko):
    run()
    cliniko.control.set_clock(600)  # Cliniko's clock ten minutes ahead, then set right
    ahead = cliniko.client().create_contact({"first_name": "Ahead", "last_name": "X"})
    run()
    cliniko.control.set_clock(0)
    back = cliniko.client().create_contact({"first_name": "Back", "last_name": "Y"})
    run()
    published = [d["contact_id"] for d in details(stack)]
    assert published == [str(ahead.id), str(back.id)]  # each once, none lost


def test_a_first_run_starts_from_now_on_clinikos_clock_when_it_runs_behind(stack, cliniko):
    # Cliniko stamps the changes: a first cursor on this machine's "now", a minute ahead of
    # Cliniko's, left every change Cliniko stamped in that minute before the cursor for good.
    cliniko.control.set_skew(-60)
    (first,) = run()["accounts"]
    assert (first["changes"], first["complete"]) == (0, True)
    made = cliniko.client().create_contact({"first_name": "Behind", "last_name": "X"})
    (second,) = run()["accounts"]
    assert [d["contact_id"] for d in details(stack)] == [str(made.id)]
    assert second["changes"] == 1


def test_a_first_run_with_clinikos_clock_behind_lists_again_from_clinikos_now(stack, cliniko):
    # What Cliniko stamped within the overlap of its own "now" when the first run began is
    # what that run publishes with the clocks together (the overlap's reading): so it does
    # with Cliniko's clock a minute behind, in one more request.
    cliniko.control.set_skew(-60)
    made = cliniko.client().create_contact({"first_name": "Just", "last_name": "Before"})
    (first,) = run()["accounts"]
    assert (first["changes"], first["requests"]) == (1, 2)
    assert [d["contact_id"] for d in details(stack)] == [str(made.id)]


def test_a_failed_first_run_with_clinikos_clock_behind_misses_nothing_after_it(stack, cliniko):
    # No answer told Cliniko's clock: started from our "now", a minute ahead of Cliniko's,
    # the next run missed what Cliniko stamped in that minute after the failed first run.
    cliniko.control.set_skew(-60)
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])
    assert run()["accounts"][0]["error"] == "cliniko_ServerError"
    cliniko.control.clear_faults()
    made = cliniko.client().create_contact({"first_name": "After", "last_name": "Failed"})
    assert run()["accounts"][0]["changes"] == 1
    assert [d["contact_id"] for d in details(stack)] == [str(made.id)]


class Killed(BaseException):
    """The invocation dying (a crash, its timeout): nothing after it runs."""


def test_a_first_run_killed_before_clinikos_first_answer_misses_nothing_after_it(
    stack, cliniko, monkeypatch
):
    # The first cursor was saved on our "now" before any answer told Cliniko's clock, and
    # moved back only after one (or at the end of the run): killed in between, the next runs
    # started a minute after what Cliniko, that far behind, stamped meanwhile.
    cliniko.control.set_skew(-60)
    listing = cliniko_source.ClinikoContactsSource.changed_since

    def dying(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(cliniko_source.ClinikoContactsSource, "changed_since", dying)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(cliniko_source.ClinikoContactsSource, "changed_since", listing)
    stack.expire_lease()
    made = cliniko.client().create_contact({"first_name": "After", "last_name": "Killed"})
    assert run()["accounts"][0]["changes"] == 1
    assert [d["contact_id"] for d in details(stack)] == [str(made.id)]


def test_a_first_run_told_nothing_of_clinikos_clock_misses_nothing_after_it(stack, cliniko):
    # Its answers without `Date` (a proxy in front of Cliniko that drops it), the first run
    # knows Cliniko's clock no better than one no answer reached. Started on our "now", a
    # minute ahead of Cliniko's, it missed for good what Cliniko stamped in that minute.
    cliniko.control.set_skew(-60)
    cliniko.control.set_behaviour(date_header=False)
    (first,) = run()["accounts"]
    assert (first["complete"], first["error"]) == (True, None)
    made = cliniko.client().create_contact({"first_name": "Date", "last_name": "Dropped"})
    (second,) = run()["accounts"]
    assert second["changes"] == 1
    assert [d["contact_id"] for d in details(stack)] == [str(made.id)]


def published_lags(stdout: str) -> list[float]:
    """Every ChangeLagSeconds value the EMF lines in `stdout` carry."""
    values: list[float] = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"ChangeLagSeconds"' in line:
            lag = json.loads(line)["ChangeLagSeconds"]
            values += lag if isinstance(lag, list) else [lag]
    return values


def test_a_busy_runs_lag_sample_spans_its_lags_to_the_longest(stack, cliniko, capsys):
    # CloudWatch takes at most 100 values of a metric in one record: a run with more changes
    # publishes a sample, and the dashboard's p50 and p95 are read from it. Every other lag of
    # 150 is a step of 1, so the sample was the shortest 100: the 50 changes waiting longest
    # were never published, and a busy feed's p95 showed its quick changes only.
    run()
    cliniko.control.churn(50, kinds=["create"])
    time.sleep(2.2)  # these 50 wait 2 s longer than the 100 after them
    cliniko.control.churn(100, kinds=["create"])
    capsys.readouterr()
    (account,) = run()["accounts"]
    assert account["changes"] == 150
    lags = published_lags(capsys.readouterr().out)
    assert len(lags) == 100
    assert max(lags) == pytest.approx(account["max_lag_seconds"], abs=0.001)
    # How the sample spreads is lag_sample's own test (tests/unit/changefeed/test_lag_sample.py):
    # here the lags' spread is this machine's timing.


@pytest.mark.parametrize("skew", [-30, 30])
def test_lag_is_read_on_clinikos_clock(stack, cliniko, capsys, skew):
    # Read on this machine's clock it was 30 s too long with Cliniko's behind, and below 0
    # (a nonsense p50 on the dashboard) with it ahead.
    cliniko.control.set_skew(skew)
    run()
    cliniko.control.churn(5, kinds=["create"])
    answer = run()["accounts"][0]
    assert answer["changes"] == 5
    assert 0 <= answer["max_lag_seconds"] < 15
    assert emf_metrics(capsys.readouterr().out)["ChangeLagSeconds"] >= 0


def test_an_operator_may_poll_named_accounts_only(stack):
    assert run({"accounts": ["nope"]}) == {"error": "no account named nope"}
    # An empty list is a mistake, not a poll of nothing that reports success.
    assert run({"accounts": []}) == {"error": "accounts must be a non-empty list of account names"}
    assert [a["account"] for a in run({"accounts": ["test-clinic"]})["accounts"]] == ["test-clinic"]


def test_an_account_named_twice_by_an_operator_is_polled_once(stack, cliniko):
    run()
    cliniko.control.churn(5, kinds=["create"])
    answer = run({"accounts": ["test-clinic", "test-clinic"]})
    # Before, both polls ran at once under the run's one lease, which admits its owner again:
    # every change was published twice.
    assert [a["account"] for a in answer["accounts"]] == ["test-clinic"]
    assert len(details(stack)) == 5


def test_a_run_while_another_polls_the_account_does_nothing(stack, cliniko):
    stack.hold_lease()
    cliniko.control.clear_requests()
    (account,) = run()["accounts"]
    assert (account["complete"], account["error"]) == (False, "another_run_is_polling")
    assert cliniko.control.requests() == []


def test_cliniko_refusing_leaves_the_cursor_and_reports_it(stack, cliniko):
    run()
    cursor = next(i for i in stack.items() if i["pk"]["S"] == "cursor#test-clinic")
    cliniko.control.churn(3, kinds=["create"])
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])
    (account,) = run()["accounts"]
    assert (account["complete"], account["error"]) == (False, "cliniko_ServerError")
    assert next(i for i in stack.items() if i["pk"]["S"] == "cursor#test-clinic") == cursor
    cliniko.control.clear_faults()
    assert run()["accounts"][0]["changes"] == 3


def test_an_unreadable_item_of_the_feed_s_table_fails_its_account_by_name(stack, cliniko):
    run()
    cliniko.control.churn(2, kinds=["create"])
    run()
    # A published state without its `archived` flag (edited by hand): that account stops on it.
    state = next(i for i in stack.items() if i["pk"]["S"].startswith("contact#test-clinic#"))
    del state["archived"]
    stack.dynamodb.put_item(TableName=stack.table, Item=state)
    cliniko.client().update_contact(state["contact_id"]["S"], {"city": "Elsewhere"})
    (account,) = run()["accounts"]
    assert (account["complete"], account["error"]) == (False, "corrupt_state")
    # A cursor that is no time: refused the same way, every run, until it is mended.
    stack.dynamodb.put_item(
        TableName=stack.table,
        Item={"pk": {"S": "cursor#test-clinic"}, "cursor": {"S": "not-a-date"}},
    )
    (account,) = run()["accounts"]
    assert (account["complete"], account["error"]) == (False, "corrupt_cursor")


def test_minutes_behind_count_from_the_last_poll_that_reached_the_end(stack, cliniko, capsys):
    def behind() -> float:
        return emf_metrics(capsys.readouterr().out)["FeedBehindMinutes"]

    # An account no poll has ever taken to the end reads a day behind (the lag alarm), not 0.
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])
    run()
    assert behind() == 1440
    cliniko.control.clear_faults()
    run()
    assert behind() < 1
    caught_up_hours_ago(stack, 2)
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])
    run()  # never reached the end: still two hours behind
    assert 119 < behind() < 121
    stack.hold_lease()
    run()  # another run holds the account: what the table says
    assert 119 < behind() < 121
    stack.expire_lease()
    cliniko.control.clear_faults()
    run()
    assert behind() < 1


def test_misconfiguration_fails_the_run_naming_the_setting(stack, monkeypatch):
    monkeypatch.delenv("EVENT_BUS_NAME")
    with pytest.raises(SettingsError, match="EVENT_BUS_NAME"):
        run()


def test_a_failed_first_run_still_fixes_where_the_feed_starts(stack, cliniko, monkeypatch):
    # Otherwise the next run would start from its own "now" and miss what changed between.
    monkeypatch.setenv("OVERLAP_SECONDS", "1")
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])
    assert run()["accounts"][0]["error"] == "cliniko_ServerError"
    cliniko.control.clear_faults()
    cliniko.control.churn(4, kinds=["create"])
    time.sleep(2.5)  # longer than the overlap
    assert run()["accounts"][0]["changes"] == 4


def test_a_backfill_date_without_a_zone_is_refused(stack, monkeypatch):
    monkeypatch.setenv("BACKFILL_FROM", "2026-01-01T00:00:00")
    with pytest.raises(SettingsError, match="BACKFILL_FROM"):
        run()


def test_an_account_whose_key_secret_is_missing_fails_alone(stack, cliniko, tmp_path, monkeypatch):
    accounts = tmp_path / "two_accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        "  a-gone-clinic:\n    api_key_secret: tests/cliniko/no-such-secret\n"
        "  test-clinic:\n    api_key_secret: tests/cliniko/test-clinic\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(accounts))
    run()
    cliniko.control.churn(2, kinds=["create"])

    with captured_logs("changefeed") as logs:
        results = {a["account"]: a for a in run()["accounts"]}

    assert results["a-gone-clinic"]["complete"] is False
    assert results["a-gone-clinic"]["error"] == "secret_SecretMissing"
    assert results["test-clinic"]["complete"] is True and results["test-clinic"]["changes"] == 2
    # What to fix, once, with the Misconfigured metric its alarm watches.
    (line,) = [json.loads(line) for line in logs.lines if '"level":"ERROR"' in line]
    assert line["message"].startswith(
        "misconfigured secret 'tests/cliniko/no-such-secret' (cliniko_accounts.yaml "
        "accounts.a-gone-clinic.api_key_secret): no such secret. Fix: create it"
    )
    assert (line["account"], line["reason"]) == ("a-gone-clinic", "secret_missing")


CRM_SUBSCRIBER = """\
subscribers:
  - name: crm-sync
    url: https://crm.example.com/hooks
    events: [contact.created]
    secret: tests/webhooks/crm-sync
"""


@pytest.mark.parametrize(
    ("stored", "reason", "problem"),
    [
        (None, "secret_missing", "no such secret. Fix: create it"),
        (
            '{"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}',
            "secret_not_plain_text",
            "the secret holds a JSON object. Fix: store the value alone",
        ),
        (
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw-not-base64!",
            "secret_misconfigured",
            "a webhook secret is 'whsec_' followed by base64",
        ),
    ],
    ids=["missing", "console-key-value", "not-whsec"],
)
def test_a_subscriber_s_unusable_secret_is_told_once_and_its_changes_wait_for_the_fix(
    stack, cliniko, tmp_path, capsys, stored, reason, problem
):
    # Before: the run raised (a traceback; for a value that was no key, not even the
    # secret's name) and no Misconfigured count. Now one line names the secret, where
    # webhooks.yaml names it and the fix; no account is polled, so every cursor stays and
    # the changes made meanwhile are published, to every subscriber, once the secret is fixed.
    good = subscribed(tmp_path, CRM_SUBSCRIBER, "crm-sync")["crm-sync"]
    run()
    manager = boto3.client("secretsmanager")
    name = "tests/webhooks/crm-sync"
    manager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    if stored is not None:
        manager.create_secret(Name=name, SecretString=stored)
    clear_secret_caches()  # the five minutes a warm process keeps a value have passed
    cliniko.control.churn(2, kinds=["create"])
    asked = len(cliniko.control.requests())
    capsys.readouterr()

    with captured_logs("changefeed") as logs:
        answer = run()

    assert answer == {"error": reason, "secret": name}
    assert len(cliniko.control.requests()) == asked  # no account polled
    (line,) = [json.loads(line) for line in logs.lines if '"level":"ERROR"' in line]
    assert line["message"].startswith(
        f"misconfigured secret '{name}' (webhooks.yaml subscribers.0 (crm-sync).secret): {problem}"
    )
    assert line["reason"] == reason
    assert "Traceback" not in json.dumps(logs.lines)
    if stored is not None:
        assert stored not in json.dumps(logs.lines)
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1
    assert details(stack) == []

    clear_secret_caches()
    manager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    manager.create_secret(Name=name, SecretString=good)
    (account,) = run()["accounts"]
    assert account["changes"] == 2
    assert [d["type"] for d in details(stack)] == ["contact.created"] * 2


def test_a_hash_key_too_short_to_be_one_is_told_as_the_stack_s_secret(stack, cliniko, capsys):
    boto3.client("secretsmanager").put_secret_value(
        SecretId=HASH_KEY_SECRET, SecretString="short-key"
    )
    with captured_logs("changefeed") as logs:
        answer = run()
    assert answer == {"error": "secret_misconfigured", "secret": HASH_KEY_SECRET}
    (line,) = [json.loads(line) for line in logs.lines if '"level":"ERROR"' in line]
    assert line["message"] == (
        f"misconfigured secret '{HASH_KEY_SECRET}' (the stack's ChangeFeedHashKeySecret): "
        "the field-hash key must have at least 16 bytes. Fix: correct the secret"
    )
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1


@pytest.mark.parametrize(
    ("key", "reason", "error"),
    [
        ("MS0xrevokedkey0123456789-au1", "cliniko_unauthorized", "cliniko_Unauthorized"),
        ("MS0xpasted with a space-au1", "cliniko_api_key_malformed", "cliniko_ConfigurationError"),
        ("MS0x" + "k" * 60_000 + "-au1", "cliniko_api_key_malformed", "cliniko_ConfigurationError"),
        (
            '{"api_key": "MS0xpasted-au1"}',
            "secret_not_plain_text",
            "secret_SecretNotPlainText",
        ),
    ],
    ids=["refused", "malformed", "60-kb-paste", "console-key-value"],
)
def test_a_key_cliniko_refuses_or_a_malformed_one_says_what_to_fix(
    stack, cliniko, tmp_path, monkeypatch, capsys, key, reason, error
):
    boto3.client("secretsmanager").create_secret(Name="tests/cliniko/other", SecretString=key)
    accounts = tmp_path / "two_accounts.yaml"
    accounts.write_text(
        "accounts:\n"
        "  other-clinic:\n    api_key_secret: tests/cliniko/other\n"
        "  test-clinic:\n    api_key_secret: tests/cliniko/test-clinic\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(accounts))
    capsys.readouterr()

    with captured_logs("changefeed") as logs:
        results = {a["account"]: a for a in run()["accounts"]}

    assert (results["other-clinic"]["complete"], results["other-clinic"]["error"]) == (False, error)
    assert results["test-clinic"]["complete"] is True
    (line,) = [json.loads(line) for line in logs.lines if '"level":"ERROR"' in line]
    assert line["message"].startswith(
        "misconfigured secret 'tests/cliniko/other' (cliniko_accounts.yaml "
        "accounts.other-clinic.api_key_secret)"
    )
    assert (line["account"], line["reason"]) == ("other-clinic", reason)
    assert "MS0x" not in json.dumps(logs.lines)
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1


def test_a_key_rotated_within_the_cache_is_used_by_the_next_run_without_an_alarm(
    stack, cliniko, capsys
):
    # README "Secrets": the new key put in the secret, then the old one archived in Cliniko,
    # within the five minutes a warm feed keeps the old one: a 401, but nothing to fix.
    run()
    cliniko.control.churn(3, kinds=["create"])
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "new-au1"
    cliniko.control.add_key(new_key)
    boto3.client("secretsmanager").put_secret_value(SecretId=KEY_SECRET, SecretString=new_key)
    cliniko.control.revoke_key(cliniko.api_key)
    capsys.readouterr()

    with captured_logs("changefeed") as logs:
        (account,) = run()["accounts"]
    assert (account["complete"], account["error"]) == (False, "cliniko_key_rotated")
    assert not [line for line in logs.lines if '"level":"ERROR"' in line]
    assert "Misconfigured" not in emf_metrics(capsys.readouterr().out)
    (account,) = run()["accounts"]
    assert (account["complete"], account["changes"]) == (True, 3)


def test_accounts_polled_side_by_side_each_publish_their_changes_once(
    stack, cliniko, tmp_path, monkeypatch
):
    # Three accounts on one Cliniko user (one key, three secrets): each lists the same
    # contacts and publishes its own events; the answer keeps the configured order.
    names = ["clinic-a", "clinic-b", "clinic-c"]
    secrets = boto3.client("secretsmanager")
    accounts = tmp_path / "three_accounts.yaml"
    lines = ["accounts:"]
    for name in names:
        secrets.create_secret(Name=f"tests/cliniko/{name}", SecretString=cliniko.api_key)
        lines.append(f"  {name}:\n    api_key_secret: tests/cliniko/{name}")
    accounts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(accounts))
    run()
    cliniko.control.churn(4, kinds=["create"])

    answer = run()["accounts"]
    again = run()["accounts"]

    assert [a["account"] for a in answer] == names
    assert [(a["complete"], a["changes"], a["events"]) for a in answer] == [(True, 4, 4)] * 3
    published = details(stack)
    assert len(published) == 12
    assert {(e["account"], e["contact_id"]) for e in published} == {
        (name, contact["id"]) for name in names for contact in cliniko.control.contacts()
    }
    assert [a["changes"] for a in again] == [0, 0, 0]


def test_eight_accounts_of_one_cliniko_user_all_poll_under_the_deployed_cap(
    stack, cliniko, tmp_path, monkeypatch
):
    # As deployed: the shared budget, the feed's cap of 20 requests a minute (one each 3 s)
    # and template.yaml's wait limit. A quiet minute is one request an account, 8 of the 20;
    # before, with a 10 s wait, the accounts whose turn came later gave up (cliniko_RateLimited).
    variables = TEMPLATE.resources["ChangeFeedFunction"]["Properties"]["Environment"]["Variables"]
    create_table("RateLimitTable", "rate-limit")
    monkeypatch.setenv("CLINIKO_RATE_LIMIT_TABLE", "rate-limit")
    monkeypatch.setenv("REQUESTS_PER_MINUTE", "20")
    monkeypatch.setenv("CLINIKO_MAX_WAIT_SECONDS", str(variables["CLINIKO_MAX_WAIT_SECONDS"]))
    secrets = boto3.client("secretsmanager")
    lines = ["accounts:"]
    for n in range(8):
        key = cliniko.api_key.rsplit("-", 1)[0] + f"owner{n}-au1"
        cliniko.control.add_key(key, user="owner-1")
        secrets.create_secret(Name=f"tests/cliniko/owner-{n}", SecretString=key)
        lines.append(f"  clinic-{n}:\n    api_key_secret: tests/cliniko/owner-{n}")
        lines.append("    cliniko_user: owner-1")
    accounts = tmp_path / "eight_accounts.yaml"
    accounts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(accounts))

    answer = run()["accounts"]

    assert [a["error"] for a in answer] == [None] * 8
