"""A signed webhook, end to end: the feed publishes, the rule webhook_stack.py renders routes
it (moto, with the local stand-in for the API destination's HTTP call), and a receiver built on
the Standard Webhooks reference library verifies it."""

from __future__ import annotations

import pytest
from cliniko_automations.common import aws
from local_run.webhooks import SignedWebhookReceiver

from tests.integration.changefeed.stack import (
    create_feed_stack,
    delivering,
    feed_environment,
    new_webhook_secret,
    run_feed,
    subscribed,
)

SUBSCRIBERS = """\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: [contact.created, contact.archived]
    secret: tests/webhooks/crm-sync
  - name: full-copy
    url: https://copy.example.com/in
    events: [contact.created]
    secret: tests/webhooks/full-copy
    include_fields: true
"""


@pytest.fixture
def world(aws, cliniko, tmp_path, monkeypatch):
    stack = create_feed_stack()
    secrets = subscribed(tmp_path, SUBSCRIBERS, "crm-sync", "full-copy")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    with delivering(stack, tmp_path, secrets) as (receivers, stand_in):
        yield stack, receivers, stand_in


def test_a_signed_webhook_is_received_and_verified(world, cliniko):
    _, receivers, stand_in = world
    run_feed()
    client = cliniko.client()
    created = client.create_contact({"first_name": "Zoë", "last_name": "Ångström"})
    assert run_feed()["events"] == 3  # the bus event, and one delivery per subscriber
    assert stand_in.deliver_pending() == 2

    (crm,) = receivers["crm-sync"].received
    assert crm.verified, crm.problem
    assert crm.payload["type"] == "contact.created"
    assert crm.payload["data"]["contact_id"] == created.id
    assert "contact" not in crm.payload["data"]
    assert crm.headers["webhook-id"].startswith("msg_")
    (copy,) = receivers["full-copy"].received
    assert copy.verified, copy.problem
    assert copy.payload["data"]["contact"]["last_name"] == "Ångström"

    client.update_contact(created.id, {"city": "Uppsala"})  # neither subscriber wants updates
    client.archive_contact(created.id)
    run_feed()
    stand_in.deliver_pending()
    assert [r.payload["type"] for r in receivers["crm-sync"].received] == [
        "contact.created",
        "contact.archived",
    ]
    assert len(receivers["full-copy"].received) == 1


def test_a_receiver_with_another_secret_refuses_the_delivery(world, cliniko):
    _, _, stand_in = world
    impostor = SignedWebhookReceiver(new_webhook_secret()).start()
    try:
        stand_in.routes[0].url = impostor.url
        run_feed()
        cliniko.client().create_contact({"first_name": "Alan", "last_name": "Turing"})
        run_feed()
        stand_in.deliver_pending()
        (refused,) = impostor.received
        assert not refused.verified and refused.problem == "No matching signature found"
        assert ("local-CrmSyncRule", 401) in stand_in.deliveries
    finally:
        impostor.stop()


def test_put_events_calls_stay_within_eventbridge_s_256_kb(world, cliniko):
    run_feed()
    client = cliniko.client()
    for n in range(3):  # about 100 KB of fields each, for the subscriber that takes them
        client.create_contact({"first_name": f"Long{n}", "notes": "n" * 100_000})
    calls: list[int] = []

    def measure(params, **_):
        calls.append(
            sum(
                len(e[k].encode())
                for e in params["Entries"]
                for k in ("Source", "DetailType", "Detail")
            )
        )

    emitter = aws.client("events", config=aws.FAIL_FAST).meta.events
    emitter.register("provide-client-params.events.PutEvents", measure, unique_id="measure")
    try:
        result = run_feed()
    finally:
        emitter.unregister("provide-client-params.events.PutEvents", unique_id="measure")
    assert result["complete"] and result["changes"] == 3
    assert len(calls) >= 2 and max(calls) <= 256 * 1024  # 10 entries would have fit one call
