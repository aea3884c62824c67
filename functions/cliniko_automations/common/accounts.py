"""Which Cliniko accounts the functions work for: one file, `cliniko_accounts.yaml`.

Every function that talks to Cliniko (the intake worker, the cleanup, the change feed) finds
an account's API key through this file (env `CLINIKO_ACCOUNTS_FILE` overrides the shipped
one); the form sources and the cleanup rules name accounts by their key here. The file
names secrets; it never holds one. Check it with::

    python -m cliniko_automations.common.accounts --check [path]
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("common.accounts")

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cliniko_automations.common.config_file import (
    FORBID_EXTRA,
    Checked,
    ConfigError,
    Limits,
    load_config_file,
    print_problems,
)

if TYPE_CHECKING:
    import argparse

DEFAULT_PATH = Path(__file__).with_name("cliniko_accounts.yaml")
FILE_NAME = DEFAULT_PATH.name
# template.yaml's default SecretsPrefix (a test keeps them equal): the functions may read only
# secrets under the prefix deployed, so --check holds the files to it unless told another.
DEFAULT_SECRETS_PREFIX = "cliniko-automations/"
# Under SecretsPrefix, where the Cliniko keys and the webhook signing secrets are named:
# template.yaml denies the intake API, behind the public route, every secret under these and
# no other (tests/infrastructure keeps them equal), so --check holds the files to them.
CLINIKO_KEYS_FOLDER = "accounts/"
WEBHOOK_SECRETS_FOLDER = "webhooks/"


def _secret_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,512}", value):
        raise ValueError("not a Secrets Manager name (letters, digits and /_+=.@- only)")
    return value


SecretName = Annotated[str, Checked(_secret_name)]
# An account's name goes into keys (the erasure trail's sort keys, the change feed's items),
# log lines and answers: short, and plain.
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclasses.dataclass(frozen=True)
class Account:
    __pydantic_config__ = FORBID_EXTRA

    api_key_secret: SecretName
    # A label for the Cliniko user whose key it is, given when another account's key is that
    # user's too: Cliniko allows 200 requests a minute per user, so such accounts book on one
    # budget. A label (owner-1), never a person's name: its hash is logged, as a key's is.
    cliniko_user: Annotated[str, Limits(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] | None = None


@dataclasses.dataclass(frozen=True)
class ClinikoAccounts:
    __pydantic_config__ = FORBID_EXTRA

    accounts: Annotated[dict[str, Account], Limits(min_length=1)]

    def __post_init__(self) -> None:
        misnamed = [name for name in self.accounts if not ACCOUNT_NAME.fullmatch(name)]
        if misnamed:
            raise ValueError(
                f"account names {misnamed!r}: a name is 1-64 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit"
            )
        # One key is one Cliniko user of one account: under two names, the change feed would
        # publish each change twice (with two event ids) and the rate budget be kept twice.
        by_secret: dict[str, list[str]] = {}
        for name, account in self.accounts.items():
            by_secret.setdefault(account.api_key_secret, []).append(name)
        repeated = [names for names in by_secret.values() if len(names) > 1]
        if repeated:
            raise ValueError(
                "\n".join(
                    f"accounts {' and '.join(names)} name one api_key_secret: list an account once"
                    for names in repeated
                )
            )

    def __contains__(self, account: object) -> bool:
        return account in self.accounts

    def names(self) -> list[str]:
        return sorted(self.accounts)

    def user_of_secret(self, secret_name: str) -> str | None:
        """The `cliniko_user` of the account whose key is `secret_name`, if it names one."""
        for account in self.accounts.values():
            if account.api_key_secret == secret_name:
                return account.cliniko_user
        return None

    def key_secret(self, account: str) -> str | None:
        """The Secrets Manager name of `account`'s API key; None for an unknown account."""
        found = self.accounts.get(account)
        return found.api_key_secret if found else None

    def secret_references(self) -> list[tuple[str, str]]:
        """(where in the file, secret name) for every secret the file names."""
        return [
            (f"accounts.{name}.api_key_secret", account.api_key_secret)
            for name, account in self.accounts.items()
        ]


def key_secret_setting(account: str) -> str:
    """Where the deployment names `account`'s key, for a misconfiguration's message."""
    return f"{FILE_NAME} accounts.{account}.api_key_secret"


def require_secrets_within(
    path: Path, references: Iterable[tuple[str, str]], prefix: str, folder: str | None = None
) -> None:
    """Raise ConfigError, one problem per (where, secret name) in the file at `path` that the
    functions could not read under `prefix`; with `folder`, then one per such secret that is
    not under `prefix` + `folder` (`require_secrets_in_folder`)."""
    references = list(references)
    outside = [
        f"{where}: secret {name!r} is outside SecretsPrefix {prefix!r}, so the functions may "
        f"not read it: name a secret that starts with {prefix!r}, or deploy with a "
        "SecretsPrefix the name starts with and check with --secrets-prefix set to it"
        for where, name in references
        if not name.startswith(prefix)
    ]
    if outside:
        raise ConfigError(path, outside)
    if folder is not None:
        require_secrets_in_folder(path, references, prefix, folder)


def require_secrets_in_folder(
    path: Path, references: Iterable[tuple[str, str]], prefix: str, folder: str
) -> None:
    """Raise ConfigError, one problem per (where, secret name) in the file at `path` that is
    not under `prefix` + `folder` (CLINIKO_KEYS_FOLDER, WEBHOOK_SECRETS_FOLDER): the public
    intake API, denied those alone, could read it. An empty `prefix` (`--secrets-prefix ""`)
    checks nothing, as in require_secrets_within: no deployment has one."""
    if not prefix:
        return
    under = prefix + folder
    elsewhere = [
        f"{where}: secret {name!r} is not under {under!r}, the only names under "
        f"{prefix!r} that the intake API, behind the public route, may not read: name it "
        f"{under}..."
        for where, name in references
        if name.startswith(prefix) and not name.startswith(under)
    ]
    if elsewhere:
        raise ConfigError(path, elsewhere)


def run_check(
    check: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    default: str,
    accounts: str | None = None,
    secrets_prefix: str | None = None,
) -> int:
    """A configuration file's `--check` command: `check` of its arguments, the file (`default`
    when none is given); with `accounts`, an `--accounts` file named so; with
    `secrets_prefix`, the `--secrets-prefix` every secret the file names must start with,
    which it explains. `| head`, `> /dev/full` and Ctrl-C end it as they end the operating
    CLIs."""
    # The command line's alone: the functions import this module at a cold start.
    import argparse

    from cliniko_automations.common.operator_cli import parsed_arguments, run_tool

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", required=True, help="validate and exit")
    parser.add_argument("path", nargs="?", help=f"the file (default: {default})")
    if accounts is not None:
        parser.add_argument(
            "--accounts",
            help=f"{accounts} (default: $CLINIKO_ACCOUNTS_FILE, else the shipped one)",
        )
    if secrets_prefix is not None:
        parser.add_argument(
            "--secrets-prefix",
            default=DEFAULT_SECRETS_PREFIX,
            help=f"the SecretsPrefix you deploy with: {secrets_prefix} (default: the "
            f"template's, {DEFAULT_SECRETS_PREFIX})",
        )
    tool = prog.removeprefix("python -m cliniko_automations.")  # `changefeed.subscribers`
    args = parsed_arguments(tool, parser, argv)
    return run_tool(tool, lambda: check(args), aws_calls=False)


def accounts_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is not None:
        return Path(path)
    return Path(os.environ.get("CLINIKO_ACCOUNTS_FILE") or DEFAULT_PATH)


def load_accounts(path: str | os.PathLike[str] | None = None) -> ClinikoAccounts:
    """Read and validate the accounts file; raises ConfigError listing every mistake."""
    return load_config_file(accounts_path(path), ClinikoAccounts, "`accounts`")


def main(argv: Sequence[str] | None = None) -> int:
    return run_check(
        check,
        argv,
        prog="python -m cliniko_automations.common.accounts",
        description="Validate a Cliniko accounts file.",
        default=FILE_NAME,
        secrets_prefix="every secret named must start with it",
    )


def check(args: argparse.Namespace) -> int:
    from cliniko_automations.common.printable import counted

    try:
        accounts = load_accounts(args.path)
        require_secrets_within(
            accounts_path(args.path),
            accounts.secret_references(),
            args.secrets_prefix,
            CLINIKO_KEYS_FOLDER,
        )
    except ConfigError as exc:
        return print_problems(exc, "Cliniko accounts file")
    print(f"{accounts_path(args.path)}: {counted(len(accounts.accounts), 'account')}: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
