"""template.yaml's structure: every reference resolves, and the contract's names are there."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cliniko_automations.common import cliniko_settings
from cliniko_automations.common.settings import is_required
from cliniko_automations.common.submission_store import EMAIL_INDEX, NAME_INDEX
from local_run.template import PSEUDO_PARAMETERS, SamApp, load, sub_variables

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE.get("Parameters", {})
CONDITIONS = TEMPLATE.get("Conditions", {})
APP = SamApp(TEMPLATE)
FUNCTIONS = APP.functions()


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _references() -> list[tuple[str, str]]:
    """(kind, target) for every Ref, GetAtt, Sub variable and Condition use in the template."""
    found = []
    for node in _walk(TEMPLATE):
        if len(node) != 1:
            continue
        ((key, value),) = node.items()
        if key == "Ref":
            found.append(("Ref", value))
        elif key == "Fn::GetAtt":
            found.append(("GetAtt", value[0] if isinstance(value, list) else value.split(".")[0]))
        elif key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else value
            for name in sub_variables(text):
                if name not in variables:
                    found.append(("Sub", name.split(".")[0]))
        elif key == "Fn::If":
            found.append(("Condition", value[0]))
        elif key == "Condition" and isinstance(value, str):
            found.append(("Condition", value))
    for resource in RESOURCES.values():
        if "Condition" in resource:
            found.append(("Condition", resource["Condition"]))
    return found


def test_references_are_found():
    # The walk itself must see the template's references, or the next test proves nothing.
    kinds = {kind for kind, _ in _references()}
    assert {"Ref", "GetAtt", "Sub", "Condition"} <= kinds


@pytest.mark.parametrize(("kind", "target"), sorted(set(_references())))
def test_every_reference_has_a_target(kind: str, target: str):
    if kind == "Condition":
        assert target in CONDITIONS
    elif kind == "GetAtt":
        assert target in RESOURCES
    else:
        assert target in RESOURCES or target in PARAMETERS or target in PSEUDO_PARAMETERS


def test_every_parameter_is_used():
    used = {target for kind, target in _references() if kind in ("Ref", "Sub")}
    assert set(PARAMETERS) - used == set()


HANDLERS = {
    "IntakeApiFunction": "cliniko_automations.intake_api.handler.lambda_handler",
    "IntakeWorkerFunction": "cliniko_automations.intake_worker.handler.lambda_handler",
    "ErasureApiFunction": "cliniko_automations.erasure.api_handler.lambda_handler",
    "ErasureOverdueFunction": "cliniko_automations.erasure.overdue_handler.lambda_handler",
    "CleanupFunction": "cliniko_automations.cleanup.handler.lambda_handler",
    "ChangeFeedFunction": "cliniko_automations.changefeed.handler.lambda_handler",
}


def test_functions_and_handlers_are_the_contracts():
    assert {name: spec.handler for name, spec in FUNCTIONS.items()} == HANDLERS


@pytest.mark.parametrize("handler", sorted(HANDLERS.values()))
def test_handler_module_exists_in_functions(handler: str):
    module = handler.rpartition(".")[0]
    assert importlib.util.find_spec(module) is not None
    path = Path(importlib.util.find_spec(module).origin)
    assert (ROOT / "functions") in path.parents


def test_globals_runtime_architecture_logging_and_powertools():
    function = TEMPLATE["Globals"]["Function"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["Tracing"] == "Active"
    namespace = function["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    # One namespace per stack (test_two_stacks_in_one_account_and_region_...).
    assert namespace == {"Fn::Sub": "ClinikoAutomations/${AWS::StackName}"}
    # What `cleanup.py --local` gives a step run without one: the deployed namespaces' root.
    script = importlib.util.spec_from_file_location("cleanup_cli", ROOT / "scripts" / "cleanup.py")
    assert script and script.loader
    cleanup_cli = importlib.util.module_from_spec(script)
    script.loader.exec_module(cleanup_cli)
    assert namespace["Fn::Sub"].startswith(cleanup_cli.METRICS_NAMESPACE + "/")
    assert function["CodeUri"] == "build/staged/"
    for name, spec in FUNCTIONS.items():
        service = spec.environment.get("POWERTOOLS_SERVICE_NAME")
        # The metric dimension `service` the alarms and the dashboard select on.
        expected = next(
            s for s in ("intake", "erasure", "cleanup", "changefeed") if name.lower().startswith(s)
        )
        assert service == expected, name


CONTRACT_ENV = {
    "IntakeApiFunction": {
        "SUBMISSION_QUEUE_URL",
        "SUBMISSION_TABLE",
        "PEPPER_SECRET_NAME",
        "MAX_BODY_BYTES",
        "CLINIKO_USER_AGENT",
    },
    "IntakeWorkerFunction": {
        "IDEMPOTENCY_TABLE",
        "LEDGER_TABLE",
        "SUBMISSION_TABLE",
        "PARKED_QUEUE_URL",
        "CLINIKO_USER_AGENT",
    },
    "CleanupFunction": {"LEDGER_TABLE", "CLEANUP_DRY_RUN", "CLINIKO_USER_AGENT"},
    "ErasureApiFunction": {
        "AUDIT_TABLE",
        "IDEMPOTENCY_TABLE",
        "SUBMISSION_TABLE",
        "PEPPER_SECRET_NAME",
        "CLINIKO_API_KEY_SECRET_NAME",
        "CLINIKO_USER_AGENT",
    },
    "ErasureOverdueFunction": {"AUDIT_TABLE"},
    "ChangeFeedFunction": {
        "FEED_TABLE",
        "EVENT_BUS_NAME",
        "HASH_KEY_SECRET_NAME",
        "REQUESTS_PER_MINUTE",
        "CLINIKO_USER_AGENT",
    },
}


@pytest.mark.parametrize("name", sorted(CONTRACT_ENV))
def test_function_environment_has_the_contracts_variables(name: str):
    assert CONTRACT_ENV[name] <= set(FUNCTIONS[name].environment)


def test_routes_and_auth():
    routes = {(r.route_key, r.function, r.authorizer) for r in APP.http_routes()}
    assert routes == {
        ("POST /forms/{source}", "IntakeApiFunction", None),
        ("POST /erasure-requests", "ErasureApiFunction", "AWS_IAM"),
        ("GET /erasure-requests/{id}", "ErasureApiFunction", "AWS_IAM"),
        ("POST /erasure-requests/{id}/extension", "ErasureApiFunction", "AWS_IAM"),
    }
    cors = APP.cors()
    assert cors["AllowOrigins"] == {"Ref": "AllowedOrigins"}


@pytest.mark.parametrize(
    ("origin", "deploys"),
    [
        ("https://www.example-clinic.com.au", True),
        ("https://clinic.example:8443", True),
        ("http://localhost:3000", True),  # samconfig's dev value
        ("http://127.0.0.1:8000", True),  # the local run's site
        # A browser's Origin is scheme://host[:port], lower case: API Gateway's CORS compares
        # the text, so each of these deployed and answered no page's preflight (the form's
        # script calls failed in the browser, nowhere in the stack's logs).
        ("https://www.example-clinic.com.au/", False),
        ("https://www.example-clinic.com.au/contact", False),
        ("www.example-clinic.com.au", False),
        ("https://WWW.Example-Clinic.com.au", False),
        ("http://www.example-clinic.com.au", False),  # as html.allowed_origins: https only
    ],
)
def test_allowed_origins_deploy_only_as_a_browser_writes_an_origin(origin, deploys):
    # CloudFormation holds each item of a CommaDelimitedList to AllowedPattern.
    spec = PARAMETERS["AllowedOrigins"]
    assert bool(re.fullmatch(spec["AllowedPattern"], origin)) is deploys
    assert "scheme://host" in spec["ConstraintDescription"]


def test_worker_event_source_and_queue_sizing():
    (source,) = APP.sqs_sources()
    assert source.function == "IntakeWorkerFunction"
    assert source.queue == "SubmissionQueue"
    assert source.report_batch_item_failures
    assert source.maximum_concurrency == 2  # the lowest SQS allows; Cliniko allows 200/min
    queue = RESOURCES["SubmissionQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * FUNCTIONS["IntakeWorkerFunction"].timeout
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SubmissionDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    # A reserved concurrency below the batches SQS runs at once throttles one of them back
    # to the queue, towards the dead-letter queue: 0 (unreserved) or at least that many.
    reserved = TEMPLATE["Parameters"]["WorkerReservedConcurrency"]
    allowed = {int(value) for value in reserved["AllowedValues"]}
    assert 0 in allowed and min(allowed - {0}) >= source.maximum_concurrency


def test_the_log_level_never_drops_the_metrics_lines():
    # Lambda filters application log lines by ApplicationLogLevel and takes a line without a
    # level as INFO: Powertools' metrics (CloudWatch embedded metric format) are such lines.
    # Above INFO, no custom metric would exist, and every alarm on one would be quiet.
    logging_config = TEMPLATE["Globals"]["Function"]["LoggingConfig"]
    assert logging_config["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    levels = {"DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40, "FATAL": 50}
    allowed = TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"]
    assert allowed and all(levels[value] <= levels["INFO"] for value in allowed)


def test_schedules():
    schedules = {s.function: s.expression for s in APP.schedules()}
    # The cleanup's schedule starts its state machine, not the step function.
    assert schedules == {
        "ErasureOverdueFunction": "rate(1 day)",
        "CleanupStateMachine": {"Ref": "CleanupSchedule"},
        "ChangeFeedFunction": {"Ref": "ChangeFeedSchedule"},
    }
    parameters = TEMPLATE["Parameters"]
    assert parameters["CleanupSchedule"]["Default"] == "rate(1 day)"
    assert parameters["ChangeFeedSchedule"]["Default"] == "rate(1 minute)"
    # A run's report in every 5 minutes: ChangeFeedBehindAlarm takes a 5-minute period without
    # one for a feed that stopped, and a run reports at its end, up to 105 s after it began.
    feed_schedule = re.compile(parameters["ChangeFeedSchedule"]["AllowedPattern"])
    every = ["rate(1 minute)", "rate(2 minutes)"]
    assert all(feed_schedule.fullmatch(expression) for expression in every)
    slower = ["rate(4 minutes)", "rate(15 minutes)", "rate(1 hour)", "cron(0/10 * * * ? *)"]
    assert not any(feed_schedule.fullmatch(expression) for expression in slower)
    behind = TEMPLATE["Resources"]["ChangeFeedBehindAlarm"]["Properties"]
    assert (behind["Period"], behind["TreatMissingData"]) == (300, "breaching")
    # Dry run unless the operator says otherwise.
    assert parameters["CleanupDryRun"]["Default"] == "true"
    environment = FUNCTIONS["CleanupFunction"].environment
    assert environment["CLEANUP_DRY_RUN"] == {"Ref": "CleanupDryRun"}


def test_the_erasure_ceiling_is_the_parameter_its_item_is_the_erasure_s_and_alarmed():
    from cliniko_automations.erasure.ceiling import CEILING_KEY
    from cliniko_automations.erasure.settings import ErasureSettings

    parameter = TEMPLATE["Parameters"]["ErasureHourlyLimit"]
    default = [f for f in dataclasses.fields(ErasureSettings) if f.name == "erasure_hourly_limit"]
    assert parameter["Default"] == default[0].default == 10  # the local CLI's default too
    environment = FUNCTIONS["ErasureApiFunction"].environment
    assert environment["ERASURE_HOURLY_LIMIT"] == {"Ref": "ErasureHourlyLimit"}
    # Its item lives where the function's own idempotency records may be written, no wider.
    [statement] = [
        s for s in _policy_statements("ErasureApiFunction") if s["Sid"] == "AnswerEachRequestOnce"
    ]
    [leading] = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert re.fullmatch(leading.replace("*", ".*"), CEILING_KEY)
    alarm = RESOURCES["ErasureHourlyLimitAlarm"]["Properties"]
    assert alarm["MetricName"] == "ErasureRequestRefused"
    assert {"Name": "reason", "Value": "hourly_limit"} in alarm["Dimensions"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@pytest.mark.parametrize("name", ["SubmissionQueue", "SubmissionDeadLetterQueue", "ParkedQueue"])
def test_queues_are_encrypted(name: str):
    props = RESOURCES[name]["Properties"]
    assert props.get("KmsMasterKeyId") or props.get("SqsManagedSseEnabled")


TABLE_KEYS = {
    "IdempotencyTable": [("id", "HASH")],
    "LedgerTable": [("contact_id", "HASH")],
    "ErasureAuditTable": [("request_id", "HASH"), ("sk", "RANGE")],
    "SubmissionStoreTable": [("id", "HASH")],
    "CleanupRunsTable": [("pk", "HASH"), ("sk", "RANGE")],
    "ChangeFeedTable": [("pk", "HASH")],
}


@pytest.mark.parametrize("name", sorted(TABLE_KEYS))
def test_tables_keys_encryption_recovery_billing(name: str):
    props = RESOURCES[name]["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == TABLE_KEYS[name]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_idempotency_table_expires_records():
    ttl = RESOURCES["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


def test_submission_store_is_kms_encrypted_expiring_and_indexed_by_email_and_name_hash():
    props = RESOURCES["SubmissionStoreTable"]["Properties"]
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "OperationsKey"},
    }
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    by_email, by_name = props["GlobalSecondaryIndexes"]
    assert by_email["IndexName"] == EMAIL_INDEX
    assert by_email["KeySchema"] == [{"AttributeName": "email_hmac", "KeyType": "HASH"}]
    # Keys only: the index itself never holds a submitted value.
    assert by_email["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # The name index holds the name-and-phone hashes that tell namesakes apart, no value.
    assert by_name["IndexName"] == NAME_INDEX
    assert by_name["KeySchema"] == [{"AttributeName": "name_hmac", "KeyType": "HASH"}]
    assert by_name["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["name_phone"],
    }


def test_pepper_is_generated_and_kept():
    pepper = RESOURCES["PepperSecret"]
    assert pepper["Type"] == "AWS::SecretsManager::Secret"
    assert "GenerateSecretString" in pepper["Properties"]
    assert pepper["DeletionPolicy"] == "RetainExceptOnCreate"


def _policy_statements(function: str) -> list[dict[str, Any]]:
    statements = []
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        statements.extend(policy.get("Statement", []))
    return statements


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_wildcard_actions_or_resources(name: str):
    for statement in _policy_statements(name):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all(not a.endswith(":*") and a != "*" for a in actions), statement
        resources = statement["Resource"]
        assert resources != "*", statement


def test_the_worker_may_poll_its_queue_back_off_and_keep_bodies():
    # The event source mapping polls with the worker's role (SAM grants nothing for a mapping
    # of its own): receive, delete and the queue's attributes, on this queue alone; the
    # worker's backoff (a failed attempt's, a 429's reset) changes the message's visibility.
    granted = {
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for statement in _policy_statements("IntakeWorkerFunction")
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    queue = json.dumps({"Fn::GetAtt": ["SubmissionQueue", "Arn"]})
    store = json.dumps({"Fn::GetAtt": ["SubmissionStoreTable", "Arn"]})
    for action in (
        "ReceiveMessage",
        "DeleteMessage",
        "GetQueueAttributes",
        "ChangeMessageVisibility",
    ):
        assert (f"sqs:{action}", queue) in granted
    # A parked or dead-lettered body's expiry is moved on (its replay must find it).
    assert ("dynamodb:UpdateItem", store) in granted


def secret_reads(function: str, effect: str = "Allow") -> list[dict[str, Any]]:
    return [
        statement
        for statement in _policy_statements(function)
        if statement["Action"] == "secretsmanager:GetSecretValue"
        and statement.get("Effect") == effect
    ]


# The erasure's default key: ClinikoApiKeySecretName, or when empty (its default) the key
# under the stack's own prefix (test_internet_facing_secrets.py, a second stack's).
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
ERASURE_KEY_ARN = {
    "Fn::Sub": [
        SECRET_ARN + "${Key}-??????",
        {
            "Key": {
                "Fn::If": [
                    "HasClinikoApiKeySecretName",
                    {"Ref": "ClinikoApiKeySecretName"},
                    {"Fn::Sub": "${SecretsPrefix}accounts/main-clinic/api-key"},
                ]
            }
        },
    ]
}


def prefixed_reads(function: str) -> list[str]:
    """The folders under SecretsPrefix a function may read secrets of ("" for all of it)."""
    subs = [
        resource["Fn::Sub"]
        for statement in secret_reads(function)
        for resource in (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str)
    ]
    head = f"{SECRET_ARN}${{SecretsPrefix}}"
    return sorted(sub.removeprefix(head).removesuffix("*") for sub in subs if sub.startswith(head))


def test_secret_reads_are_scoped():
    # The public intake API reads the form sources' secrets anywhere under the prefix (and is
    # denied the Cliniko keys and webhook secrets); every other function only the folders
    # the build holds what it reads to (accounts/, webhooks/): never a form's signing secret,
    # token or captcha key.
    assert prefixed_reads("IntakeApiFunction") == [""]
    assert prefixed_reads("IntakeWorkerFunction") == ["accounts/"]
    assert prefixed_reads("CleanupFunction") == ["accounts/"]
    assert prefixed_reads("ChangeFeedFunction") == ["accounts/", "webhooks/"]
    assert prefixed_reads("ErasureApiFunction") == ["accounts/"]
    # The intake API also reads the erasure pepper, to index stored submissions by it.
    (api,) = [s for s in secret_reads("IntakeApiFunction") if "Fn::Sub" not in str(s)]
    assert api["Resource"] == {"Ref": "PepperSecret"}
    assert [s["Resource"] for s in secret_reads("IntakeWorkerFunction")] == [
        {"Fn::Sub": f"{SECRET_ARN}${{SecretsPrefix}}accounts/*"}
    ]
    # The erasure searches every account by email: its default key (ClinikoApiKeySecretName,
    # which may lie outside the prefix) and every account's key.
    (statement,) = secret_reads("ErasureApiFunction")
    assert {"Ref": "PepperSecret"} in statement["Resource"]
    assert ERASURE_KEY_ARN in statement["Resource"]


def test_a_stack_named_like_the_secrets_prefix_keeps_each_own_secret_to_its_readers():
    # The stack names its secrets under its own name: with stack cliniko-automations and
    # SecretsPrefix cliniko-automations/ (as samconfig.toml deploys), a read of the prefix
    # covers them, and the functions that may decrypt a secret would read the other's.
    pepper, hash_key = {"Ref": "PepperSecret"}, {"Ref": "ChangeFeedHashKeySecret"}
    denied = {
        function: [s["Resource"] for s in secret_reads(function, "Deny")]
        for function in (
            "IntakeApiFunction",
            "ChangeFeedFunction",
            "IntakeWorkerFunction",
            "CleanupFunction",
            "ErasureApiFunction",
        )
    }
    secret_arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    assert denied == {
        # ...and the public route's function, the Cliniko keys and webhook signing secrets.
        "IntakeApiFunction": [
            hash_key,
            [
                {"Fn::Sub": secret_arn + "${SecretsPrefix}accounts/*"},
                {"Fn::Sub": secret_arn + "${SecretsPrefix}webhooks/*"},
                ERASURE_KEY_ARN,
            ],
        ],
        "ErasureApiFunction": [hash_key],
        "ChangeFeedFunction": [pepper],
        "IntakeWorkerFunction": [[pepper, hash_key]],
        "CleanupFunction": [[pepper, hash_key]],
    }


def test_erasure_audit_trail_is_append_only_for_the_api():
    audit = {"Fn::GetAtt": ["ErasureAuditTable", "Arn"]}
    actions = {
        action
        for statement in _policy_statements("ErasureApiFunction")
        if audit == statement["Resource"] or audit in list(statement["Resource"])
        for action in statement["Action"]
        if action.startswith("dynamodb:")
    }
    assert "dynamodb:PutItem" in actions
    assert not actions & {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"}


def _table_actions(function: str, table: str) -> list[tuple[set[str], Any]]:
    """(actions, condition) of each statement of `function` on `table` (no SAM templates)."""
    arn = {"Fn::GetAtt": [table, "Arn"]}
    found = []
    for statement in _policy_statements(function):
        resources = statement["Resource"]
        if arn == resources or (isinstance(resources, list) and arn in resources):
            actions = statement["Action"]
            found.append(
                (
                    set(actions if isinstance(actions, list) else [actions]),
                    statement.get("Condition"),
                )
            )
    return found


def test_the_worker_reaches_the_idempotency_table_only_under_intake_keys():
    from cliniko_automations.common.identity_claims import CLAIM_PREFIX
    from cliniko_automations.erasure.idempotency import KEY_PREFIX as ERASURE_PREFIX
    from cliniko_automations.intake_worker.runtime import IDEMPOTENCY_KEY_PREFIX
    from cliniko_automations.intake_worker.store import FAILURE_PREFIX, INTENT_PREFIX

    policies = RESOURCES["IntakeWorkerFunction"]["Properties"]["Policies"]
    assert not [p for p in policies if "DynamoDBCrudPolicy" in p]  # a grant of every action
    ((actions, condition),) = _table_actions("IntakeWorkerFunction", "IdempotencyTable")
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    (pattern,) = condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    # Every key the worker writes matches it (Powertools keys are `<prefix>#<hash>`), an
    # erasure request's does not.
    prefix = pattern.removesuffix("*")
    worker_keys = [CLAIM_PREFIX, INTENT_PREFIX, FAILURE_PREFIX, IDEMPOTENCY_KEY_PREFIX + "#"]
    assert pattern.endswith("*") and all(key.startswith(prefix) for key in worker_keys)
    assert not ERASURE_PREFIX.startswith(prefix)


def test_the_worker_only_adds_to_the_ledger_and_the_overdue_check_only_reads():
    # Adds entries, and marks when a later submission met one (an update of an existing entry).
    assert _table_actions("IntakeWorkerFunction", "LedgerTable") == [
        ({"dynamodb:PutItem", "dynamodb:UpdateItem"}, None)
    ]
    assert _table_actions("ErasureOverdueFunction", "ErasureAuditTable") == [
        ({"dynamodb:Scan"}, None)
    ]
    # ...and has no other grant (a SAM policy template would not show in the statements).
    assert len(RESOURCES["ErasureOverdueFunction"]["Properties"]["Policies"]) == 1
    assert len(_policy_statements("ErasureOverdueFunction")) == 1


def test_erasure_reaches_the_idempotency_table_only_under_its_key_prefix():
    from cliniko_automations.common.identity_claims import CLAIM_PREFIX
    from cliniko_automations.erasure.idempotency import KEY_PREFIX

    table = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    statements = [
        s
        for s in _policy_statements("ErasureApiFunction")
        if table == s["Resource"] or table in list(s["Resource"])
    ]
    by_keys = {
        tuple(s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]): s
        for s in statements
    }
    # The intake worker's records (claims, intents, its own idempotency) stay out of reach,
    # but for the check that no claim is held (deleting one left expired).
    assert len(statements) == 2 and set(by_keys) == {(f"{KEY_PREFIX}#*",), (f"{CLAIM_PREFIX}*",)}
    assert set(by_keys[(f"{CLAIM_PREFIX}*",)]["Action"]) == {
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
    }
    actions = by_keys[(f"{KEY_PREFIX}#*",)]["Action"]
    assert not {a for a in actions if not a.startswith("dynamodb:")}
    assert not set(actions) & {"dynamodb:Scan", "dynamodb:Query", "dynamodb:*"}


def test_erasure_writes_to_the_submission_store_one_by_one_only_tombstones():
    from cliniko_automations.common.submission_store import TOMBSTONE_PREFIX

    store = {"Fn::GetAtt": ["SubmissionStoreTable", "Arn"]}
    [one_by_one] = [
        s
        for s in _policy_statements("ErasureApiFunction")
        if s["Resource"] == store and s["Action"] != "dynamodb:BatchWriteItem"
    ]
    assert one_by_one["Action"] == "dynamodb:PutItem"
    leading = one_by_one["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert leading == [f"{TOMBSTONE_PREFIX}*"]


def test_erasure_may_purge_the_submission_store_only_through_its_indexes_and_only_its_items():
    from cliniko_automations.common.submission_store import BODY_PREFIX, TOMBSTONE_PREFIX

    store = {"Fn::GetAtt": ["SubmissionStoreTable", "Arn"]}
    statements = _policy_statements("ErasureApiFunction")
    [find] = [s for s in statements if s["Action"] == "dynamodb:Query" and s["Resource"] != store]
    assert find["Resource"] == [
        {"Fn::Sub": "${SubmissionStoreTable.Arn}/index/by-email-hmac"},
        {"Fn::Sub": "${SubmissionStoreTable.Arn}/index/by-name-hmac"},
    ]
    # Bodies and tombstones: never the intake's first-seen times or hourly counts.
    [purge] = [s for s in statements if s["Action"] == "dynamodb:BatchWriteItem"]
    assert purge["Resource"] == store
    leading = purge["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert leading == [f"{BODY_PREFIX}*", f"{TOMBSTONE_PREFIX}*"]


def test_the_worker_writes_bodies_only_never_a_tombstone():
    # A tombstone keeps an erased person from coming back: the worker reads them, and may
    # replace, delete or keep longer only submissions' bodies.
    from cliniko_automations.common.submission_store import BODY_PREFIX

    store = {"Fn::GetAtt": ["SubmissionStoreTable", "Arn"]}
    on_store = [s for s in _policy_statements("IntakeWorkerFunction") if s["Resource"] == store]
    writes = {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"}
    for statement in on_store:
        actions = statement["Action"]
        actions = {actions} if isinstance(actions, str) else set(actions)
        if actions & writes:
            leading = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            assert leading == [f"{BODY_PREFIX}*"], statement
    assert {a for s in on_store for a in s["Action"]} >= writes


# The stack's own namespace, as the alarms and the functions' environment write it.
OWN = json.dumps({"Fn::Sub": "ClinikoAutomations/${AWS::StackName}"})
ALARMED_METRICS = {
    (OWN, "SignatureRefused"),
    (OWN, "ErasureRequestRefused"),
    ('"AWS/SQS"', "ApproximateNumberOfMessagesVisible"),
    ('"AWS/Lambda"', "Errors"),
    ('"AWS/Lambda"', "Throttles"),
    (OWN, "OverdueErasureRequests"),
    (OWN, "Misconfigured"),
    (OWN, "FeedBehindMinutes"),
    (OWN, "AnswersLeftOut"),
    (OWN, "SubmissionHeld"),
}


def alarmed_metrics(alarm: dict) -> list[dict]:
    """The metrics an alarm watches: its own, or those its metric-math expression sums."""
    props = alarm["Properties"]
    if "Metrics" in props:
        return [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
    return [{k: props[k] for k in ("Namespace", "MetricName", "Dimensions") if k in props}]


def test_alarms_notify_the_encrypted_topic():
    alarms = {n: r for n, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    metrics = {
        (json.dumps(m["Namespace"]), m["MetricName"])
        for a in alarms.values()
        for m in alarmed_metrics(a)
    }
    assert metrics >= ALARMED_METRICS
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert RESOURCES["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "OperationsKey"}
    errors = {
        a["Properties"]["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "Errors"
    }
    assert errors == set(FUNCTIONS)


def test_every_function_on_the_shared_budget_alarms_when_it_paces_alone():
    """`ClinikoPacingFallback` is published with the function's `service` and a `reason`
    (tests/integration/cliniko/test_shared_budget.py checks the emitted dimensions): the alarm
    must select exactly those, for every function that books on RateLimitTable."""
    alarm = RESOURCES["PacingFallbackAlarm"]["Properties"]
    watched = {
        tuple((d["Name"], d["Value"]) for d in m["Dimensions"])
        for m in alarmed_metrics(RESOURCES["PacingFallbackAlarm"])
        if m["MetricName"] == "ClinikoPacingFallback"
    }
    booking = {
        spec.environment["POWERTOOLS_SERVICE_NAME"]
        for spec in FUNCTIONS.values()
        if "CLINIKO_RATE_LIMIT_TABLE" in spec.environment
    }
    assert booking
    assert watched == {
        (("service", service), ("reason", "rate_budget_store_unavailable")) for service in booking
    }
    (expression,) = [q for q in alarm["Metrics"] if "Expression" in q]
    assert expression["ReturnData"] is True
    assert set(expression["Expression"].removeprefix("SUM([").removesuffix("])").split(", ")) == {
        q["Id"] for q in alarm["Metrics"] if "MetricStat" in q
    }
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_dashboard_and_outputs():
    assert any(r["Type"] == "AWS::CloudWatch::Dashboard" for r in RESOURCES.values())
    outputs = TEMPLATE["Outputs"]
    for name in (
        "ApiUrl",
        "SubmissionQueueUrl",
        "SubmissionDeadLetterQueueUrl",
        "ParkedQueueUrl",
        "IdempotencyTableName",
        "LedgerTableName",
        "ErasureAuditTableName",
    ):
        assert name in outputs


def test_every_checkov_skip_is_justified():
    skips = 0
    for resource in RESOURCES.values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips += 1
            assert skip["id"].startswith("CKV")
            assert len(skip["comment"].split()) >= 6, skip
    assert skips > 0


def test_dashboard_body_is_json_naming_the_stacks_resources():
    from local_run.template import Physical, Resolver

    physical = {
        name: Physical(f"ref-{name}", {"Arn": f"arn-{name}", "QueueName": f"queue-{name}"})
        for name in RESOURCES
    }
    resolver = Resolver(
        TEMPLATE,
        APP.parameters({"ClinikoUserAgent": "Clinic (it@example.com)"}),
        physical,
        {"AWS::Region": "eu-west-1", "AWS::StackName": "s", "AWS::AccountId": "1"},
    )
    (dashboard,) = [r for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.loads(resolver.resolve(dashboard["Properties"]["DashboardBody"]))
    text = json.dumps(body)
    for name in ("SubmissionDeadLetterQueue", "ParkedQueue"):
        assert f"queue-{name}" in text
    for function in FUNCTIONS:
        assert f"ref-{function}" in text
    metrics = set()
    for widget in body["widgets"]:
        namespace = None
        for entry in widget["properties"]["metrics"]:
            if not isinstance(entry[0], str) or entry[0] == "...":
                continue
            # "." repeats the row above's value (CloudWatch's dashboard shorthand).
            namespace = namespace if entry[0] == "." else entry[0]
            if namespace == "ClinikoAutomations/s":
                metrics.add(entry[1])
    assert {"SubmissionAccepted", "ContactCreated", "OverdueErasureRequests"} <= metrics


def _resolver_of_stack(stack: str):
    """The template as CloudFormation resolves it for a stack named `stack` in account
    123456789012, eu-west-1: each resource's physical name and ARN carry the stack's name, as
    CloudFormation's generated names do."""
    from local_run.template import Physical, Resolver

    physical = {
        name: Physical(
            f"{stack}-{name}-X1",
            {"Arn": f"arn:{stack}-{name}-X1", "QueueName": f"{stack}-{name}-X1"},
        )
        for name in RESOURCES
    }
    return Resolver(
        TEMPLATE,
        APP.parameters({"ClinikoUserAgent": "Clinic (it@example.com)"}),
        physical,
        {
            "AWS::Region": "eu-west-1",
            "AWS::StackName": stack,
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
        },
    )


def _dashboard_namespaces(body: dict[str, Any]) -> set[str]:
    """The namespace of every metric a widget plots: a row's first item ("." repeats the row
    above's), or the namespace a SEARCH's schema names (quoted when it holds a "/" or "-")."""
    namespaces = set()
    for widget in body["widgets"]:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):
                schema = re.search(r"\{([^}]*)\}", row[0]["expression"])
                assert schema, row
                namespaces.add(schema.group(1).split(",")[0].strip().strip('"'))
            elif row[0] not in (".", "..."):
                namespaces.add(row[0])
    return namespaces


def test_two_stacks_in_one_account_and_region_publish_and_read_only_their_own_metrics():
    # Production and staging (or two clinics) deployed side by side: each stack's functions
    # publish the same metric names with the same `service` dimensions, so only the namespace
    # tells one stack's from the other's. Under a shared one, staging's misconfiguration or
    # refused deliveries summed into production's alarms (and paged its on-call) and its
    # dashboard, and either stack's quiet hours were filled by the other's.
    published: dict[str, str] = {}
    for stack in ("cliniko-automations", "cliniko-automations-dev"):
        resolver = _resolver_of_stack(stack)
        published[stack] = resolver.resolve(
            TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
                "POWERTOOLS_METRICS_NAMESPACE"
            ]
        )
        read = set()
        for name, alarm in RESOURCES.items():
            if alarm["Type"] != "AWS::CloudWatch::Alarm":
                continue
            for metric in alarmed_metrics(alarm):
                namespace = resolver.resolve(metric["Namespace"])
                if namespace.startswith("AWS/"):
                    # AWS's own metrics: told apart by a dimension naming this stack's resource.
                    values = [resolver.resolve(d["Value"]) for d in metric["Dimensions"]]
                    assert any(stack in value for value in values), (name, values)
                else:
                    read.add(namespace)
        (dashboard,) = [r for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
        body = json.loads(resolver.resolve(dashboard["Properties"]["DashboardBody"]))
        read |= {n for n in _dashboard_namespaces(body) if not n.startswith("AWS/")}
        assert read == {published[stack]}, stack
    assert len(set(published.values())) == 2, published


SETTINGS = {
    "IntakeApiFunction": "cliniko_automations.intake_api.settings:ApiSettings",
    "IntakeWorkerFunction": "cliniko_automations.intake_worker.settings:WorkerSettings",
    "ErasureApiFunction": "cliniko_automations.erasure.settings:ErasureSettings",
    "ErasureOverdueFunction": "cliniko_automations.erasure.settings:AuditSettings",
    "CleanupFunction": "cliniko_automations.cleanup.settings:CleanupSettings",
    "ChangeFeedFunction": "cliniko_automations.changefeed.settings:FeedSettings",
}
# These also read the Cliniko client's settings (common/cliniko_settings.py), nested as `cliniko`.
CLINIKO_CALLERS = {
    "IntakeWorkerFunction",
    "ErasureApiFunction",
    "CleanupFunction",
    "ChangeFeedFunction",
}


@pytest.mark.parametrize("function", sorted(SETTINGS))
def test_every_required_setting_is_in_the_functions_environment(function: str):
    # The settings models read NAME.upper() from the environment: a required one missing from
    # the template would fail every invocation in AWS, and nothing else would tell.
    module, _, name = SETTINGS[function].partition(":")
    model = getattr(importlib.import_module(module), name)
    fields = {field.name: field for field in dataclasses.fields(model)}
    required = {name.upper() for name, field in fields.items() if is_required(field)}
    if function in CLINIKO_CALLERS:  # the Cliniko settings nested, read from their variables
        assert "cliniko" in fields
        required.discard("CLINIKO")
        nested = dataclasses.fields(cliniko_settings.ClinikoSettings)
        required |= {cliniko_settings.ENV_NAMES[f.name] for f in nested if is_required(f)}
    assert required
    assert required <= set(FUNCTIONS[function].environment)
    # And the other way: each variable the function itself declares is a setting (no typo).
    declared = RESOURCES[function]["Properties"]["Environment"]["Variables"]
    own = {name for name in declared if not name.startswith("POWERTOOLS_")}
    settings = {name.upper() for name in fields}
    if function in CLINIKO_CALLERS:
        settings |= set(cliniko_settings.ENV_NAMES.values())
    assert own <= settings


def _default(model: type, name: str) -> object:
    return next(field.default for field in dataclasses.fields(model) if field.name == name)


def test_cliniko_waits_end_before_the_functions_do():
    # A client sleeping on Cliniko's rate limit past the function's timeout would be killed
    # mid-request: the worker would redeliver blindly, the erasure caller would get a 503.
    from cliniko_automations.intake_worker.settings import WorkerSettings

    worker = FUNCTIONS["IntakeWorkerFunction"].environment
    min_remaining = _default(WorkerSettings, "min_remaining_seconds")
    assert float(worker["CLINIKO_MAX_WAIT_SECONDS"]) < min_remaining
    erasure = FUNCTIONS["ErasureApiFunction"]
    assert 4 * float(erasure.environment["CLINIKO_MAX_WAIT_SECONDS"]) < erasure.timeout
    from cliniko_automations.cleanup.settings import CleanupSettings

    cleanup = FUNCTIONS["CleanupFunction"].environment
    margin = _default(CleanupSettings, "stop_margin_seconds")
    assert float(cleanup["CLINIKO_MAX_WAIT_SECONDS"]) < margin


# -- the cleanup state machine ------------------------------------------------------------------

CLEANUP = RESOURCES["CleanupStateMachine"]["Properties"]
STATES = CLEANUP["Definition"]["States"]


def _lambda_actions() -> dict[str, str]:
    """state name -> the step handler's action it invokes."""
    return {
        name: state["Parameters"]["Payload"]["action"]
        for name, state in STATES.items()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }


def test_cleanup_is_a_standard_state_machine_looping_the_step_function():
    assert RESOURCES["CleanupStateMachine"]["Type"] == "AWS::Serverless::StateMachine"
    assert CLEANUP["Type"] == "STANDARD"
    assert CLEANUP["DefinitionSubstitutions"] == {
        "CleanupFunctionArn": {"Fn::GetAtt": ["CleanupFunction", "Arn"]}
    }
    for name in _lambda_actions():
        assert STATES[name]["Parameters"]["FunctionName"] == "${CleanupFunctionArn}"
    assert _lambda_actions() == {
        "Begin": "begin",
        "Step": "step",
        "Release": "release",
        "HandBack": "release",
    }
    assert CLEANUP["Definition"]["StartAt"] == "Begin"
    # Every transition lands on a state; every state is reachable.
    targets = {"Begin"}
    for state in STATES.values():
        targets |= {state[k] for k in ("Next", "Default") if k in state}
        targets |= {c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])}
    assert targets == set(STATES)
    # The loop: Step -> Continue -> Step (or wait, continue-as-new, finish).
    loop = {c["StringEquals"]: c["Next"] for c in STATES["Continue"]["Choices"]}
    assert loop == {
        "step": "Step",
        "wait": "WaitForCliniko",
        "continue": "ContinueAsNew",
        "done": "Finished",
    }
    assert STATES["WaitForCliniko"] == {
        "Type": "Wait",
        "SecondsPath": "$.wait_seconds",
        "Next": "Step",
    }


def test_a_second_start_is_refused_not_doubled():
    # Begin takes the rule set's lock; anything but "step" ends the execution at once.
    assert STATES["Started"]["Choices"] == [
        {"Variable": "$.next", "StringEquals": "step", "Next": "Step"},
        {"Variable": "$.next", "StringEquals": "refused", "Next": "AlreadyRunning"},
    ]
    assert STATES["AlreadyRunning"]["Type"] == "Succeed"
    # Input the step cannot act on fails the execution (and alarms).
    assert STATES[STATES["Started"]["Default"]]["Type"] == "Fail"
    assert STATES["Begin"]["Parameters"]["Payload"]["execution.$"] == "$$.Execution.Id"
    # Each step names its execution: only the one holding the run's lock goes on.
    assert STATES["Step"]["Parameters"]["Payload"]["execution.$"] == "$$.Execution.Id"


def test_continue_as_new_starts_the_same_state_machine_with_the_run():
    state = STATES["ContinueAsNew"]
    assert state["Resource"] == "arn:aws:states:::states:startExecution"
    assert state["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert state["Parameters"]["Input"]["run_id.$"] == "$.run_id"
    assert STATES[state["Next"]]["Type"] == "Succeed"
    # Its permission names the machine by the name the template gives it.
    (statement,) = [
        s
        for policy in CLEANUP["Policies"]
        for s in policy.get("Statement", [])
        if s["Action"] == "states:StartExecution"
    ]
    assert CLEANUP["Name"] == {"Fn::Sub": "${AWS::StackName}-cleanup"}
    assert statement["Resource"]["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}-cleanup")
    # The begin input a new execution gets has every field Begin's Parameters read.
    begin_paths = {
        key[:-2] for key in STATES["Begin"]["Parameters"]["Payload"] if key.endswith(".$")
    } - {"execution"}
    assert begin_paths <= set(state["Parameters"]["Input"]) | {"run_id"}
    schedule_input = json.loads(CLEANUP["Events"]["Scheduled"]["Properties"]["Input"])
    assert begin_paths <= set(schedule_input)


def test_a_failing_step_is_retried_then_releases_the_run():
    step = STATES["Step"]
    assert any(r["ErrorEquals"] == ["States.ALL"] for r in step["Retry"])
    (catch,) = step["Catch"]
    assert catch["Next"] == "Release" and catch["ResultPath"] == "$.error"
    assert STATES[STATES["Release"]["Next"]]["Type"] == "Fail"
    # The release names its execution: a run another execution carries on is left running.
    assert STATES["Release"]["Parameters"]["Payload"]["execution.$"] == "$$.Execution.Id"
    # And is retried: a throttled release left the run running, its lock held for an hour.
    assert [r["ErrorEquals"] for r in STATES["Release"]["Retry"]] == [["States.ALL"]]


def test_a_failing_begin_is_retried_and_a_failed_hand_over_releases_the_run():
    # A begin that failed is repeated (the execution names its run, so a repeat finds it);
    # without a retry the execution failed with the lock taken and no run going on.
    assert any(r["ErrorEquals"] == ["States.ALL"] for r in STATES["Begin"]["Retry"])
    # Past its retries, a continue-as-new's begin hands the run back: released as the
    # execution that handed it over (its input names it), which still holds the lock.
    (catch,) = STATES["Begin"]["Catch"]
    assert catch == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "BeginFailed"}
    (carried_on,) = STATES["BeginFailed"]["Choices"]
    assert carried_on["Next"] == "HandBack"
    assert {c["Variable"] for c in carried_on["And"]} == {
        "$.run_id",
        "$.AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
    }
    assert STATES["HandBack"]["Parameters"]["Payload"] == {
        "action": "release",
        "run_id.$": "$.run_id",
        "execution.$": "$.AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID",
    }
    assert (
        STATES["ContinueAsNew"]["Parameters"]["Input"][
            "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$"
        ]
        == "$$.Execution.Id"
    )
    for name in (STATES["BeginFailed"]["Default"], STATES["HandBack"]["Next"]):
        assert STATES[name]["Type"] == "Fail"
    # A continue-as-new that cannot start its successor releases the run it still holds.
    (catch,) = STATES["ContinueAsNew"]["Catch"]
    assert catch == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Release"}


def test_the_cleanup_function_is_a_bounded_step_without_its_own_schedule():
    assert not FUNCTIONS["CleanupFunction"].events
    assert FUNCTIONS["CleanupFunction"].timeout <= 900
    environment = FUNCTIONS["CleanupFunction"].environment
    assert environment["CLEANUP_RUNS_TABLE"] == {"Ref": "CleanupRunsTable"}


def test_the_ledger_index_of_active_contacts_is_sparse_and_keys_only():
    (index,) = RESOURCES["LedgerTable"]["Properties"]["GlobalSecondaryIndexes"]
    from cliniko_automations.common.ledger import ACTIVE_INDEX

    assert index["IndexName"] == ACTIVE_INDEX
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("active_account", "HASH"),
        ("contact_id", "RANGE"),
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # The cleanup queries that index only, updates entries and reads a batch's last
    # submissions; it no longer scans.
    statements = _policy_statements("CleanupFunction")
    ledger = [s for s in statements if "LedgerTable" in json.dumps(s["Resource"])]
    actions = {
        a for s in ledger for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"}


def test_cleanup_runs_expire_and_a_failed_run_alarms():
    ttl = RESOURCES["CleanupRunsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}
    alarm = RESOURCES["CleanupRunFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"][0]["Value"] == {"Ref": "CleanupStateMachine"}
    from cliniko_automations.changefeed.settings import FeedSettings

    feed = FUNCTIONS["ChangeFeedFunction"]
    feed_margin = _default(FeedSettings, "stop_margin_seconds")
    assert float(feed.environment["CLINIKO_MAX_WAIT_SECONDS"]) < feed_margin < feed.timeout


def test_the_change_feed_publishes_to_its_bus_and_alarms_when_behind():
    bus = RESOURCES["ContactEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    environment = FUNCTIONS["ChangeFeedFunction"].environment
    assert environment["EVENT_BUS_NAME"] == {"Ref": "ContactEventBus"}
    (publish,) = [
        s for s in _policy_statements("ChangeFeedFunction") if s["Action"] == "events:PutEvents"
    ]
    assert publish["Resource"] == {"Fn::GetAtt": ["ContactEventBus", "Arn"]}
    ttl = RESOURCES["ChangeFeedTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expires_at", "Enabled": True}
    alarm = RESOURCES["ChangeFeedBehindAlarm"]["Properties"]
    assert alarm["Threshold"] == {"Ref": "ChangeFeedLagAlarmMinutes"}
    # A feed that stops running reports nothing: that is the worst way of falling behind.
    assert alarm["TreatMissingData"] == "breaching"


def test_every_log_group_expires_and_every_function_and_the_state_machine_log_to_one():
    # A function without LoggingConfig.LogGroup writes to the /aws/lambda/<name> group Lambda
    # creates itself, with no retention: kept for ever, and deleted with no stack.
    groups = {n for n, r in RESOURCES.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name in groups:
        assert RESOURCES[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    logged = {
        RESOURCES[name]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for name in FUNCTIONS
    }
    (destination,) = RESOURCES["CleanupStateMachine"]["Properties"]["Logging"]["Destinations"]
    logged.add(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0])
    logged.add(
        RESOURCES["HttpApi"]["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    )
    assert logged == groups
    assert len(groups) == len(FUNCTIONS) + 2


def test_a_queued_id_always_finds_its_body():
    # The submission store keeps a body 16 days from its last queueing: every queue that holds
    # ids keeps a message less long (the webhook stack's queue holds deliveries, not ids).
    from cliniko_automations.common.submission_store import BODY_TTL_SECONDS

    queues = {n: r for n, r in RESOURCES.items() if r["Type"] == "AWS::SQS::Queue"}
    assert set(queues) == {"SubmissionQueue", "SubmissionDeadLetterQueue", "ParkedQueue"}
    for queue in queues.values():
        assert queue["Properties"]["MessageRetentionPeriod"] < BODY_TTL_SECONDS


def test_an_alarm_on_a_level_also_says_when_it_is_back_to_nothing():
    """An alarm on a level that stays until someone clears it (a queue's visible messages or
    its oldest message's age, requests overdue, the feed's minutes behind, a cleanup's rules
    left to finish: a Maximum) tells
    the on-call when it is back, to the topic it alarms to: the operator who replayed the
    parked or webhook letters learns the queue is empty as the one who replayed the dead
    letters does. An alarm on events that only a request or a run brings (a 503, a
    misconfiguration met by a submission, an erasure or a daily cleanup, a failed erasure)
    says nothing once they stop: a quiet hour with nobody sending is no fix, and its OK
    would say the stack is back while the key is still revoked. The change feed's, which
    polls every minute, may."""
    from cliniko_automations.changefeed.subscribers import Subscribers
    from cliniko_automations.changefeed.webhook_stack import render

    webhook_stack = render(Subscribers(subscribers=[]))["Resources"]
    alarms = {
        name: resource["Properties"]
        for name, resource in {**RESOURCES, **webhook_stack}.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    levels = {name for name, alarm in alarms.items() if alarm.get("Statistic") == "Maximum"}
    assert {
        "DeadLettersAlarm",
        "ParkedSubmissionsAlarm",
        "WebhookDeadLetterAlarm",
        "SubmissionQueueStalledAlarm",
        "CleanupStuckAlarm",
    } <= levels
    for name in levels:
        assert alarms[name].get("OKActions") == alarms[name]["AlarmActions"], name
    on_requests = {
        "MisconfigurationAlarm",
        "CleanupMisconfigurationAlarm",
        "ErasureMisconfigurationAlarm",
        "IntakeUnavailableAlarm",
        "ErasureUnavailableAlarm",
        "ErasureFailedAlarm",
    }
    for name in on_requests:
        assert "OKActions" not in alarms[name], name
    for name, alarm in alarms.items():  # one topic either way, wherever OK is told
        assert alarm.get("OKActions", alarm["AlarmActions"]) == alarm["AlarmActions"], name
