"""The Cliniko accounts an erasure covers, and which of them a request searches.

A person may be a contact in every account the form sources route to, so a request by email
searches each one. A contact id names a contact of one account only (ids are per account: 123
in one clinic is another person in the next), so a request by contact id acts on the account
it names, or on the deployment's default one (the account whose key the stack parameter
ClinikoApiKeySecretName names), or on the only one.

Two names whose keys are one key are one Cliniko account: it is searched once, under the
first name, and answered under both (the change feed publishes its contacts under each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cliniko_automations.cliniko.errors import ClinikoError
from cliniko_automations.erasure.errors import InvalidRequest
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.ports import ContactsClient


class ErasureAccounts:
    """The accounts by name, each with a Cliniko client made on first use by `make_client`
    (which may raise the adapters' errors: a key secret missing or malformed).

    `key_of(name)`: a fingerprint of the account's key (None when it cannot be read), which
    tells the names of one Cliniko account; without it every name is an account of its own.
    `key_replaced(name)`: whether the key Cliniko refused is no longer the one in the account's
    secret (rotated within the secrets' cache, the old one archived).
    `on_key_refused(name, error)`: hears, once a request per account, that Cliniko refused
    the key in the account's secret or its user (the deployment's to fix: `key_refused`).
    """

    def __init__(
        self,
        names: Sequence[str],
        make_client: Callable[[str], ContactsClient],
        *,
        default: str | None = None,
        key_of: Callable[[str], str | None] = lambda _name: None,
        key_replaced: Callable[[str], bool] = lambda _name: False,
        on_key_refused: Callable[[str, ClinikoError], None] = lambda _name, _error: None,
    ) -> None:
        if not names:
            raise ValueError("an erasure needs at least one Cliniko account")
        if default is not None and default not in names:
            raise ValueError(f"the default account {default!r} is not one of {list(names)}")
        self.names = tuple(names)
        self._default = default if default is not None or len(names) > 1 else names[0]
        self._make_client = make_client
        self._key_of = key_of
        self._key_replaced = key_replaced
        self._replaced: dict[str, bool] = {}
        self._on_key_refused = on_key_refused
        self._refused: set[str] = set()
        self._clients: dict[str, ContactsClient] = {}
        self._same_as: dict[str, str] | None = None

    @property
    def same_as(self) -> dict[str, str]:
        """Each name whose key an earlier name has, mapped to that name (read once)."""
        if self._same_as is None:
            first: dict[str, str] = {}
            self._same_as = {}
            for name in self.names:
                key = self._key_of(name)
                if key is None:
                    continue
                if key in first:
                    self._same_as[name] = first[key]
                else:
                    first[key] = name
        return self._same_as

    def searched_as(self, account: str) -> str:
        """The name `account` is searched under."""
        return self.same_as.get(account, account)

    @property
    def default(self) -> str | None:
        """The account a contact-id request naming none acts on, by the name it is searched
        under (None: such a request must name one)."""
        return None if self._default is None else self.searched_as(self._default)

    def names_of(self, account: str) -> list[str]:
        """`account` and the names `same_as` it: the change feed publishes its contacts'
        changes under each."""
        return [account, *(alias for alias, name in self.same_as.items() if name == account)]

    def key_replaced(self, account: str) -> bool:
        """`key_replaced(account)`, asked once: a request's client keeps its key, and every
        contact a key without the permission is refused (403) would read the secret again."""
        if account not in self._replaced:
            self._replaced[account] = self._key_replaced(account)
        return self._replaced[account]

    def key_refused(self, account: str, error: ClinikoError) -> None:
        """Cliniko refused the key in `account`'s secret, or its user (not a key rotated since:
        `key_replaced`): told once a request, however many of its contacts it was refused for."""
        if account not in self._refused:
            self._refused.add(account)
            self._on_key_refused(account, error)

    def client(self, account: str) -> ContactsClient:
        if account not in self._clients:
            self._clients[account] = self._make_client(account)
        return self._clients[account]

    def scope(self, request: ErasureRequest) -> list[str]:
        """The accounts `request` searches, each once, by the name it is searched under:
        InvalidRequest (naming the accounts, never the value sent) when it names an unknown
        account, or gives a contact id the deployment cannot place in one account."""
        listed = ", ".join(self.names)
        if request.account is not None:
            if request.account not in self.names:
                raise InvalidRequest(
                    {"account": f"is not an account of this deployment (its accounts: {listed})"}
                )
            return [self.searched_as(request.account)]
        if request.contact_id is None:
            return list(dict.fromkeys(self.searched_as(name) for name in self.names))
        if self.default is None:
            raise InvalidRequest(
                {
                    "account": "is required with contact_id: contact ids are per Cliniko "
                    f"account (this deployment's accounts: {listed})"
                }
            )
        return [self.default]

    def open(self, scope: Sequence[str]) -> None:
        """Make the clients of `scope` now, before anything is recorded: a key secret that
        cannot be read fails the call as a dependency does."""
        for account in scope:
            self.client(account)

    def request_count(self) -> int | None:
        """Requests sent to Cliniko so far by the clients made (None when none counts)."""
        counts = [getattr(client, "request_count", None) for client in self._clients.values()]
        known = [count for count in counts if count is not None]
        return sum(known) if known else None
