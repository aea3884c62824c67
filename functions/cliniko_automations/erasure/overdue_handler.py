"""Scheduled daily: count erasure requests past their due date that are not completed.

Publishes `OverdueErasureRequests` every run, 0 included, so the alarm on it always has data
(a missing datapoint would leave the alarm in INSUFFICIENT_DATA instead of OK).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.common import aws
from cliniko_automations.common.import_collector import import_finished
from cliniko_automations.common.logs import function_logger
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.deadlines import overdue_request_ids, utcnow
from cliniko_automations.erasure.settings import AuditSettings

logger = function_logger("erasure")
metrics = Metrics(service="erasure")


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = AuditSettings.from_env()
    # FAIL_FAST: a stalled table is this run's own error in seconds (a Scan page of at most
    # 1 MB answers in well under its 2 s), where botocore's defaults waited up to 240 s a page,
    # past the 60 s timeout.
    trail = DynamoAuditLog(
        settings.audit_table, client=aws.client("dynamodb", config=aws.FAIL_FAST)
    )
    overdue = overdue_request_ids(trail.summaries(), utcnow())
    metrics.add_metric(name="OverdueErasureRequests", unit=MetricUnit.Count, value=len(overdue))
    # Request ids are ours (no personal data): listing them tells the on-call where to look.
    logger.info("overdue erasure requests", extra={"count": len(overdue), "request_ids": overdue})
    return {"overdue": len(overdue), "request_ids": overdue}


# Last: the import is over (common/import_collector.py).
import_finished()
