"""The change feed at DEBUG (with the event logged), polling the emulator while a contact with a
distinctive name, notes, address and company (leak_search.MARKERS) is created, updated and
archived, through a run that fails on Cliniko's 5xx and 429 and an event naming the person as
its accounts: no log line, published event (bus and webhook queue), answer, table, queue or
secret holds any of them.
"""

from __future__ import annotations

from cliniko_automations.changefeed import handler

from tests.e2e.leak_search import leaks, stored_leaks
from tests.e2e.test_no_leaks_at_debug import DEBUG_ENV, captured_lines, everything_at_debug
from tests.integration.changefeed.stack import (
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
    subscribed,
)

SUBSCRIBERS = """\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: [contact.created, contact.updated, contact.archived]
    secret: tests/webhooks/crm-sync
"""

MARKED = {
    "first_name": "Zephyrine",
    "last_name": "Quillfeather",
    "notes": "notes: Qx7marker",
    "address_1": "12 Brindlewood Lane",
    "company_name": "Quillcorp",
    "email": "zq@example.org",
}


def test_the_change_feed_logs_publishes_and_stores_no_name_notes_address_or_company(
    aws, cliniko, tmp_path, monkeypatch, capfd
):
    for name, value in DEBUG_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    stack = create_feed_stack()
    subscribed(tmp_path, SUBSCRIBERS, "crm-sync")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    client = cliniko.client()
    capfd.readouterr()

    with everything_at_debug() as (captured, stdout):
        answers = [handler.lambda_handler(SCHEDULED_EVENT, context())]
        contact = client.create_contact(MARKED)
        answers.append(handler.lambda_handler(SCHEDULED_EVENT, context()))
        client.update_contact(contact.id, {"notes": "Qx7marker again", "city": "Brindlewood"})
        answers.append(handler.lambda_handler(SCHEDULED_EVENT, context()))
        cliniko.control.set_faults(fail_next=[500, 500, 500, 500, 500, 500, 429])
        answers.append(handler.lambda_handler(SCHEDULED_EVENT, context()))
        named = {"accounts": "Zephyrine Quillfeather Qx7marker"}
        answers.append(handler.lambda_handler(named, context()))
        cliniko.control.clear_faults()
        client.archive_contact(contact.id)
        answers.append(handler.lambda_handler(SCHEDULED_EVENT, context()))
        printed = capfd.readouterr()

    # The paths really ran: each change published, the faults failed their run.
    polls = [answer["accounts"][0] if "accounts" in answer else answer for answer in answers]
    assert [poll.get("by_type") for poll in polls] == [
        {},
        {"contact.created": 1},
        {"contact.updated": 1},
        {},
        None,
        {"contact.archived": 1},
    ], polls
    assert polls[3]["error"] == "cliniko_ServerError", polls[3]
    assert "error" in polls[4], polls[4]
    events = stack.drain() + stack.drain(stack.webhook_queue_url)
    assert len(events) == 6, events  # three changes, each on the bus's tap and to the webhook
    lines = captured_lines(captured, stdout, printed)
    assert any('"service":"changefeed"' in line.replace(" ", "") for line in lines), lines
    hits = [
        *leaks("logged", lines),
        *leaks("published", events),
        *leaks("answered", answers),
        *stored_leaks(),
    ]
    assert not hits, "\n".join(hits[:5])
