"""Creates in moto the queues, tables and secrets that template.yaml declares.

Each resource gets a name the way CloudFormation would give one (`<stack>-<LogicalId>`),
and the resulting `Physical` values (Ref and GetAtt) resolve every `!Ref`/`!GetAtt`/`!Sub`
in the functions' environments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from .template import Physical, Resolver, SamApp

# Resource types the local run does not create, and why: they have no behaviour a function
# depends on locally (encryption, logs, alarms, dashboards), or the local run stands in for
# them (the HTTP API is the gateway; functions run in process).
NOT_PROVISIONED = {
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::Logs::LogGroup",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::SQS::QueuePolicy",
    "AWS::IAM::ManagedPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Function",
    # The queue's consumer is local_run's own poller (template.SamApp.sqs_sources reads it).
    "AWS::Lambda::EventSourceMapping",
    # Driven by local_run.state_machine's loop, not by a Step Functions emulation.
    "AWS::Serverless::StateMachine",
}
PROVISIONED = {
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::Events::EventBus",
}


def pseudo_parameters(stack: str, region: str, account: str) -> dict[str, str]:
    return {
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::Region": region,
        "AWS::StackName": stack,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack}/local",
        "AWS::URLSuffix": "amazonaws.com",
    }


class Provisioner:
    def __init__(
        self,
        app: SamApp,
        parameters: Mapping[str, Any],
        *,
        endpoint: str,
        stack: str,
        region: str,
        account: str,
        secret_value: Callable[[str], str],
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.stack = stack
        self.region = region
        self.account = account
        self.secret_value = secret_value
        self.physical: dict[str, Physical] = {}
        self.resolver = Resolver(
            app.template, parameters, self.physical, pseudo_parameters(stack, region, account)
        )

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
        )

    def unknown_types(self) -> set[str]:
        types = {r.get("Type") for r in self.app.resources.values()}
        return types - NOT_PROVISIONED - PROVISIONED

    def provision(self) -> dict[str, Physical]:
        unknown = self.unknown_types()
        if unknown:
            # A new resource type needs a decision here, not a silent gap in the local run.
            raise RuntimeError(f"the local run does not know these types: {sorted(unknown)}")
        self._placeholders()
        self._queues()
        self._tables()
        self._secrets()
        self._event_buses()
        self._functions()
        return self.physical

    def _name(self, logical_id: str) -> str:
        return f"{self.stack}-{logical_id}"

    def _placeholders(self) -> None:
        # Refs to resources that are not created locally still resolve (to a visible name).
        for logical_id, resource in self.app.resources.items():
            if resource["Type"] in NOT_PROVISIONED:
                name = self._name(logical_id)
                self.physical[logical_id] = Physical(
                    ref=f"local-{name}", attributes={"Arn": f"arn:aws:local:::{name}"}
                )

    def _queues(self) -> None:
        sqs = self.client("sqs")
        queues = self.app.of_type("AWS::SQS::Queue")
        for logical_id in queues:
            name = self._name(logical_id)
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.physical[logical_id] = Physical(url, {"Arn": arn, "QueueName": name})
        # Attributes second: a redrive policy names another queue's ARN.
        for logical_id, resource in queues.items():
            props = self.resolver.resolve(resource.get("Properties", {}))
            attributes = {
                key: str(props[key])
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
                if key in props
            }
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            if attributes:
                sqs.set_queue_attributes(
                    QueueUrl=self.physical[logical_id].ref, Attributes=attributes
                )

    def _tables(self) -> None:
        dynamodb = self.client("dynamodb")
        for logical_id, resource in self.app.of_type("AWS::DynamoDB::Table").items():
            props = self.resolver.resolve(resource["Properties"])
            name = props.get("TableName") or self._name(logical_id)
            table: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = [
                    {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                    for index in props["GlobalSecondaryIndexes"]
                ]
            arn = dynamodb.create_table(**table)["TableDescription"]["TableArn"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={
                        "AttributeName": ttl["AttributeName"],
                        "Enabled": True,
                    },
                )
            self.physical[logical_id] = Physical(name, {"Arn": arn})

    def _secrets(self) -> None:
        manager = self.client("secretsmanager")
        for logical_id, resource in self.app.of_type("AWS::SecretsManager::Secret").items():
            props = self.resolver.resolve(resource.get("Properties", {}))
            name = props.get("Name") or self._name(logical_id)
            if "SecretString" in props:
                value = props["SecretString"]
            elif "GenerateSecretString" in props:
                value = self.secret_value(name)
            else:
                raise RuntimeError(f"{logical_id}: no SecretString nor GenerateSecretString")
            arn = manager.create_secret(Name=name, SecretString=value)["ARN"]
            self.physical[logical_id] = Physical(arn, {"Id": arn})

    def _event_buses(self) -> None:
        events = self.client("events")
        for logical_id, resource in self.app.of_type("AWS::Events::EventBus").items():
            props = self.resolver.resolve(resource.get("Properties", {}))
            name = props.get("Name") or self._name(logical_id)
            arn = events.create_event_bus(Name=name)["EventBusArn"]
            self.physical[logical_id] = Physical(name, {"Arn": arn, "Name": name})

    def _functions(self) -> None:
        for logical_id in self.app.functions():
            name = self._name(logical_id)
            arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
            self.physical[logical_id] = Physical(name, {"Arn": arn})

    def put_secret(self, name: str, value: str) -> None:
        """A secret the template does not declare but the configuration names."""
        manager = self.client("secretsmanager")
        try:
            manager.create_secret(Name=name, SecretString=value)
        except manager.exceptions.ResourceExistsException:
            manager.put_secret_value(SecretId=name, SecretString=value)
