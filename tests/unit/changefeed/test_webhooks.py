"""Signed deliveries: our signatures checked by the Standard Webhooks reference library
(`standardwebhooks`, an independent implementation of the specification), the subscriber
file, and the stack the subscriber file renders."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
from cliniko_automations.changefeed.changes import ContactSnapshot, FieldHasher, classify
from cliniko_automations.changefeed.events import (
    MAX_CALL_BYTES,
    WEBHOOKS_SOURCE,
    EventBuilder,
    webhook_body,
)
from cliniko_automations.changefeed.signing import (
    BadSigningSecret,
    sign,
    signing_key,
    signing_keys,
)
from cliniko_automations.changefeed.subscribers import DEFAULT_PATH, Subscribers, load_subscribers
from cliniko_automations.changefeed.webhook_stack import render
from cliniko_automations.common.config_file import ConfigError, validated
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
T0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.UTC)


def subscribers(**extra):
    return validated(
        DEFAULT_PATH,
        Subscribers,
        {
            "subscribers": [
                {
                    "name": "crm-sync",
                    "url": "https://hooks.example.com/cliniko",
                    "events": ["contact.created", "contact.archived"],
                    "secret": "cliniko-automations/webhooks/crm-sync",
                    **extra,
                }
            ]
        },
    )


def a_change(**fields):
    snapshot = ContactSnapshot("17", T0, T0, None, {"first_name": "Zoë", **fields})
    hasher = FieldHasher(b"k" * 32)
    return classify("main", snapshot, None, hasher.hashes(snapshot))


def headers(detail):
    webhook = detail["webhook"]
    return {
        "webhook-id": webhook["id"],
        "webhook-timestamp": webhook["timestamp"],
        "webhook-signature": webhook["signature"],
    }


def test_the_reference_library_verifies_our_signature():
    now = int(time.time())
    body = '{"type":"contact.created"}'
    signature = sign(signing_keys(SECRET), "msg_1", now, body)
    assert Webhook(SECRET).verify(
        body, {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": signature}
    ) == {"type": "contact.created"}


def test_a_delivery_event_carries_a_body_and_headers_that_verify():
    builder = EventBuilder(subscribers().subscribers, {"crm-sync": signing_keys(SECRET)}, time.time)
    bus, delivery = builder.events_for(a_change())
    assert delivery.source == WEBHOOKS_SOURCE and delivery.detail_type == "contact.created"
    detail = json.loads(delivery.detail_json())
    assert detail["subscriber"] == "crm-sync"
    body = webhook_body(detail["body"])
    verified = Webhook(SECRET).verify(body, headers(detail))
    assert verified["type"] == "contact.created"
    assert verified["data"]["contact_id"] == "17"
    assert "contact" not in verified["data"] and "Zoë" not in body
    # The webhook id is the event id: the same on a retry, for receivers to dedupe on.
    assert detail["webhook"]["id"] == bus.detail["event_id"]


def test_the_body_says_when_the_contact_changed_and_the_header_when_it_was_signed():
    now = float(int(time.time()))
    builder = EventBuilder(
        subscribers().subscribers, {"crm-sync": signing_keys(SECRET)}, lambda: now
    )
    detail = json.loads(builder.events_for(a_change())[1].detail_json())
    assert detail["webhook"]["timestamp"] == str(int(now))
    verified = Webhook(SECRET).verify(webhook_body(detail["body"]), headers(detail))
    assert verified["timestamp"] == "2026-03-01T10:00:00Z"  # T0, the change's updated_at


def test_a_tampered_body_or_an_old_timestamp_fails_verification():
    builder = EventBuilder(subscribers().subscribers, {"crm-sync": signing_keys(SECRET)}, time.time)
    detail = json.loads(builder.events_for(a_change())[1].detail_json())
    body = webhook_body(detail["body"])
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("17", "18"), headers(detail))
    stale = EventBuilder(
        subscribers().subscribers, {"crm-sync": signing_keys(SECRET)}, lambda: time.time() - 600
    )
    old = json.loads(stale.events_for(a_change())[1].detail_json())
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(webhook_body(old["body"]), headers(old))


def test_fields_are_in_the_body_only_for_a_subscriber_opted_in():
    opted = subscribers(include_fields=True).subscribers
    builder = EventBuilder(opted, {"crm-sync": signing_keys(SECRET)}, time.time)
    bus, delivery = builder.events_for(a_change())
    detail = json.loads(delivery.detail_json())
    verified = Webhook(SECRET).verify(webhook_body(detail["body"]), headers(detail))
    assert verified["data"]["contact"]["first_name"] == "Zoë"
    assert "Zoë" not in bus.detail_json()
    # The signed text is in the detail as put, verbatim: a receiver verifies it whether
    # EventBridge passes `detail.body` on as put or serialises it again compactly in order.
    assert webhook_body(detail["body"]) in delivery.detail_json()


@pytest.mark.parametrize("notes", ["n" * 260_000, "長" * 90_000])
def test_fields_too_large_for_one_put_events_call_are_left_out_and_said_so(notes):
    opted = subscribers(include_fields=True).subscribers
    builder = EventBuilder(opted, {"crm-sync": signing_keys(SECRET)}, time.time)
    events = builder.events_for(a_change(notes=notes))
    assert sum(event.size() for event in events) <= MAX_CALL_BYTES
    detail = json.loads(events[1].detail_json())
    verified = Webhook(SECRET).verify(webhook_body(detail["body"]), headers(detail))
    assert verified["data"]["fields_omitted"] == "too_large"
    assert "contact" not in verified["data"] and verified["data"]["contact_id"] == "17"
    # Notes that fit are sent as they are.
    fits = builder.events_for(a_change(notes="n" * 20_000))[1]
    assert json.loads(fits.detail_json())["body"]["data"]["contact"]["notes"] == "n" * 20_000


def test_a_subscriber_gets_only_the_types_and_accounts_it_asked_for():
    listed = subscribers(accounts=["north"]).subscribers
    builder = EventBuilder(listed, {"crm-sync": signing_keys(SECRET)}, time.time)
    assert len(builder.events_for(a_change())) == 1  # account main: the bus event only
    (subscriber,) = subscribers().subscribers  # contact.created and contact.archived
    assert subscriber.wants("contact.archived", "main")
    assert not subscriber.wants("contact.updated", "main")


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_",
        "whsec_!!notbase64",
        "whsec_" + base64.b64encode(b"short").decode(),
        # Standard Webhooks' keys are 24 to 64 bytes: one byte short is refused.
        "whsec_" + base64.b64encode(b"k" * 23).decode(),
        # URL-safe base64 (`secrets.token_urlsafe`): read leniently, its `-` and `_` dropped,
        # it decodes to another key than the subscriber holds, and every delivery fails there.
        "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff\xbf" + b"k" * 29).decode(),
    ],
)
def test_bad_signing_secrets_are_refused_without_quoting_them(secret):
    with pytest.raises(BadSigningSecret) as raised:
        signing_key(secret)
    assert secret[6:] not in str(raised.value) or secret == "whsec_"


def test_while_a_secret_is_rotated_a_delivery_verifies_with_either_key():
    new = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
    rotating = f"{new} {SECRET}\n"  # the new key first; a paste's line break
    builder = EventBuilder(
        subscribers().subscribers, {"crm-sync": signing_keys(rotating)}, time.time
    )
    detail = json.loads(builder.events_for(a_change())[1].detail_json())
    body = webhook_body(detail["body"])
    assert detail["webhook"]["signature"].count("v1,") == 2
    # The reference library, with the receiver's old secret, then with its new one.
    assert Webhook(SECRET).verify(body, headers(detail))["data"]["contact_id"] == "17"
    assert Webhook(new).verify(body, headers(detail))["data"]["contact_id"] == "17"
    # The rotation done: the old key no longer verifies.
    builder = EventBuilder(subscribers().subscribers, {"crm-sync": signing_keys(new)}, time.time)
    detail = json.loads(builder.events_for(a_change())[1].detail_json())
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(webhook_body(detail["body"]), headers(detail))


@pytest.mark.parametrize("secret", ["", "  ", f"{SECRET} {SECRET} {SECRET}", f"{SECRET} whsec_!!"])
def test_a_secret_of_no_key_more_than_two_or_a_bad_one_is_refused(secret):
    with pytest.raises(BadSigningSecret):
        signing_keys(secret)


def test_a_secret_of_the_shortest_key_the_standard_allows_is_taken():
    # README: "`whsec_` + base64 of at least 24 bytes": an operator's key of exactly 24 works.
    key = bytes(range(24))
    assert signing_key("whsec_" + base64.b64encode(key).decode()) == key


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"url": "http://hooks.example.com"}, "https"),
        ({"url": "https://{{resolve:secretsmanager:cliniko-key}}.example.com"}, "template"),
        ({"url": "https://hooks.example.com/${AWS::AccountId}"}, "template"),
        ({"url": "https://hooks.example.com/a b"}, "spaces"),
        ({"url": "https://hooks.example.com:99999/"}, "port"),
        ({"url": "https://hooks.example.com:0/"}, "port"),
        ({"url": "https://crm:pw@hooks.example.com/in"}, "without credentials"),
        # What EventBridge's InvocationEndpoint refuses (cfn-lint E3031): caught here, not
        # at the webhook stack's deploy.
        ({"url": "https://hooks.example.com/in#crm"}, "API destination"),
        ({"url": "https://hööks.example.com/in"}, "API destination"),
        ({"url": "https://[2001:db8::1]/in"}, "API destination"),
        ({"url": "https://hooks.example.com/" + "a" * 2100}, "API destination"),
        ({"url": "https://hooks.example.com/" + "a" * 2023}, "at most 2048 characters"),
        # EventBridge's connections are public: an address only this network reaches (the
        # instance metadata's among them, in any of the forms a resolver reads) or a name only
        # a local resolver knows would send every delivery to the dead-letter queue.
        ({"url": "https://169.254.169.254/latest"}, "public address"),
        ({"url": "https://10.0.0.5:8443/in"}, "public address"),
        ({"url": "https://127.0.0.1/in"}, "public address"),
        ({"url": "https://2130706433/in"}, "public host name"),
        ({"url": "https://0x7f000001/in"}, "public host name"),
        ({"url": "https://0177.0.0.1/in"}, "public host name"),
        ({"url": "https://localhost/in"}, "public host name"),
        ({"url": "https://hooks.localhost/in"}, "not one under .localhost"),
        ({"url": "https://crm.internal/in"}, "not one under .internal"),
        ({"url": "https://hooks_example.com/in"}, "letters, digits and hyphens"),
        ({"url": "https://-bad..host/in"}, "letters, digits and hyphens"),
        ({"url": "https://@hooks.example.com/in"}, "without credentials"),
        ({"url": "HTTPS://hooks.example.com/in"}, "lower case"),
        ({"rate_per_second": 301}, "rate_per_second"),  # an API destination's most
        ({"events": ["contact.deleted"]}, "events"),
        ({"events": ["contact.created", "contact.updated", "contact.created"]}, "repeat"),
        ({"accounts": ["main-clinic", "main-clinic"]}, "repeat"),
        ({"name": "Bad Name"}, "name"),
    ],
)
def test_subscriber_mistakes_are_refused(change, problem):
    with pytest.raises(ConfigError, match=problem):
        subscribers(**change)


@pytest.mark.parametrize(
    "url", ["https://52.94.76.10/in", "https://hooks.example.com:8443/in?to=crm", "https://x.io"]
)
def test_a_public_address_or_host_name_is_taken(url):
    assert subscribers(url=url).subscribers[0].url == url


def test_each_subscriber_signs_with_its_own_secret():
    # Two receivers holding one secret could each forge deliveries to the other.
    shared = several("crm", "billing")
    shared["subscribers"][1]["secret"] = shared["subscribers"][0]["secret"]
    with pytest.raises(ConfigError, match="a signing secret of its own"):
        validated(DEFAULT_PATH, Subscribers, shared)


def test_an_auth_secret_that_is_a_signing_secret_is_refused():
    # The auth token travels in clear in every delivery's header.
    sent = several("crm", "billing")
    sent["subscribers"][1]["auth_secret"] = sent["subscribers"][0]["secret"]
    with pytest.raises(ConfigError, match="must not be a signing secret: billing"):
        validated(DEFAULT_PATH, Subscribers, sent)


def test_an_auth_secret_that_may_hold_another_function_s_secret_is_refused(tmp_path, capsys):
    from cliniko_automations.changefeed import subscribers as command
    from cliniko_automations.common.accounts import load_accounts

    key = load_accounts().secret_references()[0][1]
    for auth, problem in [
        (key, "is a Cliniko API key's secret"),
        ("cliniko-automations/forms/crm/token", "is sent to the receiver in every delivery"),
    ]:
        path = webhooks_file(tmp_path, more=f"    auth_secret: {auth}\n")
        assert command.main(["--check", str(path)]) != 0
        assert f"subscribers.0 (crm-sync).auth_secret: {auth!r} {problem}" in (
            capsys.readouterr().err
        )
    path = webhooks_file(tmp_path, more="    auth_secret: cliniko-automations/webhooks/crm-tk\n")
    assert command.main(["--check", str(path)]) == 0


def several(*names, events=("contact.created",)):
    return {
        "subscribers": [
            {
                "name": name,
                "url": f"https://hooks.example.com/{name}",
                "events": list(events),
                "secret": f"cliniko-automations/webhooks/{name}",
            }
            for name in names
        ]
    }


def test_names_that_name_one_stack_resource_are_refused():
    # crm-1 and crm1 are both Crm1 in the webhook stack: one would get no rule.
    with pytest.raises(ConfigError, match="crm-1 and crm1"):
        validated(DEFAULT_PATH, Subscribers, several("crm-1", "crm1", "other"))


def test_names_that_differ_by_their_hyphens_alone_are_refused():
    # crm and c-rm give CrmRule and CRmRule: README's rule, names differing by more than
    # their hyphens, refuses them too, naming both.
    with pytest.raises(ConfigError, match=r"differ by more than their hyphens.*: crm and c-rm$"):
        validated(DEFAULT_PATH, Subscribers, several("crm", "c-rm", "other"))


def test_a_change_s_event_and_deliveries_fit_one_put_events_call():
    nine = [f"hook-{n}" for n in range(9)]
    assert len(validated(DEFAULT_PATH, Subscribers, several(*nine)).subscribers) == 9
    with pytest.raises(ConfigError, match="at most 9 subscribers per event type"):
        validated(DEFAULT_PATH, Subscribers, several(*nine, "hook-9"))


def webhooks_file(tmp_path, *, under="cliniko-automations/", more=""):
    """A webhooks.yaml of one subscriber, its signing secret named `under` a prefix, `more`
    its further lines."""
    path = tmp_path / "webhooks.yaml"
    path.write_text(
        "subscribers:\n"
        "  - name: crm-sync\n"
        "    url: https://hooks.example.com/cliniko\n"
        "    events: [contact.created]\n"
        f"    secret: {under}webhooks/crm-sync\n" + more,
        encoding="utf-8",
    )
    return path


def test_a_subscriber_naming_an_account_not_in_the_accounts_file_is_refused(tmp_path):
    path = webhooks_file(tmp_path, more="    accounts: [main-clinic, no-such-clinic]\n")
    with pytest.raises(ConfigError, match="'no-such-clinic' is not in the Cliniko accounts file"):
        load_subscribers(path, {"main-clinic": object()})
    assert load_subscribers(path, {"main-clinic": 1, "no-such-clinic": 2}).subscribers


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        # An empty list would deliver nothing; leaving the key out means every account.
        (
            "    accounts: []\n",
            "subscribers.0 (crm-sync).accounts: List should have at least 1 item",
        ),
        # Read as false here, but "false" is true to the feed that builds the file unchecked
        # from the build's JSON: the contact's fields would go out.
        (
            "    include_fields: 'false'\n",
            "subscribers.0 (crm-sync).include_fields: 'false' is read as false: write false itself",
        ),
        (
            "    rate_per_second: 5.0\n",
            "subscribers.0 (crm-sync).rate_per_second: 5.0 is read as 5",
        ),
        (
            "    accounts: !!set {main-clinic}\n",
            "subscribers.0 (crm-sync).accounts: {'main-clinic'} is read as a list: "
            "write a list itself",
        ),
    ],
)
def test_a_value_read_otherwise_than_written_is_refused(tmp_path, more, expected):
    path = webhooks_file(tmp_path, more=more)
    with pytest.raises(ConfigError) as caught:
        load_subscribers(path, {"main-clinic": 1})
    [problem] = caught.value.problems
    assert problem.startswith(expected), problem


def test_a_subscriber_left_to_its_defaults():
    # webhooks.yaml: every account, no contact fields, 5 deliveries a second.
    (subscriber,) = subscribers().subscribers
    assert (subscriber.accounts, subscriber.include_fields) == (None, False)
    assert subscriber.rate_per_second == 5


def test_a_signing_secret_outside_the_secrets_prefix_is_refused(tmp_path, capsys):
    # The feed reads every subscriber's secret at each poll, and IAM lets it read only under
    # SecretsPrefix: one outside would stop the feed for every account, deployed.
    from cliniko_automations.changefeed import subscribers as command

    path = webhooks_file(tmp_path, under="elsewhere/")
    assert command.main(["--check", str(path)]) != 0
    assert "subscribers.0 (crm-sync).secret: secret 'elsewhere/webhooks/crm-sync' is outside" in (
        capsys.readouterr().err
    )
    assert command.main(["--check", str(path), "--secrets-prefix", "elsewhere/"]) == 0
    # Every subscriber's, not the first one's alone.
    second = "  - {name: crm-two, url: 'https://hooks.example.com/two', events: [contact.created],"
    path.write_text(
        webhooks_file(tmp_path).read_text() + second + " secret: elsewhere/webhooks/two}\n"
    )
    assert command.main(["--check", str(path)]) != 0
    assert "subscribers.1 (crm-two).secret: secret 'elsewhere/webhooks/two' is outside" in (
        capsys.readouterr().err
    )


def test_the_rendered_stack_delivers_by_api_destination_with_aws_retries():
    template = render(subscribers(rate_per_second=3))
    resources = template["Resources"]
    destination = resources["CrmSyncDestination"]["Properties"]
    assert destination["InvocationEndpoint"] == "https://hooks.example.com/cliniko"
    assert destination["InvocationRateLimitPerSecond"] == 3
    connection = resources["CrmSyncConnection"]["Properties"]
    assert "crm-sync" not in json.dumps(connection["AuthParameters"])  # never the signing secret
    rule = resources["CrmSyncRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": [WEBHOOKS_SOURCE],
        "detail-type": ["contact.created", "contact.archived"],
        "detail": {"subscriber": ["crm-sync"]},
    }
    (target,) = rule["Targets"]
    assert target["InputPath"] == "$.detail.body"
    assert target["HttpParameters"]["HeaderParameters"] == {
        "webhook-id": "$.detail.webhook.id",
        "webhook-timestamp": "$.detail.webhook.timestamp",
        "webhook-signature": "$.detail.webhook.signature",
    }
    # Retries stop when a receiver would refuse the signature's age; then the dead letters.
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 300
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}}


def test_the_webhook_dead_letter_queue_takes_eventbridge_writes():
    # EventBridge sends dead letters as events.amazonaws.com: a queue under the AWS-managed
    # KMS key (whose policy admits only the account's callers) would drop every one of them.
    stack = render(subscribers())
    properties = stack["Resources"]["WebhookDeadLetterQueue"]["Properties"]
    assert properties["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in properties
    # A receiver down for days: its deliveries wait 14 days (SQS's longest) for a replay.
    assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_shipped_subscriber_file_is_valid():
    from cliniko_automations.changefeed.subscribers import load_subscribers

    assert load_subscribers().subscribers == []
