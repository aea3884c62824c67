"""Which AWS calls a function's role in template.yaml does not allow.

moto evaluates no IAM policy, so a permission missing from a function's role would only show
in AWS. The packaging smoke test traces every AWS call a handler makes
(local_run/call_tracer.py); this matches each one against the function's policy statements,
resolved against the moto stack: the action (IAM wildcards) and the resource's ARN, built
from the table, index, queue, secret or event bus the call named; a statement that denies it
refuses it whatever another allows, as IAM does. Conditions (such as `dynamodb:LeadingKeys`)
are not evaluated: the template tests pin those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from local_run.template import Resolver

# boto3's service names whose IAM prefix differs.
_IAM_PREFIX = {"stepfunctions": "states"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(resolver: Resolver, service: str, resource: str) -> str:
    region, account = resolver.pseudo["AWS::Region"], resolver.pseudo["AWS::AccountId"]
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _sam_template(resolver: Resolver, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The statement SAM writes for the policy templates this template uses (`arguments`
    already resolved)."""
    if name == "SQSSendMessagePolicy":
        queue = arguments["QueueName"]
        return {"Action": "sqs:SendMessage*", "Resource": _arn(resolver, "sqs", queue)}
    if name == "LambdaInvokePolicy":
        resource = _arn(resolver, "lambda", f"function:{arguments['FunctionName']}*")
        return {"Action": "lambda:InvokeFunction", "Resource": resource}
    raise AssertionError(f"the call check does not know SAM's policy template {name}")


def role_statements(resolver: Resolver, function: str) -> list[dict[str, Any]]:
    """The statements of `function`'s policies (Allow and Deny), resolved against the stack (a
    policy under a false `Fn::If` drops out)."""
    resource = resolver.template["Resources"][function]
    statements: list[dict[str, Any]] = []
    for policy in resolver.resolve(resource["Properties"].get("Policies", [])):
        for name, value in policy.items():
            if name == "Statement":
                statements.extend(value)
            else:
                statements.append(_sam_template(resolver, name, value))
    return statements


def _call_arn(resolver: Resolver, service: str, named: str | None) -> str | None:
    if named is None:
        return None
    if named.startswith("arn:"):
        return named
    if service == "dynamodb":
        return _arn(resolver, "dynamodb", f"table/{named}")
    if service == "sqs":
        return _arn(resolver, "sqs", named)
    if service == "events":
        return _arn(resolver, "events", f"event-bus/{named}")
    if service == "secretsmanager":
        # A secret's ARN ends in "-" and 6 random characters: the stack's own secrets have
        # theirs, any other gets one made up.
        arn = _arn(resolver, "secretsmanager", f"secret:{named}-")
        own = [
            p.ref
            for p in resolver.physical.values()
            if p.ref.startswith(arn) and len(p.ref) == len(arn) + 6
        ]
        return own[0] if own else arn + "AbCdEf"
    raise AssertionError(f"the call check cannot name the resource of a {service} call")


def allows(statements: Iterable[Mapping[str, Any]], action: str, arn: str | None) -> bool:
    """Whether `statements` let `action` on `arn`: one allows it and none denies it (a call
    that named no resource is refused by no Deny: which resource it reached is not known)."""
    matching = [s.get("Effect", "Allow") for s in statements if _matches(s, action, arn)]
    return "Allow" in matching and (arn is None or "Deny" not in matching)


def _matches(statement: Mapping[str, Any], action: str, arn: str | None) -> bool:
    if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
        return False
    if arn is None:  # the call named no resource the tracer records: the action must do
        return True
    return any(fnmatchcase(arn, pattern) for pattern in _listed(statement["Resource"]))


def calls_not_allowed(
    resolver: Resolver, function: str, calls: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Each traced AWS call of `function` that its role does not allow (no statement allows
    it, or one denies it)."""
    statements = role_statements(resolver, function)
    refused = []
    for call in calls:
        if call["kind"] != "aws":
            continue
        for action, arn in _authorised(resolver, call["what"], call["resource"]):
            if not allows(statements, action, arn):
                refused.append(f"{action} on {arn}")
    return sorted(set(refused))


def _authorised(resolver: Resolver, what: str, named: str | None) -> list[tuple[str, str | None]]:
    """The (action, resource ARN) pairs IAM authorises for one call."""
    service, operation = what.split(".", 1)
    if service == "dynamodb" and operation in _TRANSACTION_PARTS:
        # No IAM action of its own: each part is authorised as its single-item action.
        parts = [part.split(":", 1) for part in (named or "").split(";") if part]
        return [
            (f"dynamodb:{_TRANSACTION_PARTS[operation][kind]}", _call_arn(resolver, service, table))
            for kind, table in parts
        ]
    if service == "sqs" and operation.endswith("Batch"):
        operation = operation.removesuffix("Batch")  # SQS authorises a batch as its action
    return [
        (f"{_IAM_PREFIX.get(service, service)}:{operation}", _call_arn(resolver, service, named))
    ]


_TRANSACTION_PARTS = {
    "TransactWriteItems": {
        "Put": "PutItem",
        "Update": "UpdateItem",
        "Delete": "DeleteItem",
        "ConditionCheck": "ConditionCheckItem",
    },
    "TransactGetItems": {"Get": "GetItem"},
}
