#!/usr/bin/env python3
"""Erasure requests from the command line: scrub and archive a Cliniko contact, check status.

Two modes, same core and same words:
  local   (default) runs the erasure core here, with this machine's AWS credentials for the
          audit and idempotency tables, the submission store and secrets: --audit-table,
          --idempotency-table, --submission-table, --pepper-secret, --cliniko-key-secret,
          --user-agent, --cliniko-base-url (or the env vars AUDIT_TABLE, IDEMPOTENCY_TABLE,
          SUBMISSION_TABLE, PEPPER_SECRET_NAME, CLINIKO_API_KEY_SECRET_NAME, CLINIKO_USER_AGENT,
          CLINIKO_BASE_URL; the other CLINIKO_* settings from the environment as in the Lambda;
          the accounts searched are those of cliniko_accounts.yaml, or of CLINIKO_ACCOUNTS_FILE),
          and with a webhook stack its dead-letter queue, whose letters carrying the erased
          contacts' fields a request deletes: --webhook-dlq-url (WEBHOOK_DEAD_LETTER_QUEUE_URL).
  remote  --api-url https://ID.execute-api.REGION.amazonaws.com calls the deployed HTTP API,
          signing each request with SigV4 (the routes use AWS_IAM authorisation).

  erasure.py request --contact-id 123 [--account north-clinic] --reason "GDPR art. 17" [--dry-run]
  erasure.py request --email person@example.com --reason "..." [--all-matches] [--account A]
  erasure.py status REQUEST_ID                 (due date, outcome and receipt)
  erasure.py extend REQUEST_ID --reason "..."  (due + 2 months; once, within the first month)
  erasure.py verify REQUEST_ID | --all         (local: recompute the audit trail's hash chain;
                   [--receipt-head HASH]         the receipt's chain head must still be in it)

Exit status: 0 completed (verify: every request's trail intact, or a trail with no requests
in it, which it says: "0 requests in the audit trail"), 1 failed or error (verify: a changed
or missing record; a mistake of the environment such as no credentials, a table that is not
there or of another kind: one line naming it), 2 bad arguments (refused before anything
changed: a missing or malformed flag, an --api-url without http(s):// and a host, a request
the core or the API refuses as invalid, such as a malformed email: HTTP 422), 3 needs
attention (several matches, conflict, still open), 130 interrupted. A reader that stops
reading (`verify --all | head -1`) ends the output quietly; the status is still the answer's.

Cliniko's API cannot delete a contact; this tool scrubs every personal field and archives the
contact, and says so: Cliniko keeps an archived record with no personal data in it.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("erasure.py")

import argparse
import dataclasses
import json
import os
import re
import sys
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ATTENTION = 0, 1, 2, 3
# Remote mode's wait on the erasure API. API Gateway ends an HTTP API integration at 30 s (the
# function's own timeout is 29 s, template.yaml) and answers then whatever happened, so an
# answer is there within 30 s and the network's time; an endpoint silent past that is no
# erasure API (a stalled proxy, a wrong host). It was 60 s: 61 s of silence before the line.
API_CONNECT_SECONDS = 5.0
API_ANSWER_SECONDS = 35.0


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="erasure.py",
        description="Erasure on request for Cliniko contacts: scrub every personal field, "
        "archive, verify. Cliniko keeps an archived record; it holds no personal data after.",
    )
    where = cli.add_argument_group("where to run")
    where.add_argument("--api-url", help="deployed HTTP API base URL (remote mode, SigV4)")
    where.add_argument("--region", help="AWS region for SigV4 (default: from the environment)")
    where.add_argument("--audit-table", default=os.environ.get("AUDIT_TABLE"))
    where.add_argument("--idempotency-table", default=os.environ.get("IDEMPOTENCY_TABLE"))
    where.add_argument("--submission-table", default=os.environ.get("SUBMISSION_TABLE"))
    where.add_argument("--pepper-secret", default=os.environ.get("PEPPER_SECRET_NAME"))
    where.add_argument(
        "--cliniko-key-secret", default=os.environ.get("CLINIKO_API_KEY_SECRET_NAME")
    )
    where.add_argument("--user-agent", default=os.environ.get("CLINIKO_USER_AGENT"))
    where.add_argument("--cliniko-base-url", default=os.environ.get("CLINIKO_BASE_URL"))
    where.add_argument(
        "--webhook-dlq-url",
        default=os.environ.get("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
        help="the webhook stack's WebhookDeadLetterQueueUrl (local mode): a request deletes "
        "the undelivered webhooks there that carry its contacts' fields",
    )
    where.add_argument(
        "--caller",
        type=caller_id,
        help="who is asking, for the audit trail: an IAM ARN or a user id, no spaces (local "
        "mode; default: your AWS ARN)",
    )
    cli.add_argument("--json", action="store_true", help="print the raw JSON answer")
    commands = cli.add_subparsers(dest="command", required=True)

    request = commands.add_parser("request", help="ask for an erasure (or a dry run)")
    request.add_argument("--contact-id", help="Cliniko contact id")
    request.add_argument("--email", help="email address (matched lower-cased, archived included)")
    request.add_argument(
        "--account",
        help="the Cliniko account (a name of cliniko_accounts.yaml): an email is searched in "
        "every account without it, a contact id is the default account's",
    )
    request.add_argument("--reason", required=True, help="legal basis or ticket reference")
    request.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    request.add_argument(
        "--all-matches", action="store_true", help="erase every contact with this email"
    )
    request.add_argument(
        "--request-id",
        type=request_id,
        help="idempotency key; repeat it to retry or to read the stored outcome",
    )

    status = commands.add_parser("status", help="show a request's status and outcome")
    status.add_argument("request_id", type=request_id)

    extend = commands.add_parser(
        "extend", help="extend the due date by two months (once, within the first month)"
    )
    extend.add_argument("request_id", type=request_id)
    extend.add_argument("--reason", required=True, help="why (recorded; no personal data)")

    verify = commands.add_parser("verify", help="check the audit trail's hash chain (local)")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("request_id", nargs="?", type=request_id)
    which.add_argument("--all", action="store_true", help="every request in the trail")
    verify.add_argument(
        "--receipt-head",
        metavar="HASH",
        type=chain_head,
        help="the chain head of the request's receipt: it must still be in the trail",
    )
    return cli


# ---------------------------------------------------------------------------------------------
# Two ways to get an answer; both return (HTTP-like status, JSON body).


def run_verify(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """Recompute the chain of one request, or of all: reads the audit table only."""
    if not args.audit_table:
        raise SystemExit("erasure.py: verify needs --audit-table (or AUDIT_TABLE)")
    from cliniko_automations.common.plain_data import as_data
    from cliniko_automations.erasure.audit import DynamoAuditLog
    from cliniko_automations.erasure.chain_check import verify_chain
    from cliniko_automations.erasure.errors import RequestNotFound

    check_tables(args, ("--audit-table",))
    audit = DynamoAuditLog(args.audit_table)
    ids = audit.request_ids() if args.all else [args.request_id]
    if not ids:
        # Not "intact": an empty trail is as likely a wrong --audit-table as a quiet month.
        return 200, {"verified": [], "requests": 0, "intact": None}
    results = []
    for request_id in ids:
        records, places = audit.records_and_places(request_id)
        if not records and not places and args.receipt_head is None:
            return 404, {"message": str(RequestNotFound(request_id))}
        check = verify_chain(request_id, records, places, args.receipt_head)
        results.append({**as_data(check), "intact": check.intact})
    # The exit status tells intact from not (see exit_code); the answer itself is complete.
    return 200, {
        "verified": results,
        "requests": len(results),
        "intact": all(r["intact"] for r in results),
    }


def run_local(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    if args.command == "verify":
        return run_verify(args)
    missing = [
        flag
        for flag, value in (
            ("--audit-table", args.audit_table),
            ("--idempotency-table", args.idempotency_table),
            ("--submission-table", args.submission_table),
            ("--pepper-secret", args.pepper_secret),
            ("--cliniko-key-secret", args.cliniko_key_secret),
            ("--user-agent", args.user_agent),
        )
        if not value
    ]
    if missing:
        raise SystemExit(f"erasure.py: local mode needs {', '.join(missing)} (or their env vars)")
    from cliniko_automations.common.plain_data import as_data
    from cliniko_automations.erasure import errors
    from cliniko_automations.erasure.models import ErasureRequest
    from cliniko_automations.erasure.service import build_eraser
    from cliniko_automations.erasure.settings import ErasureSettings, SettingsError

    # The Lambda's settings model, read from the environment with the flags laid over it.
    flags = {
        "AUDIT_TABLE": args.audit_table,
        "IDEMPOTENCY_TABLE": args.idempotency_table,
        "SUBMISSION_TABLE": args.submission_table,
        "PEPPER_SECRET_NAME": args.pepper_secret,
        "CLINIKO_API_KEY_SECRET_NAME": args.cliniko_key_secret,
        "CLINIKO_USER_AGENT": args.user_agent,
        "CLINIKO_BASE_URL": args.cliniko_base_url,
    }
    try:
        settings = ErasureSettings.from_env(
            {**os.environ, **{name: value for name, value in flags.items() if value}}
        )
    except SettingsError as error:
        raise SystemExit(f"erasure.py: bad settings: {error}") from None
    check_tables(args, ("--audit-table", "--idempotency-table", "--submission-table"))
    if args.command == "request" and args.webhook_dlq_url:
        # The deployed function's setting is the queue's ARN; an operator holds its URL.
        settings = dataclasses.replace(
            settings, webhook_dead_letter_queue_arn=webhook_letters_arn(args.webhook_dlq_url)
        )
    try:
        eraser = build_eraser(settings)
    except SettingsError as error:
        raise SystemExit(f"erasure.py: bad settings: {error}") from None
    try:
        if args.command == "status":
            return 200, as_data(eraser.status(args.request_id))
        if args.command == "extend":
            caller = args.caller or local_caller()
            return 200, as_data(eraser.extend(args.request_id, args.reason, caller))
        request = ErasureRequest.parse(request_body(args))
        outcome = eraser.submit(request, args.caller or local_caller())
        return (502 if outcome.status == "failed" else 200), as_data(outcome)
    except errors.InvalidRequest as error:
        return 422, {"message": "invalid request", "errors": error.problems}
    except errors.SeveralMatches as error:
        return 409, {
            "request_id": error.request_id,
            "status": "open",
            "result": "awaiting_confirmation",
            "contact_ids": error.contact_ids,
            "accounts": error.accounts,
            "message": str(error),
        }
    except (errors.RequestIdConflict, errors.RequestInProgress, errors.ExtensionRefused) as error:
        return 409, {"request_id": error.request_id, "message": str(error)}
    except errors.OverHourlyLimit as error:
        # As the API answers it (api_handler._over_hourly_limit): the local mode is bound by
        # the same ceiling (ERASURE_HOURLY_LIMIT, the stack parameter's value by default 10).
        return 429, error.answer()
    except errors.RequestNotFound as error:
        return 404, {"message": str(error)}


def check_tables(args: argparse.Namespace, flags: Sequence[str]) -> None:
    """Each table of the kind its flag takes, before anything is read or written: another
    stack output copied for one (the submission store for IDEMPOTENCY_TABLE, both keyed `id`)
    was written to as if it were the right one, or failed the request after Cliniko changed."""
    from cliniko_automations.common import aws, stack_resources

    kinds = {
        "--audit-table": ("AUDIT_TABLE", stack_resources.AUDIT_TABLE),
        "--idempotency-table": ("IDEMPOTENCY_TABLE", stack_resources.IDEMPOTENCY_TABLE),
        "--submission-table": ("SUBMISSION_TABLE", stack_resources.SUBMISSION_STORE),
    }
    dynamodb = aws.client("dynamodb")
    for flag in flags:
        variable, kind = kinds[flag]
        name = getattr(args, flag.removeprefix("--").replace("-", "_"))
        stack_resources.check_table(dynamodb, name, kind, f"{flag} ({variable})")


def webhook_letters_arn(url: str) -> str:
    """The ARN of the webhook stack's dead-letter queue at `url`, once it is that queue: the
    intake's dead-letter queue given for it would have a request delete letters there."""
    from cliniko_automations.common import aws, stack_resources

    sqs = aws.client("sqs")
    setting = "--webhook-dlq-url (WEBHOOK_DEAD_LETTER_QUEUE_URL)"
    stack_resources.check_queue(sqs, url, stack_resources.WEBHOOK_DEAD_LETTER_QUEUE, setting)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def local_caller() -> str:
    import boto3

    return boto3.client("sts").get_caller_identity()["Arn"]


def run_remote(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    import boto3
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from cliniko_automations.common.printable import printable
    from cliniko_automations.erasure.errors import NOT_FOUND_MESSAGE_START

    base = args.api_url.rstrip("/")
    if args.command == "verify":
        raise SystemExit("erasure.py: verify reads the audit table: run it in local mode")
    if args.command == "status":
        method, url, body = (
            "GET",
            f"{base}/erasure-requests/{quote(args.request_id)}",
            None,
        )
    elif args.command == "extend":
        method = "POST"
        url = f"{base}/erasure-requests/{quote(args.request_id)}/extension"
        body = json.dumps({"reason": args.reason})
    else:
        method, url = "POST", f"{base}/erasure-requests"
        body = json.dumps(request_body(args))
    session = boto3.Session(region_name=args.region)
    credentials = session.get_credentials()
    if credentials is None or not session.region_name:
        raise SystemExit("erasure.py: remote mode needs AWS credentials and a region (--region)")
    if not AWS_REGION.fullmatch(session.region_name):
        # It goes into the signature's header: a pasted Unicode hyphen or a line end there is
        # an encoding error or a quote of the whole header, not the region it is.
        raise SystemExit(
            f"erasure.py: {session.region_name!r} is not an AWS region name such as eu-west-1 "
            "(--region, or AWS_REGION / AWS_DEFAULT_REGION)"
        )
    headers = {"Content-Type": "application/json"} if body is not None else {}
    signed = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", session.region_name).add_auth(
        signed
    )
    try:
        response = httpx.request(
            method,
            url,
            content=body,
            headers=dict(signed.headers.items()),
            timeout=httpx.Timeout(API_ANSWER_SECONDS, connect=API_CONNECT_SECONDS),
        )
    except httpx.RequestError as error:
        if args.command != "request":
            raise
        # The request may be under way without its answer: the id it was sent under (made up
        # here when none was given) is what `status` and a safe second send need, and was
        # printed nowhere else.
        request_id = json.loads(body)["request_id"]
        raise type(error)(
            f"{error}; request {request_id}: `status {request_id}` tells where it got to, "
            f"`--request-id {request_id}` sends it again",
            request=error.request,
        ) from error
    try:
        payload = response.json()
    except ValueError:
        payload = {"message": f"unexpected answer from the API (HTTP {response.status_code})"}
    if not isinstance(payload, dict):
        payload = {"message": f"unexpected answer from the API (HTTP {response.status_code})"}
    message = str(payload.get("message", ""))[:80]
    if response.status_code == 404 and not message.startswith(NOT_FOUND_MESSAGE_START):
        # Not the erasure API's "no such request": no route there (a URL mistyped, another
        # stage's or service's), which read as an unknown request id.
        raise SystemExit(
            f"erasure.py: no erasure API at {printable(base)} (HTTP 404 {printable(message)}): "
            "--api-url is the stack's ApiUrl output"
        )
    return response.status_code, payload


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        # Only a missing id is made up: an empty one is refused, not replaced by a new request.
        "request_id": f"cli-{uuid.uuid4()}" if args.request_id is None else args.request_id,
        "reason": args.reason,
        "dry_run": args.dry_run,
        "erase_all_matches": args.all_matches,
    }
    # An empty one is sent, and refused (422), not left out: `--contact-id "$ID" --email
    # "$EMAIL"` with one variable unset would otherwise lose the cross-check the other gives.
    if args.contact_id is not None:
        body["contact_id"] = args.contact_id
    if args.email is not None:
        body["email"] = args.email
    if args.account is not None:
        body["account"] = args.account
    return body


# ---------------------------------------------------------------------------------------------
# Honest words.

ACTION_WORDS = {
    "scrubbed_and_archived": "scrubbed and archived, verified by reading it back",
    "already_scrubbed_and_archived": "already scrubbed and archived (nothing to write)",
    "would_scrub_and_archive": "would be scrubbed and archived",
    "nothing_to_do": "nothing would change (already scrubbed and archived)",
    "failed": "NOT finished",
}


def render(status: int, body: dict[str, Any]) -> list[str]:
    from cliniko_automations.common.printable import printable
    from cliniko_automations.erasure.attempt import SUBMISSION_STORE, WEBHOOK_DEAD_LETTERS

    # What each store an erasure purges held: the webhook letters are deliveries, not bodies.
    purged_words = {
        SUBMISSION_STORE: "stored submission(s)",
        WEBHOOK_DEAD_LETTERS: "undelivered webhook(s)",
    }

    lines = []
    if "status" in body and "request_id" in body:
        lines.append(
            f"Request {body['request_id']}: {body['status']}"
            + (f" ({body['result']})" if body.get("result") else "")
            + (" [dry run]" if body.get("dry_run") else "")
        )
    elif status >= 400:
        lines.append(f"Refused (HTTP {status}).")
    for contact in body.get("contacts", []):
        words = ACTION_WORDS.get(contact["action"], contact["action"])
        account = f" in {contact['account']}" if contact.get("account") else ""
        line = f"  Contact {contact['contact_id']}{account}: {words}"
        if contact.get("fields"):
            line += f"; {_fields_verb(contact, body)}: {', '.join(contact['fields'])}"
        if contact.get("error"):
            line += f"; error: {contact['error']}"
        lines.append(line)
    if status == 409 and body.get("contact_ids"):
        lines.append(f"  Matching contact ids: {_ids_by_account(body)}")
    if body.get("message"):
        lines.append(body["message"])
    if status == 409 and body.get("contact_ids") and body.get("request_id"):
        # The message names the API's field; here the same request is this command again.
        lines.append(
            "To erase all of them: the same command with --all-matches "
            f"--request-id {body['request_id']}."
        )
    for field, problem in (body.get("errors") or {}).items():
        lines.append(f"  {field}: {problem}")
    for purged in body.get("purged") or []:
        ids = purged["submission_ids"]
        # The trail lists the first 1,000 ids of a purge (erasure/attempt.LISTED_SUBMISSIONS).
        first = f"the first {len(ids)}: " if len(ids) < purged["count"] else ""
        what = purged_words.get(purged["store"], "item(s)")
        lines.append(
            f"  Purged from {purged['store']}: {purged['count']} {what}"
            + (f" ({first}{', '.join(ids)})" if ids else "")
        )
    if body.get("due_at"):
        lines.append(
            f"Due by {body['due_at']}" + (" (extended)." if body.get("due_extended") else ".")
        )
    receipt = body.get("receipt")
    if receipt:
        lines.append(
            f"Receipt: request {receipt['request_id']}, {receipt['outcome']}"
            + (f", completed {receipt['completed_at']}" if receipt.get("completed_at") else "")
            + f", audit chain head {receipt['chain_head']} ({receipt['records']} records)."
        )
    if body.get("requests") == 0:
        lines.append("0 requests in the audit trail: nothing to verify (is it the right table?)")
    for check in body.get("verified") or []:
        state = "intact" if check["intact"] else "NOT INTACT"
        lines.append(
            f"Request {check['request_id']}: audit trail {state} ({check['records']} "
            f"records, head {check['chain_head']})"
        )
        lines += [f"  {problem}" for problem in check["problems"]]
    # The answer quotes Cliniko (a refused scrub's field names): shown, never acted on.
    return [printable(line) for line in lines]


def _ids_by_account(body: dict[str, Any]) -> str:
    accounts = {name: ids for name, ids in (body.get("accounts") or {}).items() if ids}
    if not accounts:  # an answer from a deployment before the erasure covered accounts
        return ", ".join(body["contact_ids"])
    return "; ".join(f"{', '.join(ids)} in {name}" for name, ids in accounts.items())


def _fields_verb(contact: dict[str, Any], body: dict[str, Any]) -> str:
    if body.get("dry_run"):
        return "fields that would be blanked"
    if contact["action"] == "failed":  # perhaps none was: the outcome does not say
        return "fields to blank"
    return "fields blanked"


def exit_code(status: int, body: dict[str, Any]) -> int:
    if "verified" in body:
        return EXIT_OK if body.get("intact") or body.get("requests") == 0 else EXIT_FAILED
    if status == 422:  # the request's arguments were refused before anything was done
        return EXIT_USAGE
    if status == 200 and body.get("status") == "completed":
        return EXIT_OK
    if status in (200, 404, 409, 429):  # 429: the hourly ceiling; the same id goes later
        return EXIT_ATTENTION
    return EXIT_FAILED


# An IAM ARN or a user id (IAM user names take `+=,.@_-`): one token, never free text, since
# the trail is kept for years and a name typed here would be personal data in it.
CALLER_ID = re.compile(r"[A-Za-z0-9+=,.@_:/-]{1,256}")
# An AWS region's name: eu-west-1, us-gov-west-1 (fullmatch: `$` would let a line end through).
AWS_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def chain_head(text: str) -> str:
    """A receipt's chain head as the trail stores it (SHA-256, lower-case hex). One cut short or
    mistyped when pasted is the operator's slip: refused here, not reported as a trail whose
    records were removed or rewritten."""
    head = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", head):
        raise argparse.ArgumentTypeError(
            "a receipt's chain head is 64 hexadecimal digits, as the receipt prints it"
        )
    return head


def request_id(text: str) -> str:
    """A request id as the API takes one, so that one given here goes into a URL's path as
    one segment, whatever else was typed or pasted."""
    from cliniko_automations.erasure.models import REQUEST_ID_PATTERN

    if not REQUEST_ID_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "a request id is 1-128 letters, digits, '.', '_', ':' or '-', starting with a "
            "letter or digit"
        )
    return text


def caller_id(text: str) -> str:
    if not CALLER_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "give an IAM ARN or a user id (letters, digits and +=,.@_:/-, no spaces)"
        )
    return text


def api_url_usable(text: str) -> bool:
    """An http(s) URL with a host (and a port, if any, in range), in plain ASCII."""
    if not (text.isascii() and text.isprintable()):
        return False
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 (read to check it: urlsplit raises on a port out of range)
    except ValueError:  # "http://[::1" or a port out of range
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


def main(argv: Sequence[str] | None = None) -> int:
    from cliniko_automations.common.operator_cli import parsed_arguments, run_tool

    args = parsed_arguments("erasure.py", parser(), argv)
    if args.command == "verify" and args.all and args.request_id:
        parser().error("verify takes a request id or --all, not both")
    if args.command == "verify" and args.all and args.receipt_head:
        parser().error("--receipt-head is one request's: give its request id, not --all")
    if args.command == "request" and args.contact_id is None and args.email is None:
        parser().error("request needs --contact-id, --email or both")
    if args.api_url is not None and not api_url_usable(args.api_url):
        parser().error(
            f"--api-url needs http(s):// and a host, as https://ID.execute-api.REGION."
            f"amazonaws.com (not {args.api_url!r})"
        )
    # A mistake of the environment is a clear line, not a traceback, for a person at a terminal.
    return run_tool("erasure.py", lambda: answer(args))


def answer(args: argparse.Namespace) -> int:
    from cliniko_automations.common.operator_cli import stdout_closed

    status, body = run_remote(args) if args.api_url else run_local(args)
    try:
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            print("\n".join(render(status, body)))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the answer stands, whoever stopped reading it
        stdout_closed()
    return exit_code(status, body)


if __name__ == "__main__":
    sys.exit(main())
