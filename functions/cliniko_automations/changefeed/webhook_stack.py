"""The webhook subscribers (webhooks.yaml) as a CloudFormation stack of EventBridge rules with
API destinations: AWS delivers, retries and rate-limits; nothing here sends HTTP.

Per subscriber: a Connection (the auth EventBridge adds to every request), an ApiDestination
(its URL and InvocationRateLimitPerSecond), a Rule on the contacts bus matching that
subscriber's deliveries, whose target sends `detail.body` (InputPath) with the Standard
Webhooks headers taken from the event (HttpParameters JSON paths), retries for at most 5
minutes (a receiver refuses a signature older than that) and then dead-letters to an SQS queue.

    python -m cliniko_automations.changefeed.webhook_stack [webhooks.yaml] > webhooks.json
    sam deploy --template-file webhooks.json --stack-name <stack>-webhooks \\
        --parameter-overrides EventBusName=<the ContactEventBusName output> ...
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("webhook_stack")

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from cliniko_automations.common.operator_cli import parsed_arguments, run_tool

from .events import WEBHOOKS_SOURCE
from .subscribers import Subscriber, Subscribers, load_subscribers, logical_name

# Standard Webhooks' default tolerance: a delivery signed longer ago than this is refused by
# the receiver, so AWS stops retrying then and the dead-letter queue keeps it for a replay.
MAX_EVENT_AGE_SECONDS = 300
# Connections and API destinations are named `webhook-<stack id>-<subscriber>`: EventBridge
# allows 64 characters, which the stack's name (up to 128) and a subscriber's (up to 40) can
# pass, so the stack is told by the first 8 hex digits of its id, unique in the account.
NAME_PREFIX = "webhook-${StackId}-"


def _stack_named(text: str) -> dict[str, Any]:
    """`text` with `${StackId}` the first part of the stack's id (a UUID), for names that
    cannot take the stack's whole name."""
    uuid = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    return {"Fn::Sub": [text, {"StackId": {"Fn::Select": [0, {"Fn::Split": ["-", uuid]}]}}]}


# The headers a target copies from the event (the whole value must be a JSON path).
HEADER_PATHS = {
    "webhook-id": "$.detail.webhook.id",
    "webhook-timestamp": "$.detail.webhook.timestamp",
    "webhook-signature": "$.detail.webhook.signature",
}
BODY_PATH = "$.detail.body"


def event_pattern(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "source": [WEBHOOKS_SOURCE],
        "detail-type": list(subscriber.events),
        "detail": {"subscriber": [subscriber.name]},
    }


def render(subscribers: Subscribers) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "WebhookDeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            # SQS-managed encryption, not the AWS-managed KMS key the stack's own queues use:
            # EventBridge writes the dead letters as events.amazonaws.com, which that key's
            # policy (not editable) does not let in, so every dead letter would be dropped.
            "Properties": {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600},
        },
        "WebhookDeliveryRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "InvokeWebhookDestinations",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": "events:InvokeApiDestination",
                                    # IAM names a destination without its ARN's id.
                                    "Resource": _stack_named(
                                        "arn:${AWS::Partition}:events:${AWS::Region}:"
                                        "${AWS::AccountId}:api-destination/" + NAME_PREFIX + "*"
                                    ),
                                }
                            ],
                        },
                    }
                ],
            },
        },
        "WebhookDeadLetterAlarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": (
                    "Webhook deliveries failed for 5 minutes and wait in the dead-letter queue. "
                    "Fix the receiver, then: python -m "
                    "cliniko_automations.changefeed.webhook_dead_letters list | replay --all"
                ),
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [
                    {
                        "Name": "QueueName",
                        "Value": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]},
                    }
                ],
                "Statistic": "Maximum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": "AlarmTopicArn"}],
                # The queue emptied (the letters replayed or deleted): told as the main
                # stack's dead-letter alarms tell it.
                "OKActions": [{"Ref": "AlarmTopicArn"}],
            },
        },
    }
    rule_arns = []
    for subscriber in subscribers.subscribers:
        name = logical_name(subscriber.name)
        resources[f"{name}Connection"] = {
            "Type": "AWS::Events::Connection",
            "Properties": {
                "Name": _stack_named(NAME_PREFIX + subscriber.name),
                "Description": f"Auth for webhook subscriber {subscriber.name}.",
                # The signature is the receiver's proof; the connection's key (a token from
                # `auth_secret`, or a fixed sender name) is a second check it may make.
                "AuthorizationType": "API_KEY",
                "AuthParameters": {
                    "ApiKeyAuthParameters": {
                        "ApiKeyName": "x-webhook-sender",
                        "ApiKeyValue": (
                            "{{resolve:secretsmanager:" + subscriber.auth_secret + ":SecretString}}"
                            if subscriber.auth_secret
                            # Never the signing secret: it would travel in every request.
                            else "cliniko-automations"
                        ),
                    }
                },
            },
        }
        resources[f"{name}Destination"] = {
            "Type": "AWS::Events::ApiDestination",
            "Properties": {
                "Name": _stack_named(NAME_PREFIX + subscriber.name),
                "ConnectionArn": {"Fn::GetAtt": [f"{name}Connection", "Arn"]},
                "HttpMethod": "POST",
                "InvocationEndpoint": subscriber.url,
                "InvocationRateLimitPerSecond": subscriber.rate_per_second,
            },
        }
        resources[f"{name}Rule"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": f"Signed contact events for webhook subscriber {subscriber.name}.",
                "EventBusName": {"Ref": "EventBusName"},
                "EventPattern": event_pattern(subscriber),
                "Targets": [
                    {
                        "Id": "webhook",
                        "Arn": {"Fn::GetAtt": [f"{name}Destination", "Arn"]},
                        "RoleArn": {"Fn::GetAtt": ["WebhookDeliveryRole", "Arn"]},
                        "InputPath": BODY_PATH,
                        "HttpParameters": {"HeaderParameters": dict(HEADER_PATHS)},
                        "RetryPolicy": {
                            "MaximumEventAgeInSeconds": MAX_EVENT_AGE_SECONDS,
                            "MaximumRetryAttempts": 185,
                        },
                        "DeadLetterConfig": {
                            "Arn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
                        },
                    }
                ],
            },
        }
        rule_arns.append({"Fn::GetAtt": [f"{name}Rule", "Arn"]})
    resources["WebhookDeadLetterQueuePolicy"] = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": "WebhookDeadLetterQueue"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "RulesDeadLetter",
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]},
                        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                    }
                ],
            },
        },
    }
    template: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09"}
    if not rule_arns:
        del resources["WebhookDeadLetterQueuePolicy"]
        # No rule reads the bus yet (the shipped webhooks.yaml), but the parameter stays, so
        # that adding a subscriber is a redeploy with the same overrides: cfn-lint (and `sam
        # validate --lint`) would fail the template on the unused parameter.
        template["Metadata"] = {"cfn-lint": {"config": {"ignore_checks": ["W2001"]}}}
    return {
        **template,
        "Description": "Signed webhooks of the Cliniko contacts change feed (webhooks.yaml).",
        "Parameters": {
            "EventBusName": {
                "Type": "String",
                "Description": "The main stack's ContactEventBusName output.",
            },
            "AlarmTopicArn": {
                "Type": "String",
                "Description": "The main stack's AlarmTopicArn output.",
            },
        },
        "Resources": resources,
        "Outputs": {
            "WebhookDeadLetterQueueUrl": {"Value": {"Ref": "WebhookDeadLetterQueue"}},
            # The main stack's WebhookDeadLetterQueueArn: erasure reaches the letters then.
            "WebhookDeadLetterQueueArn": {
                "Value": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
            },
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cliniko_automations.changefeed.webhook_stack",
        description="Render the webhook subscribers as a CloudFormation template (JSON).",
    )
    parser.add_argument("path", nargs="?", help="the subscribers file (default: webhooks.yaml)")
    args = parsed_arguments("webhook_stack", parser, argv)

    def rendered() -> int:
        print(json.dumps(render(load_subscribers(args.path)), indent=2))
        return 0

    return run_tool("webhook_stack", rendered, aws_calls=False)


if __name__ == "__main__":
    sys.exit(main())
