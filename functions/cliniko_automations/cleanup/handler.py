"""Scheduled cleanup (EventBridge): run the cleanup rules, dry run unless configured otherwise.

A scheduled event runs every rule with the CLEANUP_DRY_RUN setting. An operator may invoke the
function with `{"dry_run": true|false, "rules": ["name", ...]}` (both optional) to run some
rules, or to preview them. Logs and the answer carry rule names, counts and contact ids only.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.cleanup.config import load_cleanup_rules
from cliniko_automations.cleanup.core import Cleanup
from cliniko_automations.cleanup.settings import CleanupSettings
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import diagnose, report
from cliniko_automations.common.secrets import SecretMisconfigured
from cliniko_automations.intake.config import load_form_sources
from cliniko_automations.intake.ledger import DynamoLedger

logger = function_logger("cleanup")
metrics = Metrics(service="cleanup")


class InvalidEvent(ValueError):
    pass


def _options(event: Any) -> tuple[bool | None, list[str] | None]:
    if not isinstance(event, dict):
        raise InvalidEvent("the event must be a JSON object")
    dry_run = event.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise InvalidEvent("dry_run must be true or false")
    names = event.get("rules")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidEvent("rules must be a non-empty list of rule names")
    return dry_run, names


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = CleanupSettings.from_env()
    sources = load_form_sources(settings.form_sources_file)
    configured = load_cleanup_rules(settings.cleanup_rules_file, sources.accounts)
    try:
        requested_dry_run, names = _options(event)
        rules = configured.selected(names)
    except ValueError as error:
        logger.warning("cleanup invocation refused", extra={"problem": str(error)})
        return {"error": str(error)}
    dry_run = settings.cleanup_dry_run if requested_dry_run is None else requested_dry_run

    ledger = DynamoLedger(boto3.client("dynamodb"), settings.ledger_table)
    margin_ms = settings.stop_margin_seconds * 1000

    def client_for_account(account: str) -> Any:
        secret = sources.accounts[account].api_key_secret
        try:
            # Bulk: the cleanup takes only what intake and erasure leave of the key's budget.
            return client_for_secret(
                secret, secrets_prefix=settings.secrets_prefix, priority="bulk"
            )
        except (ConfigurationError, SecretMisconfigured) as error:
            # The run fails (CleanupErrorsAlarm); this line says what to fix.
            _misconfigured(error, account, secret)
            raise

    cleanup = Cleanup(
        client_for_account=client_for_account,
        ledger_ids=ledger.contact_ids,
        out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
    )
    results = cleanup.run(rules, dry_run=dry_run)

    for result in results:
        summary = result.as_dict()
        del summary["contact_ids"]
        logger.info("cleanup rule finished", extra=summary)
        if result.refused is not None:
            account = result.account
            _misconfigured(result.refused, account, sources.accounts[account].api_key_secret)
        metrics.add_metric(name="CleanupMatched", unit=MetricUnit.Count, value=result.matched)
        metrics.add_metric(name="CleanupArchived", unit=MetricUnit.Count, value=result.archived)
        metrics.add_metric(name="CleanupFailed", unit=MetricUnit.Count, value=result.failed)
    incomplete = sum(1 for result in results if not result.complete)
    metrics.add_metric(name="CleanupIncomplete", unit=MetricUnit.Count, value=incomplete)
    return {"dry_run": dry_run, "rules": [result.as_dict() for result in results]}


def _misconfigured(error: Exception, account: str, secret: str) -> None:
    where = f"form_sources.yaml accounts.{account}.api_key_secret"
    problem = diagnose(error, secret=secret, where=where)
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, account=account)
