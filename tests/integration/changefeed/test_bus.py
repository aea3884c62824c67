"""EventBridgeSink on moto's EventBridge: entries it refuses are sent again, alone, with a
pause before each new attempt, and what it never took is named in PublishFailed."""

from __future__ import annotations

import boto3
import pytest
from cliniko_automations.changefeed.bus import EventBridgeSink
from cliniko_automations.changefeed.core import PublishFailed
from cliniko_automations.changefeed.events import OutgoingEvent

TAKEN = OutgoingEvent("cliniko-automations.contacts", "contact.created", {"contact_id": "1"})
# EventBridge refuses an entry without a detail type (InvalidArgument), on every attempt.
REFUSED = OutgoingEvent("cliniko-automations.contacts", "", {"contact_id": "2"})


def test_an_entry_refused_on_every_attempt_fails_after_the_last_without_a_pause_after_it(
    aws: str,
) -> None:
    pauses: list[float] = []
    sent: list[int] = []
    client = boto3.client("events")
    client.meta.events.register(
        "provide-client-params.events.PutEvents",
        lambda params, **_: sent.append(len(params["Entries"])),
    )
    sink = EventBridgeSink(client, "default", sleep=pauses.append)
    with pytest.raises(PublishFailed) as failed:
        sink.publish([TAKEN, REFUSED])
    assert failed.value.accepted == frozenset({0})
    assert "1 event not accepted by EventBridge (InvalidArgument)" in str(failed.value)
    assert sent == [2, 1, 1, 1]  # the refused entry alone, once it has been refused
    assert pauses == [0.1, 0.2, 0.4]  # between attempts; none once the last has failed
