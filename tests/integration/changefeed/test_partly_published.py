"""A change EventBridge took only in part (its bus event but not a webhook delivery, or the
other way round, attempt after attempt): what it took is recorded and never sent again, what it
refused is sent by the next run before the contact's next change, which is measured from the
state that change reached."""

from __future__ import annotations

import pytest

from tests.integration.changefeed.stack import (
    create_feed_stack,
    eventbridge_refusing,
    feed_environment,
    run_feed,
    subscribed,
)

SUBSCRIBERS = """\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: [contact.created, contact.updated, contact.archived, contact.unarchived]
    secret: tests/webhooks/crm-sync
    include_fields: true
"""
BUS_SOURCE = "cliniko-automations.contacts"
WEBHOOKS_SOURCE = "cliniko-automations.webhooks"


@pytest.fixture
def stack(aws, cliniko, tmp_path, monkeypatch):
    created = create_feed_stack()
    subscribed(tmp_path, SUBSCRIBERS, "crm-sync")
    feed_environment(monkeypatch, created, cliniko, tmp_path)
    return created


def run_refusing(stack, source: str):
    """A run in which EventBridge refuses every entry from `source` and takes the others (the
    refused ones, which moto routed all the same, are taken off their queue)."""
    try:
        with eventbridge_refusing(lambda entry: entry["Source"] == source):
            return run_feed()
    finally:
        stack.drain(stack.webhook_queue_url if source == WEBHOOKS_SOURCE else None)


def bus(stack):
    return [(e["detail"]["type"], e["detail"]["changed_fields"]) for e in stack.drain()]


def deliveries(stack):
    return [e["detail"] for e in stack.drain(stack.webhook_queue_url)]


def state_item(stack, contact_id):
    return next(i for i in stack.items() if i["pk"]["S"] == f"contact#test-clinic#{contact_id}")


@pytest.fixture
def contact(stack, cliniko):
    """A contact whose creation every subscriber has had."""
    run_feed()
    made = cliniko.client().create_contact({"first_name": "Ada", "last_name": "Lovelace"})
    run_feed()
    assert [kind for kind, _ in bus(stack)] == ["contact.created"]
    assert len(deliveries(stack)) == 1
    return made


def test_an_archive_taken_by_the_bus_alone_then_undone_reaches_everyone_in_order(
    stack, cliniko, contact
):
    cliniko.client().archive_contact(contact.id)
    assert run_refusing(stack, WEBHOOKS_SOURCE)["error"] == "publish_failed"
    assert bus(stack) == [("contact.archived", ["archived_at"])]
    assert deliveries(stack) == []
    cliniko.control.unarchive(contact.id)  # staff restore it before the next run

    assert run_feed()["error"] is None
    # The bus is told it is back, measured from the archive it was told of.
    assert bus(stack) == [("contact.unarchived", ["archived_at"])]
    late, unarchived = deliveries(stack)
    assert (late["body"]["type"], unarchived["body"]["type"]) == (
        "contact.archived",
        "contact.unarchived",
    )
    # The archive's delivery is the one refused (the bus event's id, for receivers to dedupe
    # on); its values are gone with the state it reached, so it says so instead.
    assert late["body"]["data"]["fields_omitted"] == "superseded"
    assert "contact" not in late["body"]["data"]
    assert unarchived["body"]["data"]["contact"]["first_name"] == "Ada"
    assert "unsent" not in state_item(stack, contact.id)
    assert run_feed()["changes"] == 0 and bus(stack) == [] and deliveries(stack) == []


def test_a_field_changed_and_changed_back_is_named_both_times(stack, cliniko, contact):
    client = cliniko.client()
    client.update_contact(contact.id, {"first_name": "Ava"})
    assert run_refusing(stack, WEBHOOKS_SOURCE)["error"] == "publish_failed"
    assert bus(stack) == [("contact.updated", ["first_name"])]
    client.update_contact(contact.id, {"first_name": "Ada"})

    assert run_feed()["error"] is None
    assert bus(stack) == [("contact.updated", ["first_name"])]
    assert [d["body"]["data"]["changed_fields"] for d in deliveries(stack)] == [
        ["first_name"],
        ["first_name"],
    ]


def test_deliveries_refused_run_after_run_wait_in_order_for_one_that_takes_them(
    stack, cliniko, contact
):
    client = cliniko.client()
    client.update_contact(contact.id, {"city": "Lisbon"})
    run_refusing(stack, WEBHOOKS_SOURCE)
    client.update_contact(contact.id, {"city": "Porto"})
    run_refusing(stack, WEBHOOKS_SOURCE)
    # The owed delivery refused again: the contact's next change waits for it.
    (told,) = stack.drain()
    assert (told["detail"]["type"], told["detail"]["changed_fields"]) == (
        "contact.updated",
        ["city"],
    )
    (unsent,) = state_item(stack, contact.id)["unsent"]["L"]
    assert unsent["M"]["event_id"]["S"] == told["detail"]["event_id"]

    assert run_feed()["events"] == 3
    (porto_event,) = stack.drain()
    lisbon, porto = deliveries(stack)
    assert [lisbon["webhook"]["id"], porto["webhook"]["id"]] == [
        told["detail"]["event_id"],
        porto_event["detail"]["event_id"],
    ]
    assert lisbon["body"]["data"]["fields_omitted"] == "superseded"
    assert porto["body"]["data"]["contact"]["city"] == "Porto"
    assert "unsent" not in state_item(stack, contact.id)


def test_an_owed_archive_refused_again_is_not_overtaken_by_the_unarchive(stack, cliniko, contact):
    cliniko.client().archive_contact(contact.id)
    assert run_refusing(stack, BUS_SOURCE)["error"] == "publish_failed"  # the delivery went
    (owed,) = state_item(stack, contact.id)["unsent"]["L"]
    refused = owed["M"]["event_id"]["S"]
    cliniko.control.unarchive(contact.id)  # staff restore it before the next run

    with eventbridge_refusing(lambda entry: f'"event_id":"{refused}"' in entry["Detail"]):
        assert run_feed()["error"] == "publish_failed"
    # (Moto routed the refused entry all the same.) The unarchive did not go ahead of it.
    assert [e for e in stack.drain() if e["detail"]["event_id"] != refused] == []
    assert run_feed()["error"] is None
    assert bus(stack) == [
        ("contact.archived", ["archived_at"]),
        ("contact.unarchived", ["archived_at"]),
    ]


def test_only_what_was_refused_is_sent_again_with_its_values_while_they_hold(
    stack, cliniko, contact
):
    cliniko.client().update_contact(contact.id, {"city": "London"})
    assert run_refusing(stack, WEBHOOKS_SOURCE)["error"] == "publish_failed"
    (told,) = stack.drain()
    (unsent,) = state_item(stack, contact.id)["unsent"]["L"]
    assert unsent["M"]["subscribers"] == {"L": [{"S": "crm-sync"}]}
    assert unsent["M"]["bus"] == {"BOOL": False}
    assert "London" not in str(state_item(stack, contact.id))  # names, never values

    second = run_feed()
    assert (second["error"], second["changes"], second["events"]) == (None, 0, 1)
    assert stack.drain() == []  # the bus event is not sent twice
    (delivery,) = deliveries(stack)
    assert delivery["webhook"]["id"] == told["detail"]["event_id"]
    assert delivery["body"]["data"]["contact"]["city"] == "London"
    assert "unsent" not in state_item(stack, contact.id)


def test_a_bus_event_refused_while_the_delivery_went_is_sent_alone(stack, cliniko, contact):
    cliniko.client().update_contact(contact.id, {"city": "Paris"})
    assert run_refusing(stack, BUS_SOURCE)["error"] == "publish_failed"
    (delivered,) = deliveries(stack)
    assert stack.drain() == []

    assert run_feed()["events"] == 1
    (event,) = stack.drain()
    assert (event["detail"]["type"], event["detail"]["changed_fields"]) == (
        "contact.updated",
        ["city"],
    )
    assert event["detail"]["event_id"] == delivered["webhook"]["id"]
    assert deliveries(stack) == []


def test_a_delivery_owed_to_a_subscriber_since_removed_is_dropped(
    stack, cliniko, contact, tmp_path
):
    cliniko.client().update_contact(contact.id, {"city": "Rome"})
    assert run_refusing(stack, WEBHOOKS_SOURCE)["error"] == "publish_failed"
    stack.drain()
    (tmp_path / "webhooks.yaml").write_text("subscribers: []\n", encoding="utf-8")

    assert run_feed()["events"] == 0
    assert stack.drain() == [] and deliveries(stack) == []
    assert "unsent" not in state_item(stack, contact.id)


def test_an_unreadable_unsent_entry_fails_the_account_by_name(stack, cliniko, contact):
    cliniko.client().update_contact(contact.id, {"city": "Oslo"})
    run_refusing(stack, WEBHOOKS_SOURCE)
    item = state_item(stack, contact.id)
    del item["unsent"]["L"][0]["M"]["subscribers"]
    stack.dynamodb.put_item(TableName=stack.table, Item=item)
    assert (run_feed()["error"]) == "corrupt_state"


def test_an_owed_delivery_keeps_its_values_when_the_next_listing_leaves_a_field_out(
    stack, cliniko, contact
):
    # The contact is still in the state its change reached: a listing that leaves a field out
    # (the seed's shapes: no doctor_type in a list, the country by name) tells nothing
    # changed, so the owed delivery goes with the contact's values, not as superseded.
    changes = {"city": "Lisbon", "country_code": "AU", "doctor_type": "specialist"}
    cliniko.client().update_contact(contact.id, changes)
    assert run_refusing(stack, WEBHOOKS_SOURCE)["error"] == "publish_failed"
    assert bus(stack) == [("contact.updated", ["city", "country_code", "doctor_type"])]
    cliniko.control.set_behaviour(seed_shapes=True)

    assert run_feed()["error"] is None
    assert bus(stack) == []  # nothing changed in Cliniko
    (late,) = deliveries(stack)
    assert "fields_omitted" not in late["body"]["data"]
    assert late["body"]["data"]["contact"]["city"] == "Lisbon"
    assert "unsent" not in state_item(stack, contact.id)
