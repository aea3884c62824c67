"""The cleanup's Lambda step, invoked by the cleanup state machine (template.yaml,
`CleanupStateMachine`) or by the local run's loop, one action per invocation:

- `{"action": "begin", "execution": ARN, "dry_run": bool?, "rules": [names]?, "run_id"?}`:
  take the rule set's lock and start a run (or, with `run_id`, carry on a run in a new
  execution: continue-as-new). Answers `{"run_id", "next": "step"}`, or `{"next": "refused"}`
  while another run holds the lock (a second start is refused, never doubled). An event the
  function cannot act on gets `{"error": message, "next": "invalid"}` (the execution fails).
- `{"action": "step", "run_id", "iterations"}`: one bounded step (`core.CleanupStep`).
  Answers `{"run_id", "iterations", "next": "step" | "wait" | "continue" | "done",
  "wait_seconds", ...counts}`; "continue" once `iterations` reaches STEPS_PER_EXECUTION, so the
  execution hands over to a new one before Step Functions' history limit.
- `{"action": "release", "run_id"}`: the run failed; mark it so and free the lock.

Dry run unless the event or CLEANUP_DRY_RUN says otherwise. Logs and answers carry rule names,
counts and ids only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.cleanup.config import CleanupRules, load_cleanup_rules, rules_path
from cliniko_automations.cleanup.core import CleanupStep, RuleProgress, RunState
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.cleanup.settings import CleanupSettings
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.accounts import key_secret_setting, load_accounts
from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.ledger import DynamoLedger
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import diagnose, report
from cliniko_automations.common.secrets import SecretMisconfigured

logger = function_logger("cleanup")
metrics = Metrics(service="cleanup")


class InvalidEvent(ValueError):
    pass


def bulk_client(secret_name: str, secrets_prefix: str | None = None) -> ClinikoClient:
    """The Cliniko client of a bulk job: the one place the cleanup's clients are made. Bulk:
    the cleanup takes only what intake and erasure leave of the key's budget."""
    return client_for_secret(secret_name, secrets_prefix=secrets_prefix, priority="bulk")


def _text(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{name} must be a non-empty string")
    return value


def _begin_options(event: dict[str, Any]) -> tuple[bool | None, list[str] | None]:
    dry_run = event.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise InvalidEvent("dry_run must be true or false")
    names = event.get("rules")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidEvent("rules must be a non-empty list of rule names")
    return dry_run, names


def rule_set_name(settings: CleanupSettings) -> str:
    """One run at a time per rule set (the rules file), whichever of its rules a run selects:
    two runs never archive the same contact."""
    return Path(rules_path(settings.cleanup_rules_file)).stem


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = CleanupSettings.from_env()
    accounts = load_accounts(settings.cliniko_accounts_file)
    configured = load_cleanup_rules(settings.cleanup_rules_file, accounts.accounts)
    dynamodb = boto3.client("dynamodb")
    runs = DynamoRuns(dynamodb, settings.cleanup_runs_table)
    rule_set = rule_set_name(settings)
    try:
        if not isinstance(event, dict):
            raise InvalidEvent("the event must be a JSON object")
        action = event.get("action")
        if action == "begin":
            return _begin(event, settings, configured, runs, rule_set)
        if action == "step":
            run_id = _text(event, "run_id")
            iterations = event.get("iterations", 0)
            if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
                raise InvalidEvent("iterations must be a whole number")
        elif action == "release":
            run_id = _text(event, "run_id")
            runs.mark_failed(run_id)
            runs.release(rule_set, run_id)
            logger.warning("cleanup run failed; lock released", extra={"run_id": run_id})
            return {"run_id": run_id, "next": "done"}
        else:
            raise InvalidEvent("action must be begin, step or release")
    except ValueError as error:
        logger.warning("cleanup invocation refused", extra={"problem": str(error)})
        return {"error": str(error), "next": "invalid"}

    logger.append_keys(run_id=run_id)
    state = runs.load(run_id)
    if state is None:
        return {"error": "no such run", "run_id": run_id, "next": "invalid"}
    if state.status == "finished":  # a retried last step whose answer was lost
        return {"run_id": run_id, "iterations": iterations, "next": "done"}
    if not runs.renew(rule_set, run_id):
        logger.warning("cleanup run no longer holds the lock; stopping")
        return {"run_id": run_id, "next": "refused"}
    margin_ms = settings.stop_margin_seconds * 1000

    def client_for_account(account: str) -> ClinikoClient:
        secret = accounts.accounts[account].api_key_secret
        try:
            return bulk_client(secret, settings.secrets_prefix)
        except (ConfigurationError, SecretMisconfigured) as error:
            # The step fails (the run's failure alarm); this line says what to fix.
            _misconfigured(error, account, secret)
            raise

    step = CleanupStep(
        rules={rule.name: rule for rule in configured.rules},
        client_for_account=client_for_account,
        ledger=DynamoLedger(dynamodb, settings.ledger_table),
        checkpoints=runs,
        out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
        on_access_refused=lambda account, error: _misconfigured(
            error, account, accounts.accounts[account].api_key_secret
        ),
    )
    before = {p.rule: (p.matched, p.archived, p.failed) for p in state.rules}
    outcome = step.run(state)
    iterations += 1
    next_action: str = outcome.next
    if outcome.next == "done":
        runs.release(rule_set, run_id)
    elif iterations >= settings.steps_per_execution:
        next_action = "continue"
    _report(state, before)
    answer = {
        "run_id": run_id,
        "iterations": iterations,
        "next": next_action,
        "wait_seconds": outcome.wait_seconds,
        "dry_run": state.dry_run,
        "matched": sum(p.matched for p in state.rules),
        "archived": sum(p.archived for p in state.rules),
        "failed": sum(p.failed for p in state.rules),
    }
    logger.info("cleanup step finished", extra=answer)
    return answer


def _begin(
    event: dict[str, Any],
    settings: CleanupSettings,
    configured: CleanupRules,
    runs: DynamoRuns,
    rule_set: str,
) -> dict[str, Any]:
    execution = _text(event, "execution")
    carried = event.get("run_id")
    if carried is not None:  # continue-as-new: the same run in a fresh execution
        run_id = _text(event, "run_id")
        if runs.load(run_id) is None or not runs.acquire(rule_set, run_id, execution):
            logger.warning("cleanup run cannot continue", extra={"run_id": run_id})
            return {"run_id": run_id, "next": "refused"}
        return {"run_id": run_id, "iterations": 0, "next": "step"}
    requested_dry_run, names = _begin_options(event)
    rules = configured.selected(names)
    dry_run = settings.cleanup_dry_run if requested_dry_run is None else requested_dry_run
    run_id = uuid.uuid4().hex
    if not runs.acquire(rule_set, run_id, execution):
        holder = runs.holder(rule_set) or {}
        logger.info(
            "cleanup already running; start refused", extra={"holder": holder.get("run_id")}
        )
        return {"next": "refused", "running": holder.get("run_id")}
    state = RunState(
        run_id=run_id,
        dry_run=dry_run,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        rules=[RuleProgress.start(rule) for rule in rules],
    )
    runs.create(rule_set, state)
    logger.info("cleanup run started", extra={"run_id": run_id, "dry_run": dry_run})
    return {"run_id": run_id, "iterations": 0, "next": "step", "dry_run": dry_run}


def _report(state: RunState, before: dict[str, tuple[int, int, int]]) -> None:
    for progress in state.rules:
        matched, archived, failed = before[progress.rule]
        metrics.add_metric(
            name="CleanupMatched", unit=MetricUnit.Count, value=progress.matched - matched
        )
        metrics.add_metric(
            name="CleanupArchived", unit=MetricUnit.Count, value=progress.archived - archived
        )
        metrics.add_metric(
            name="CleanupFailed", unit=MetricUnit.Count, value=progress.failed - failed
        )
    pending = sum(1 for progress in state.rules if progress.phase != "done")
    metrics.add_metric(name="CleanupIncomplete", unit=MetricUnit.Count, value=pending)


def _misconfigured(error: Exception, account: str, secret: str) -> None:
    problem = diagnose(error, secret=secret, where=key_secret_setting(account))
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, account=account)
