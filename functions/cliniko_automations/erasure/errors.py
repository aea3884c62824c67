"""The erasure's domain errors, mapped to HTTP once (api_handler.py) and to exit codes once
(scripts/erasure.py). Messages carry ids, never personal values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ErasureError(Exception):
    """Base of the domain errors."""


class InvalidRequest(ErasureError):
    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems.items()))


class SeveralMatches(ErasureError):
    """One email identifies several contacts and the request did not say to erase them all
    (or its confirmation did not: a contact its 409 did not list matches too)."""

    def __init__(
        self,
        request_id: str,
        contact_ids: Sequence[str],
        accounts: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.request_id = request_id
        self.contact_ids = list(contact_ids)
        # The contact ids by account (an id names a contact of one account only).
        self.accounts = {name: list(ids) for name, ids in (accounts or {}).items()}
        where = ", ".join(f"{len(ids)} in {name}" for name, ids in self.accounts.items() if ids)
        super().__init__(
            f"{len(self.contact_ids)} contacts match{f' ({where})' if where else ''}; nothing "
            "was changed. Send the same request again with erase_all_matches set to erase all "
            "of them, or identify one by contact id (and account)."
        )


class RequestIdConflict(ErasureError):
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"request id {request_id} was already used for a different request; use a new id"
        )


class RequestInProgress(ErasureError):
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"request {request_id} is being processed by another call; try again")


# How the erasure API's 404 begins: another server's 404 (a mistyped API URL) says otherwise.
NOT_FOUND_MESSAGE_START = "no erasure request with"


class RequestNotFound(ErasureError):
    def __init__(self, request_id: str, *, echo: bool = True) -> None:
        # `echo=False`: what was asked for is no request id (a path segment the caller typed,
        # perhaps an email pasted in the wrong place), so it is not repeated.
        self.request_id = request_id
        super().__init__(
            f"{NOT_FOUND_MESSAGE_START} id {request_id}"
            if echo
            else f"{NOT_FOUND_MESSAGE_START} that id: a request id is 1-128 letters, digits, "
            "'.', '_', ':' or '-'"
        )


class ExtensionRefused(ErasureError):
    def __init__(self, request_id: str, why: str) -> None:
        self.request_id = request_id
        super().__init__(f"request {request_id} cannot be extended: {why}")


class AlreadyRecorded(Exception):
    """An audit record with this key exists (the log is append-only)."""


class ChainMoved(Exception):
    """Another writer took the chain's next place since this one read its head (an extension
    sent while an attempt runs): read the head again and link to it."""


class OverHourlyLimit(ErasureError):
    """The attempt would erase more contacts than the stack's ceiling leaves in the last hour
    (ceiling.py). Nothing changed; the request stays open and its id may be sent again."""

    def __init__(
        self, request_id: str, limit: int, used: int, wanted: int, retry_after: int | None
    ) -> None:
        self.request_id = request_id
        self.limit = limit
        self.used = used
        self.wanted = wanted
        # Seconds until the hour has room; None when this request alone is over the ceiling.
        self.retry_after = retry_after
        when = (
            f"send the same request id again in {retry_after} s"
            if retry_after is not None
            else "it can never fit: raise the stack parameter ErasureHourlyLimit, then send "
            "the same request id again"
        )
        super().__init__(
            f"request {request_id} would erase {wanted} contact(s), and {used} of the stack's "
            f"ceiling of {limit} per hour (ErasureHourlyLimit) are used; nothing was changed: "
            f"{when}."
        )

    def answer(self) -> dict[str, object]:
        """The refusal's body, as the API and the CLI's local mode give it."""
        return {
            "request_id": self.request_id,
            "status": "open",
            "reason": "erasure_hourly_limit",
            "limit": self.limit,
            "used": self.used,
            "would_erase": self.wanted,
            "message": str(self),
        }
