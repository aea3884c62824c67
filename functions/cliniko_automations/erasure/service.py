"""Wiring shared by the Lambda handler and the CLI's local mode: settings -> Eraser."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.cliniko.errors import ClinikoError
from cliniko_automations.cliniko.pacing import key_fingerprint
from cliniko_automations.common import aws
from cliniko_automations.common.accounts import ClinikoAccounts, load_accounts
from cliniko_automations.common.cliniko_accounts import (
    client_for_secret,
    key_replaced,
    time_left_after,
)
from cliniko_automations.common.config_file import ConfigError
from cliniko_automations.common.secret_text import trimmed
from cliniko_automations.common.secrets import SecretUnavailable, read_secret
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.ceiling import DynamoHourlyCeiling
from cliniko_automations.erasure.idempotency import PowertoolsOnce
from cliniko_automations.erasure.ports import ContactsClient
from cliniko_automations.erasure.settings import ErasureSettings, SettingsError
from cliniko_automations.erasure.workflow import Eraser

if TYPE_CHECKING:
    from cliniko_automations.changefeed.webhook_dead_letters import WebhookLetterPurge

# The name of the account whose key is ClinikoApiKeySecretName when cliniko_accounts.yaml
# lists no account with that key.
DEFAULT_ACCOUNT = "default"
# The account a request by contact id naming none acts on when ClinikoApiKeySecretName is
# empty (the shipped accounts file's one account); without one so named, the first by name.
MAIN_ACCOUNT = "main-clinic"
# Kept from Cliniko's requests for what follows their last answer: the attempt's audit records
# and the answer (a failed outcome recorded, not API Gateway's timeout).
RESERVE_SECONDS = 4.0


def _webhook_letters(queue_arn: str | None) -> WebhookLetterPurge | None:
    if not queue_arn:
        return None
    try:
        url = aws.queue_url_for(queue_arn)
    except ValueError:
        raise SettingsError(
            "erasure settings missing or invalid: WEBHOOK_DEAD_LETTER_QUEUE_ARN"
        ) from None
    # Imported here: only a deployment with webhooks pays for the dead-letter tool's modules.
    from cliniko_automations.changefeed.webhook_dead_letters import WebhookLetterPurge

    return WebhookLetterPurge(aws.client("sqs", config=aws.FAIL_FAST), url)


def _accounts_file() -> ClinikoAccounts:
    try:
        return load_accounts()
    except ConfigError as error:
        raise SettingsError(f"erasure settings: the Cliniko accounts file: {error}") from None


def _key_secrets(
    settings: ErasureSettings, accounts: ClinikoAccounts
) -> tuple[dict[str, str], str]:
    """Each account's key secret by name, and the default account: the one whose key
    CLINIKO_API_KEY_SECRET_NAME (the stack parameter ClinikoApiKeySecretName) names, which a
    contact-id request naming none acts on; with none named, MAIN_ACCOUNT or the first by name.

    A key the accounts file does not list (a deployment made when the erasure used that key
    alone) is searched too, as the account DEFAULT_ACCOUNT: passed over, the erasure would
    answer "no record found" for an account it never looked in."""
    secrets = {name: accounts.accounts[name].api_key_secret for name in accounts.names()}
    wanted = settings.cliniko_api_key_secret_name
    if not wanted:
        # No key named for it: an account of the file. Named as the shipped file's account's
        # key, a file whose account a clinic renamed had every request search an account
        # whose secret was never made, and fail (503) for good.
        names = list(secrets)
        return secrets, MAIN_ACCOUNT if MAIN_ACCOUNT in secrets else names[0]
    default = next((name for name, secret in secrets.items() if secret == wanted), None)
    if default is None:
        default = DEFAULT_ACCOUNT
        while default in secrets:  # the file's own account of that name holds another key
            default += "-key"
        secrets[default] = wanted
    return secrets, default


def secrets_read(settings: ErasureSettings) -> list[str]:
    """The secrets an erasure request reads: the pepper, the default account's API key, then
    the other accounts' keys (each request compares them all: `ErasureAccounts.same_as`)."""
    secrets, default = _key_secrets(settings, _accounts_file())
    others = [secret for name, secret in secrets.items() if name != default]
    return [settings.pepper_secret_name, secrets[default], *others]


def build_eraser(
    settings: ErasureSettings,
    context: LambdaContext | None = None,
    *,
    on_key_refused: Callable[[str, str, ClinikoError], None] | None = None,
) -> Eraser:
    """`context`: the Lambda invocation's, which bounds how long an attempt holds its request
    id if it is cut short (None outside Lambda: idempotency.LOCAL_LEASE). `on_key_refused`
    hears (account, its key's secret, Cliniko's refusal) once a request per account whose key
    or user Cliniko refused (`ErasureAccounts.key_refused`)."""
    secrets, default = _key_secrets(settings, _accounts_file())
    time_left = time_left_after(
        lambda: context.get_remaining_time_in_millis() / 1000 if context else None,
        RESERVE_SECONDS,
    )

    key_ids: dict[str, str] = {}  # the key each account's client was made with

    def client(account: str) -> ContactsClient:
        made = client_for_secret(secrets[account], settings=settings.cliniko, time_left=time_left)
        key_ids[account] = made.key_id
        contacts: ContactsClient = made
        return contacts

    def key_of(account: str) -> str | None:
        # The key as the client sends it (pasted keys carry a newline), by its fingerprint.
        try:
            return key_fingerprint(trimmed(read_secret(secrets[account])))
        except SecretUnavailable:  # taken for an account of its own: a search of it fails
            return None

    accounts = ErasureAccounts(
        list(secrets),
        client,
        default=default,
        key_of=key_of,
        key_replaced=lambda account: key_replaced(secrets[account], key_ids.get(account)),
        on_key_refused=lambda account, error: (
            on_key_refused(account, secrets[account], error) if on_key_refused else None
        ),
    )
    pepper = read_secret(settings.pepper_secret_name)
    # FAIL_FAST, as the rate budget's table is (the same client): a stalled table is the
    # caller's 503 "send again" within the function's 29 s, where botocore's defaults (60 s
    # for an answer, 4 attempts) ran into the timeout and API Gateway's own 500.
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    submissions = DynamoSubmissionStore(
        dynamodb, settings.submission_table, claims_table=settings.idempotency_table
    )
    once = PowertoolsOnce(settings.idempotency_table, context=context, dynamodb=dynamodb)
    try:
        return Eraser(
            accounts,
            DynamoAuditLog(settings.audit_table, client=dynamodb),
            pepper,
            once=once,
            submissions=submissions,
            webhook_letters=_webhook_letters(settings.webhook_dead_letter_queue_arn),
            time_left=time_left,
            ceiling=DynamoHourlyCeiling(
                settings.idempotency_table, settings.erasure_hourly_limit, dynamodb=dynamodb
            ),
        )
    except ValueError as error:  # a pepper too short to hide emails: the secret is unusable
        raise SecretUnavailable(f"secret {settings.pepper_secret_name!r}: {error}") from None
