"""Misconfiguration an operator must fix, told once: what setting, and what to do about it.

A Cliniko key refused (401: wrong key, or a key sent to the wrong shard) or its user lacking a
permission (403), a secret that is missing, empty, unreadable or outside `SecretsPrefix`, a
User-Agent the runtime refuses: each fails every attempt the same way until someone changes the
deployment, so retrying only hides it. `diagnose` turns such an error into a `Misconfiguration`
(a fixed reason code, the setting, the fix), and `report` gives it one log line and the
`Misconfigured` metric, which template.yaml's MisconfigurationAlarm watches.

Messages name settings, secrets and shards; never a key, a secret's value or submitted data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cliniko_automations.cliniko.errors import (
    ConfigurationError,
    Forbidden,
    Unauthorized,
    UserAgentRefused,
    access_hint,
)
from cliniko_automations.common.accounts import key_secret_setting
from cliniko_automations.common.secrets import (
    SecretDeleted,
    SecretDenied,
    SecretEmpty,
    SecretMisconfigured,
    SecretMissing,
    SecretNotPlainText,
    SecretOutsidePrefix,
    SecretUndecryptable,
)

METRIC = "Misconfigured"

# The deployment's name for each of the client's settings, and how to fix it; keyed by the
# client's name (ConfigurationError.setting) and by the environment variable.
_USER_AGENT = (
    "ClinikoUserAgent",
    "redeploy with the stack parameter ClinikoUserAgent set to such a value, quoted in "
    'samconfig.toml\'s parameter_overrides: ClinikoUserAgent="Acme Clinic (it@acme.example)"',
)
_BASE_URL = (
    "CLINIKO_BASE_URL",
    "unset CLINIKO_BASE_URL (Cliniko's own https://api.{shard}.cliniko.com/v1 is used) or "
    "give an absolute http(s) URL with at most a {shard} placeholder",
)
_CLIENT_SETTINGS = {
    "user_agent": _USER_AGENT,
    "CLINIKO_USER_AGENT": _USER_AGENT,
    "base_url": _BASE_URL,
    "CLINIKO_BASE_URL": _BASE_URL,
    "CLINIKO_MAX_WAIT_SECONDS": (
        "CLINIKO_MAX_WAIT_SECONDS",
        "set it to a number of seconds above 0 and at most 900, or unset it",
    ),
}


@dataclass(frozen=True)
class Misconfiguration:
    reason: str  # a fixed code, e.g. "cliniko_unauthorized"
    setting: str  # what to change: a template parameter, a variable or a secret
    problem: str  # what is wrong, e.g. "Cliniko answered 401 on shard uk2"
    fix: str  # what to do

    @property
    def message(self) -> str:
        return f"misconfigured {self.setting}: {self.problem}. Fix: {self.fix}"


def _secret_setting(name: str | None, where: str | None) -> str:
    setting = f"secret {name!r}" if name else "the Cliniko API key's secret"
    return f"{setting} ({where})" if where else setting


def diagnose(
    error: BaseException, *, secret: str | None = None, where: str | None = None
) -> Misconfiguration | None:
    """The misconfiguration `error` reveals, or None when it may be transient.

    `secret` is the secret that holds the Cliniko key used, `where` where the deployment names
    it (e.g. "cliniko_accounts.yaml accounts.main-clinic.api_key_secret")."""
    if isinstance(error, UserAgentRefused):  # the deployment's User-Agent, not the key
        setting, fix = _USER_AGENT
        return Misconfiguration("cliniko_user_agent_refused", setting, error.message, fix)
    if isinstance(error, Unauthorized | Forbidden):
        hint = access_hint(error) or ""
        problem, _, fix = hint.partition(": ")
        return Misconfiguration(
            reason=f"cliniko_{type(error).__name__.lower()}",
            setting=_secret_setting(secret, where),
            problem=problem,
            fix=fix + (f", into secret {secret!r}" if secret else ""),
        )
    if isinstance(error, ConfigurationError):
        if error.setting == "api_key":
            return Misconfiguration(
                reason="cliniko_api_key_malformed",
                setting=_secret_setting(secret, where),
                problem=error.message,
                fix="put the Cliniko API key alone in the secret, copied whole",
            )
        named = _CLIENT_SETTINGS.get(error.setting or "")
        setting, fix = named or (error.setting or "Cliniko settings", "correct it and redeploy")
        reason = (
            "cliniko_user_agent_invalid"
            if setting == "ClinikoUserAgent"
            else "cliniko_settings_invalid"
        )
        return Misconfiguration(reason=reason, setting=setting, problem=error.message, fix=fix)
    if isinstance(error, SecretMisconfigured):
        return _secret_problem(error, where)
    return None


def _secret_problem(error: SecretMisconfigured, where: str | None) -> Misconfiguration:
    setting = _secret_setting(error.name, where)
    if isinstance(error, SecretOutsidePrefix):
        fix = (
            f"the function may read only secrets whose names start with SecretsPrefix "
            f"{error.prefix!r}: create the secret under it and name that one"
            + (f" in {where}" if where else "")
            + ", or redeploy with a SecretsPrefix the name starts with"
        )
        return Misconfiguration(error.reason, setting, "outside SecretsPrefix", fix)
    if isinstance(error, SecretMissing):
        fix = (
            f"create it in this account and region (aws secretsmanager create-secret --name "
            f"{error.name} --secret-string file://value.txt), or correct the name"
        )
        return Misconfiguration(error.reason, setting, "no such secret", fix)
    if isinstance(error, SecretDeleted):
        fix = (
            f"restore it (aws secretsmanager restore-secret --secret-id {error.name}) before "
            "its recovery window ends, or name another secret"
        )
        return Misconfiguration(error.reason, setting, "the secret is scheduled for deletion", fix)
    if isinstance(error, SecretUndecryptable):
        fix = (
            "its KMS key will not decrypt it: enable the key (aws kms enable-key --key-id "
            "KEY), or cancel its deletion (aws kms cancel-key-deletion --key-id KEY), KEY "
            f"being the KmsKeyId that aws secretsmanager describe-secret --secret-id {error.name} "
            "shows"
        )
        return Misconfiguration(error.reason, setting, "the secret cannot be decrypted", fix)
    if isinstance(error, SecretDenied):
        fix = (
            "the function's role may not read it: it must lie under SecretsPrefix, and a "
            "secret encrypted with your own KMS key needs that key to allow the function"
        )
        return Misconfiguration(error.reason, setting, "access denied", fix)
    if isinstance(error, SecretNotPlainText):
        fix = (
            "store the value alone as plain text: in the console, Edit the secret's value on "
            "its Plaintext tab (the Key/value tab stores a JSON object); with the CLI, "
            f"aws secretsmanager put-secret-value --secret-id {error.name} --secret-string "
            "file://value.txt holding the value without quotes"
        )
        return Misconfiguration(error.reason, setting, f"the secret holds {error.holds}", fix)
    if isinstance(error, SecretEmpty):
        fix = "put the value alone in the secret as text (SecretString)"
        return Misconfiguration(error.reason, setting, "the secret holds no text", fix)
    # The message names the secret, which `setting` names already.
    problem = str(error).removeprefix(f"secret {error.name!r}: ")
    return Misconfiguration(error.reason, setting, problem, "correct the secret")


def report_account_key(
    error: BaseException, account: str, secret: str, *, logger: Any, metrics: Any
) -> None:
    """`report` what `error` reveals of `account`'s Cliniko key (its secret `secret`, named in
    cliniko_accounts.yaml), if it reveals a misconfiguration."""
    problem = diagnose(error, secret=secret, where=key_secret_setting(account))
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, account=account)


def report(problem: Misconfiguration, *, logger: Any, metrics: Any, **extra: Any) -> None:
    """One log line naming the setting and the fix, and one `Misconfigured` count (alarmed).
    `extra` adds fields to the line (e.g. what became of the work that failed)."""
    # A metric of its own, dimensioned by service alone whatever the invocation's other
    # metrics carry, so the alarm sees it; its record names the reason and the setting.
    with single_metric(
        name=METRIC,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions={"service": metrics.service},
    ) as metric:
        metric.add_metadata(key="reason", value=problem.reason)
        metric.add_metadata(key="setting", value=problem.setting)
    logger.error(
        problem.message, extra={**extra, "reason": problem.reason, "setting": problem.setting}
    )
