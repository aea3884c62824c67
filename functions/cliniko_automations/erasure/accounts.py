"""The Cliniko accounts an erasure covers, and which of them a request searches.

A person may be a contact in every account the form sources route to, so a request by email
searches each one. A contact id names a contact of one account only (ids are per account: 123
in one clinic is another person in the next), so a request by contact id acts on the account
it names, or on the deployment's default one (the account whose key the stack parameter
ClinikoApiKeySecretName names), or on the only one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cliniko_automations.erasure.errors import InvalidRequest
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.ports import ContactsClient


class ErasureAccounts:
    """The accounts by name, each with a Cliniko client made on first use by `make_client`
    (which may raise the adapters' errors: a key secret missing or malformed)."""

    def __init__(
        self,
        names: Sequence[str],
        make_client: Callable[[str], ContactsClient],
        *,
        default: str | None = None,
    ) -> None:
        if not names:
            raise ValueError("an erasure needs at least one Cliniko account")
        if default is not None and default not in names:
            raise ValueError(f"the default account {default!r} is not one of {list(names)}")
        self.names = tuple(names)
        self.default = default if default is not None or len(names) > 1 else names[0]
        self._make_client = make_client
        self._clients: dict[str, ContactsClient] = {}
        # A name whose key is another's: the name it is searched under (see `searched`).
        self.same_as: dict[str, str] = {}

    def client(self, account: str) -> ContactsClient:
        if account not in self._clients:
            self._clients[account] = self._make_client(account)
        return self._clients[account]

    def scope(self, request: ErasureRequest) -> list[str]:
        """The accounts `request` searches: InvalidRequest (naming the accounts, never the
        value sent) when it names an unknown account, or gives a contact id the deployment
        cannot place in one account."""
        listed = ", ".join(self.names)
        if request.account is not None:
            if request.account not in self.names:
                raise InvalidRequest(
                    {"account": f"is not an account of this deployment (its accounts: {listed})"}
                )
            return [request.account]
        if request.contact_id is None:
            return list(self.names)
        if self.default is None:
            raise InvalidRequest(
                {
                    "account": "is required with contact_id: contact ids are per Cliniko "
                    f"account (this deployment's accounts: {listed})"
                }
            )
        return [self.default]

    def searched(self, scope: Sequence[str]) -> list[str]:
        """The accounts of `scope` to search, each client made now (before anything is
        recorded: a key secret that cannot be read fails the call as a dependency does). Two
        names whose keys are one key are one Cliniko account, searched once, under the first
        (searched twice, its every contact would match twice); the other is `same_as` it."""
        searched: list[str] = []
        by_key: dict[str, str] = {}
        for account in scope:
            key_id = getattr(self.client(account), "key_id", None)
            if key_id is not None and key_id in by_key:
                self.same_as[account] = by_key[key_id]
                continue
            if key_id is not None:
                by_key[key_id] = account
            searched.append(account)
        return searched

    def names_of(self, account: str) -> list[str]:
        """`account` and the names `same_as` it: the change feed publishes its contacts'
        changes under each."""
        return [account, *(alias for alias, name in self.same_as.items() if name == account)]

    def request_count(self) -> int | None:
        """Requests sent to Cliniko so far by the clients made (None when none counts)."""
        counts = [getattr(client, "request_count", None) for client in self._clients.values()]
        known = [count for count in counts if count is not None]
        return sum(known) if known else None
