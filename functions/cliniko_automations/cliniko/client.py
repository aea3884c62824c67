"""`ClinikoClient`: the hand-written runtime around the generated `cliniko_client`.

Every call goes through the generated, typed operations (`cliniko_client.api.contacts.*`,
`sync_detailed`) on the generated `AuthenticatedClient`; what the generator cannot know lives
here and in transport.py: the shard, Basic auth, the User-Agent rule, timeouts, pacing and
retries (an httpx transport given through `httpx_args`), typed errors, pagination, and ids
kept as strings.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from itertools import pairwise
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from cliniko_client import AuthenticatedClient
from cliniko_client import errors as generated_errors
from cliniko_client.api.contacts import (
    archive_contact,
    create_contact,
    delete_contact,
    get_contact,
    list_contacts,
    replace_contact,
    update_contact,
)
from cliniko_client.models import (
    Contact,
    ContactList,
    ContactWrite,
    PhoneNumber,
    PhoneNumberWrite,
)
from cliniko_client.types import UNSET, Response, Unset

from cliniko_automations.common.http_transport import Urllib3Transport
from cliniko_automations.common.tls import tls_context

from . import errors, rules
from .config import (
    PER_PAGE,
    basic_auth_header,
    check_user_agent,
    resolve_base_url,
    shard_for_key,
)
from .filters import KEYSET_SORT, DateTimeFilter, Filter, NumericFilter
from .pacing import (
    CLINIKO_REQUESTS_PER_MINUTE,
    SYSTEM_CLOCK,
    Budget,
    Clock,
    RateBudget,
    key_fingerprint,
    shared_budget,
)
from .shared_pacing import (
    BudgetStore,
    CallerCap,
    Priority,
    SharedBudget,
    SharingPolicy,
    shared_store_budget,
)
from .transport import ClinikoTransport, RetryPolicy, TimeLeft, served_at

logger = logging.getLogger("cliniko_automations.cliniko")

CONNECT_TIMEOUT = 3.0
_DIGITS = re.compile(r"[0-9]+")
# int64's maximum: Cliniko's ids are 64-bit integers.
MAX_ID = 2**63 - 1
_SORT = re.compile(r"[a-z_]+(?::(?:asc|desc))?(?:,[a-z_]+(?::(?:asc|desc))?)*")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ContactPage:
    """One page of a contacts listing."""

    contacts: list[Contact]
    total_entries: int
    has_next: bool
    # Where it was read: page `page` of `per_page`, smaller than asked when the page asked for
    # was too long to hold (`_listing`); a caller moving page numbers reads on at this size.
    page: int = 1
    per_page: int = PER_PAGE
    # Cliniko's clock less this machine's when it answered, in seconds (its `Date`, in whole
    # seconds, so never more than it was); None when its `Date` was missing or not believed.
    clock_offset: float | None = None


class ClinikoClient:
    """A Cliniko contacts client for one API key.

    Thread-safe for concurrent calls (httpx's client and the rate budget are). Build one per
    key and reuse it: the connection pool and the key's rate budget live as long as it does.
    `clock`/`rng` are for tests: a client with its own clock gets its own rate budget.

    With a `budget_store`, the key's budget is shared by every process that holds the key
    (shared_pacing.py); `priority` says who is asking: `"interactive"` (intake, erasure;
    the default) or `"bulk"` (cleanup, a change feed: only what interactive callers leave, up
    to `sharing.bulk_share`). `on_pacing_fallback(reason)` hears when the store is unreachable
    and the process paces itself at a fraction of the budget. Without a store the process
    paces only itself (tests, the CLI).

    `requests_per_minute` below the limit caps this caller: without a store, this process's
    pace; with one, every process of the caller named `caller` (default: its priority)
    together, on the key's shared budget (a `CallerCap`, per the sharing policy's period).

    `cliniko_user` names the Cliniko user the key belongs to, when other keys (of other
    accounts) are that user's too: Cliniko's limit is per user, so the clients of all of them
    book on one budget. Left out, the key is its user's only one.
    """

    def __init__(
        self,
        api_key: str,
        user_agent: str,
        *,
        base_url: str | None = None,
        requests_per_minute: int = CLINIKO_REQUESTS_PER_MINUTE,
        timeout: float = 10.0,
        retry_policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        budget_store: BudgetStore | None = None,
        priority: Priority | str = Priority.INTERACTIVE,
        sharing: SharingPolicy | None = None,
        on_pacing_fallback: Callable[[str], None] | None = None,
        caller: str | None = None,
        time_left: TimeLeft | None = None,
        cliniko_user: str | None = None,
    ) -> None:
        self.shard = shard_for_key(api_key)
        self.user_agent = check_user_agent(user_agent)
        self.base_url = resolve_base_url(self.shard, base_url)
        if (
            isinstance(requests_per_minute, bool)
            or not isinstance(requests_per_minute, int)
            or requests_per_minute < 1
        ):
            raise errors.ConfigurationError("requests_per_minute must be a positive whole number")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise errors.ConfigurationError("timeout must be a positive number of seconds")
        self.key_id = key_fingerprint(api_key)  # safe to log; the key itself never is
        # What the budget is booked under: the key's user when named, else the key.
        budget_id = self.key_id
        if cliniko_user is not None:
            budget_id = key_fingerprint(f"user\0{cliniko_user}")
        self.priority = Priority(priority)
        budget: Budget
        if budget_store is not None:
            # Every process of the key books on one shared budget (shared_pacing.py).
            sharing = sharing or SharingPolicy()
            try:
                cap = (
                    CallerCap(caller or self.priority.value, requests_per_minute)
                    if requests_per_minute < sharing.limit
                    else None
                )
            except ValueError as exc:
                raise errors.ConfigurationError(str(exc)) from exc
            budget = (
                shared_store_budget(
                    budget_id,
                    budget_store,
                    policy=sharing,
                    priority=self.priority,
                    cap=cap,
                    on_fallback=on_pacing_fallback,
                )
                if clock is None
                else SharedBudget(
                    budget_id,
                    budget_store,
                    policy=sharing,
                    priority=self.priority,
                    cap=cap,
                    clock=clock,
                    rng=rng,
                    on_fallback=on_pacing_fallback,
                )
            )
        elif clock is None:
            # Clients of one key share the process's budget.
            budget = shared_budget(budget_id, requests_per_minute)
        else:
            # An injected (test) clock cannot share time with it: such a client paces alone.
            budget = RateBudget(requests_per_minute, 60.0, clock=clock)
        transport = ClinikoTransport(
            Urllib3Transport(tls_context()),
            shard=self.shard,
            budget=budget,
            policy=retry_policy,
            clock=clock or SYSTEM_CLOCK,
            rng=rng,
            time_left=time_left,
        )
        self.rate_budget = budget
        self._transport = transport
        self._clock = clock or SYSTEM_CLOCK
        scheme, token = basic_auth_header(api_key).split(" ", 1)
        self._api = AuthenticatedClient(
            base_url=self.base_url,
            token=token,
            prefix=scheme,
            # The encoding transport.py inflates (within its bound); httpx would ask for
            # deflate, and br and zstd too once their packages were installed.
            headers={
                "Accept": "application/json",
                "Accept-Encoding": "gzip",
                "User-Agent": self.user_agent,
            },
            # Well inside a Lambda's own timeout: a stuck connect fails fast and is retried.
            timeout=httpx.Timeout(float(timeout), connect=min(CONNECT_TIMEOUT, float(timeout))),
            follow_redirects=False,
            raise_on_unexpected_status=True,
            httpx_args={"transport": transport},
        )
        # Built now, not lazily on the first call, so two threads' first calls cannot race
        # to build two connection pools.
        self._api.get_httpx_client()
        # The works ("update", "archive") done by the route the seed names since Cliniko's
        # current one was missing (`_by_route`).
        self._seed_routes: set[str] = set()

    def __repr__(self) -> str:
        # Never the key: the generated client's own repr would print the auth token.
        return (
            f"ClinikoClient(shard={self.shard!r}, base_url={self.base_url!r}, "
            f"key_id={self.key_id!r})"
        )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests this client has sent, retries included."""
        return self._transport.request_count

    def finish_within(self, time_left: TimeLeft | None) -> None:
        """Every request from now on ends within `time_left()` seconds, retries and waits
        included (None: no bound): see transport.py. A client kept across invocations is
        given each invocation's."""
        self._transport.finish_within(time_left)

    def close(self) -> None:
        self._api.get_httpx_client().close()

    def __enter__(self) -> ClinikoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- contacts ------------------------------------------------------------------------

    def iter_contacts(
        self,
        filters: Sequence[Filter] = (),
        sort: str | None = None,
        *,
        on_clock_offset: Callable[[float | None], None] | None = None,
    ) -> Iterator[Contact]:
        """Every contact matching all `filters`, page after page (100 a page; fewer, for the
        rest of the listing, from a page too long to hold on: `_listing`).

        Pages are followed through `links.next` until it is absent, or until an empty page
        once every contact `total_entries` counts was seen (a next link there names nothing
        more; an empty page short of the count is refused). The next page's number is
        read from that link and asked for through the generated list operation with the same
        filters, so encoding and auth stay in one place and the key is never sent to a host a
        response body names. At the end the count seen is checked against `total_entries`:
        when Cliniko's count stayed the same throughout and still differs, `PaginationMismatch`
        is raised (pages skipped or repeated); when the count itself changed while listing,
        contacts were added or archived meanwhile, which offset pages cannot show
        consistently: that is logged, not raised (narrow filters and `updated_at` cursors are
        how callers stay exact).

        With `sort="id"` the pages after the first are read by id instead (`_by_id`), which a
        contact leaving the listing meanwhile cannot shift.

        `on_clock_offset` hears each page's Cliniko clock offset (`ContactPage.clock_offset`).
        """
        queries = _queries(filters)
        if sort is not None and (not isinstance(sort, str) or not _SORT.fullmatch(sort)):
            raise ValueError("sort reads like 'created_at', 'last_name,created_at:desc'")
        if sort == KEYSET_SORT:
            yield from self._by_id(filters, on_clock_offset)
            return
        page = 1
        per_page = PER_PAGE
        pages = 0
        first_total: int | None = None
        last_total = 0
        page_size = PER_PAGE
        seen: set[int | str] = set()
        while True:
            listing, contacts, page, size, offset = self._listing(queries, sort, page, per_page)
            if on_clock_offset is not None:
                on_clock_offset(offset)
            pages += 1
            last_total = _whole_count(listing.total_entries)
            if first_total is None:
                first_total = last_total
            if pages == 1 or size != per_page:
                # The pages Cliniko really serves, at each size asked: a server that pages by
                # fewer than asked (its default is 50) is followed all the same.
                page_size = min(size, max(1, len(listing.contacts)))
                # Asked on at the size served: `_listing` halves a page too long to hold from
                # its first contact, (page - 1) * per_page, only right at the size served.
                per_page = page_size
            for contact in contacts:
                contact = _normalise(contact)
                if contact.id in seen:
                    continue  # a page boundary moved under us; never yield a contact twice
                seen.add(contact.id)
                yield contact
            next_link = _next_link(listing)
            if next_link is None:
                break
            if not listing.contacts:
                if len(seen) == last_total:
                    # Past the last contact by Cliniko's own count (none matched, or the page
                    # after the last one): the link names nothing more. Refused, every lookup
                    # that found nobody failed.
                    break
                raise errors.UnexpectedResponse("Cliniko sent an empty page with a next link")
            # By page number, not by requests: pages of a smaller size go on from the page
            # number that reaches the same contact (`_listing`), and links only move forward.
            if page > math.ceil(max(first_total, last_total) / page_size) + 1:
                raise errors.UnexpectedResponse(
                    f"Cliniko kept sending next links after {pages} pages (page {page} of "
                    f"{page_size}) for {max(first_total, last_total)} contacts"
                )
            page = _next_page(next_link, page)
        if len(seen) != last_total:
            if first_total == last_total:
                raise errors.PaginationMismatch(
                    f"listing contacts saw {len(seen)} contacts over {pages} pages, "
                    f"but Cliniko counted {last_total}",
                    seen=len(seen),
                    total_entries=last_total,
                )
            logger.warning(
                "contacts changed while listing: saw %d, Cliniko counted %d then %d",
                len(seen),
                first_total,
                last_total,
            )

    def _by_id(
        self, filters: Sequence[Filter], on_clock_offset: Callable[[float | None], None] | None
    ) -> Iterator[Contact]:
        """`iter_contacts(filters, sort="id")`: page 1 in id order, then each next page from
        the last id read (`id:>LAST`, page 1 again). Offset pages shift when a contact leaves
        the listing between two of them (its email corrected, another erasure's scrub): each
        later one moves a place up, the first of the next page is never listed, and the
        count comes out right. A page read on from must be in id order, and after the id it
        was asked from (`UnexpectedResponse`: a Cliniko that ignored `sort=id` or `id:>`)."""
        after: int | None = None
        per_page = PER_PAGE
        while True:
            keyset = [*filters] if after is None else [*filters, NumericFilter("id").gt(after)]
            listing, contacts, _, per_page, offset = self._listing(
                _queries(keyset), KEYSET_SORT, 1, per_page
            )
            if on_clock_offset is not None:
                on_clock_offset(offset)
            page = [_normalise(contact) for contact in contacts]
            # Each request counts what is left from the id it asks from: an empty page with
            # more to come, or a last page short of that count, is an answer off the spec
            # (`iter_contacts` refuses both too), not the listing's end.
            left = _whole_count(listing.total_entries)
            linked = _next_link(listing) is not None
            if not page and linked and left:
                raise errors.UnexpectedResponse("Cliniko sent an empty page with a next link")
            if not linked and len(page) < left:
                raise errors.PaginationMismatch(
                    f"listing contacts by id saw {len(page)} on the last page, but Cliniko "
                    f"counted {left} from there",
                    seen=len(page),
                    total_entries=left,
                )
            more = linked and bool(page)
            ids = [int(contact.id) for contact in page]
            if (more or after is not None) and any(
                later <= earlier
                for earlier, later in pairwise([-1 if after is None else after, *ids])
            ):
                raise errors.UnexpectedResponse(
                    "Cliniko did not list the contacts in id order from the id asked for "
                    "(sort=id, q[]=id:>): they cannot be read on by id"
                )
            yield from page
            if not more:
                return
            after = ids[-1]

    def contacts_page(
        self,
        filters: Sequence[Filter] = (),
        sort: str | None = None,
        page: int = 1,
        *,
        per_page: int = PER_PAGE,
    ) -> ContactPage:
        """One page (100, or `per_page`) of the contacts matching all `filters`: for callers
        that move a cursor between requests (the change feed) instead of following
        `links.next`. A page too long to hold is read smaller, from its first contact
        (`_listing`): the page's `page` and `per_page` say where, and the caller reads on at
        that size."""
        queries = _queries(filters)
        if sort is not None and (not isinstance(sort, str) or not _SORT.fullmatch(sort)):
            raise ValueError("sort reads like 'created_at', 'last_name,created_at:desc'")
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise ValueError("page is a whole number from 1")
        if type(per_page) is not int or not 1 <= per_page <= PER_PAGE:
            raise ValueError(f"per_page is a whole number from 1 to {PER_PAGE}")
        listing, contacts, page, per_page, offset = self._listing(queries, sort, page, per_page)
        next_link = _next_link(listing)
        has_next = next_link is not None
        if next_link is not None:
            _next_page(next_link, page)  # a link elsewhere is refused, as iter_contacts does
        return ContactPage(
            contacts=[_normalise(contact) for contact in contacts],
            total_entries=_whole_count(listing.total_entries),
            has_next=has_next,
            page=page,
            per_page=per_page,
            clock_offset=offset,
        )

    def _listing(
        self, queries: list[str], sort: str | None, page: int, per_page: int
    ) -> tuple[ContactList, list[Contact], int, int, float | None]:
        """Page `page` of `per_page` contacts: the listing, its contacts, the page and size
        it was read at, and Cliniko's clock offset (`ContactPage.clock_offset`).

        Contacts' `notes` are unbounded: a page of long ones is an answer too long to hold
        (`AnswerTooLong`), and it was refused again by every run of every caller (a cleanup
        rule, an erasure's lookup, the change feed). So the same contacts are asked for in
        pages half the size, down to one contact, from the same one on: page p of size s
        starts at contact (p - 1) * s, which at size s // 2 is page 2p - 1 (an odd size
        halved starts a page a little before it: the contacts before it, read already, are
        left out). The caller reads on at the size returned. One contact too long to hold
        still raises `AnswerTooLong`."""
        offset = (page - 1) * per_page
        while True:
            try:
                response = self._call(
                    list_contacts.sync_detailed,
                    page=page,
                    per_page=per_page,
                    sort=UNSET if sort is None else sort,
                    q=queries if queries else UNSET,
                )
            except errors.AnswerTooLong:
                if per_page == 1:
                    raise
                per_page //= 2
                page = offset // per_page + 1
                logger.warning(
                    "a page of contacts was too long to hold; reading on %d a page", per_page
                )
                continue
            now = self._clock.time()
            served = served_at(response.headers, now)
            listing = self._expect(response, 200, ContactList, "GET /contacts")
            contacts = listing.contacts[offset - (page - 1) * per_page :]
            return listing, contacts, page, per_page, None if served is None else served - now

    def expect_requests(self, count: int) -> None:
        """The caller's next `count` requests are one piece of work (a lookup, then the
        create or update it decides): with a shared budget they are booked together, one
        round trip to its store instead of one per request."""
        self.rate_budget.expect(count)

    def list_contacts(
        self, filters: Sequence[Filter] = (), sort: str | None = None
    ) -> list[Contact]:
        return list(self.iter_contacts(filters, sort))

    def list_contacts_and_clock(
        self, filters: Sequence[Filter] = (), sort: str | None = None
    ) -> tuple[list[Contact], float | None]:
        """`list_contacts`, and Cliniko's clock less this machine's as the listing's answers
        told it (`ContactPage.clock_offset`, the first page's that did): for a caller that
        compares the contacts' timestamps, stamped by Cliniko's clock, with times of its own."""
        offsets: list[float] = []

        def heard(offset: float | None) -> None:
            if offset is not None:
                offsets.append(offset)

        contacts = list(self.iter_contacts(filters, sort, on_clock_offset=heard))
        return contacts, offsets[0] if offsets else None

    def get_contact(self, contact_id: str, *, include_archived: bool = False) -> Contact:
        """The contact; `include_archived` reaches it if it is archived, too (`_scope`)."""
        contact_id = _check_id(contact_id)
        response = self._call(get_contact.sync_detailed, contact_id, q=_scope(include_archived))
        return _normalise(self._expect(response, 200, Contact, "GET /contacts/{id}"))

    def create_contact(self, body: ContactWrite | Mapping[str, Any]) -> Contact:
        """Create a contact. Never retried once it may have been sent: on an unknown outcome
        `errors.CreateOutcomeUnknown` is raised and the caller deduplicates first."""
        write = _write_body(body)
        response = self._call(create_contact.sync_detailed, body=write)
        return _normalise(self._expect(response, 201, Contact, "POST /contacts"))

    def update_contact(
        self,
        contact_id: str,
        body: ContactWrite | Mapping[str, Any],
        *,
        include_archived: bool = False,
    ) -> Contact:
        """Change only the fields sent (`None` clears one). `include_archived` reaches the
        contact if it is archived, too (`_scope`). `PATCH /contacts/{id}`, Cliniko's current
        route, else the seed's `PUT /contacts/{id}`, which takes the same partial body
        (`_by_route`)."""
        contact_id = _check_id(contact_id)
        write = _write_body(body)
        scope = _scope(include_archived)

        def update(operation: Any, what: str) -> Contact:
            response = self._call(operation, contact_id, body=write, q=scope)
            return _normalise(self._expect(response, 200, Contact, what))

        return self._by_route(
            "update",
            lambda: update(update_contact.sync_detailed, "PATCH /contacts/{id}"),
            lambda: update(replace_contact.sync_detailed, "PUT /contacts/{id}"),
        )

    def archive_contact(self, contact_id: str) -> None:
        """Archive (Cliniko's only removal: the record, with its personal fields, remains).
        `POST /contacts/{id}/archive`, Cliniko's current route, else the legacy
        `DELETE /contacts/{id}`, which archives too (`_by_route`). Any 2xx is archived: the
        docs say 204, and a body beside it changes nothing."""
        contact_id = _check_id(contact_id)
        self._by_route(
            "archive",
            lambda: self._archive_with(archive_contact.sync_detailed, contact_id),
            lambda: self._archive_with(delete_contact.sync_detailed, contact_id),
        )

    def _by_route(self, work: str, current: Callable[[], T], seeds: Callable[[], T]) -> T:
        """`current()`, by Cliniko's current route; where that answers 404 or 405, `seeds()`,
        by the route the contacts page of Cliniko's docs (the seed) still names, which does
        the same work: a Cliniko (or a stand-in) without the newer route works all the same.
        Once the seed's route has worked where the current one was missing, this client uses
        it for `work`. A 404 from the current route and a 404 or 405 from the seed's is a
        contact that is not there (NotFound)."""
        missing: errors.NotFound | None = None
        if work not in self._seed_routes:
            try:
                return current()
            except errors.NotFound as exc:
                missing = exc
            except errors.UnexpectedResponse as exc:
                if exc.status_code != HTTPStatus.METHOD_NOT_ALLOWED:
                    raise
        try:
            done = seeds()
        except errors.UnexpectedResponse as exc:
            if missing is not None and exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
                raise missing from None  # the current route is served and found no contact
            raise
        self._seed_routes.add(work)
        return done

    def _archive_with(self, operation: Any, contact_id: str) -> None:
        try:
            status = int(self._call(operation, contact_id).status_code)
        except errors.UnexpectedResponse as exc:
            if exc.status_code is None:
                raise
            status = exc.status_code
        if not 200 <= status < 300:
            raise errors.UnexpectedResponse(
                f"Cliniko answered an archive with {status}", status_code=status
            )

    # -- plumbing ------------------------------------------------------------------------

    def _call(self, operation: Any, *args: Any, **kwargs: Any) -> Response[Any]:
        try:
            response: Response[Any] = operation(*args, client=self._api, **kwargs)
            return response
        except errors.ClinikoError:
            raise
        except generated_errors.UnexpectedStatus as exc:
            raise errors.UnexpectedResponse(
                f"Cliniko answered with a status the spec does not list ({exc.status_code})",
                status_code=exc.status_code,
            ) from exc
        except httpx.HTTPError as exc:
            raise errors.ConnectionFailed(
                f"talking to Cliniko failed ({type(exc).__name__})"
            ) from exc
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            # The generated models parse success bodies; a body off the spec lands here (a
            # JSON nested deeper than the parser goes, too).
            raise errors.UnexpectedResponse(
                f"Cliniko's answer does not match the spec ({type(exc).__name__})"
            ) from exc

    @staticmethod
    def _expect(response: Response[Any], status: int, model: type[T], what: str) -> T:
        parsed = response.parsed
        if int(response.status_code) != status or not isinstance(parsed, model):
            raise errors.UnexpectedResponse(
                f"Cliniko answered {what} with {int(response.status_code)}, expected {status}",
                status_code=int(response.status_code),
            )
        return parsed


def _whole_count(value: Any) -> int:
    """`total_entries` as Cliniko documents it, a whole number; anything else is an answer off
    the spec (a count sent as text would fail the page arithmetic with a TypeError)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.UnexpectedResponse("Cliniko's total_entries is not a whole number")
    return value


def _queries(filters: Sequence[Filter]) -> list[str]:
    if isinstance(filters, (str, Filter)):
        raise TypeError("filters is a sequence of Filter objects (build them with filters.py)")
    queries = []
    for item in filters:
        if not isinstance(item, Filter):
            raise TypeError("filters is a sequence of Filter objects (build them with filters.py)")
        queries.append(item.to_query())
    return queries


def _next_link(listing: ContactList) -> str | None:
    """`links.next`, None when there is no next page (left out, null or ""); a value that is
    not a link is an answer off the spec."""
    link: Any = listing.links.next_
    if isinstance(link, Unset) or link is None or link == "":
        return None
    if not isinstance(link, str):
        raise errors.UnexpectedResponse("Cliniko's links.next is not a link")
    return link


def _next_page(link: str, current: int) -> int:
    """The page number a `links.next` URL points at; it must move forward."""
    parts = urlsplit(link)
    pages = parse_qs(parts.query).get("page", [])
    if not parts.path.rstrip("/").endswith("/contacts") or len(pages) != 1:
        raise errors.UnexpectedResponse("Cliniko's links.next is not a contacts page link")
    if not _DIGITS.fullmatch(pages[0]) or int(pages[0]) <= current:
        raise errors.UnexpectedResponse("Cliniko's links.next does not point at a later page")
    return int(pages[0])


def _check_id(contact_id: object) -> str:
    # Ids are 64-bit integers; as strings they never meet a float. An int is accepted and
    # turned into its string; anything else is a caller's mistake, refused before sending,
    # as is a number past int64's maximum, which no Cliniko id can be (the spec's pattern).
    if isinstance(contact_id, int) and not isinstance(contact_id, bool) and contact_id > 0:
        contact_id = str(contact_id)
    if isinstance(contact_id, str) and _is_int64_digits(contact_id):
        return contact_id
    raise ValueError(
        "a contact id is a string of digits up to 9223372036854775807, e.g. '1390712996921091568'"
    )


def _is_int64_digits(text: str) -> bool:
    # The length first: int() of thousands of digits is slow, and refused past 4,300.
    return len(text) <= 19 and bool(_DIGITS.fullmatch(text)) and int(text) <= MAX_ID


def _scope(include_archived: bool) -> list[str] | Unset:
    # Cliniko likely answers 404 for an archived contact asked by id without a filter on
    # archived_at (unverified), as its lists leave them out; `*` is any value, so the filter
    # costs nothing for a contact that is not archived.
    return [DateTimeFilter("archived_at").any().to_query()] if include_archived else UNSET


def _normalise(contact: Contact) -> Contact:
    """`Contact.id` as a str whatever JSON type carried it (a number in the seed's examples)."""
    value = contact.id
    if isinstance(value, int) and not isinstance(value, bool):
        value = contact.id = str(value)
    # An id a request of ours could not name again (negative, past 64 bits) is refused here,
    # as off the spec: taken, the cleanup's next request refused it with a ValueError, after
    # its batch was checkpointed, and every retry of the run died on the same contact.
    if not (isinstance(value, str) and _is_int64_digits(value)):
        raise errors.UnexpectedResponse("Cliniko sent a contact whose id is not a 64-bit integer")
    for mark in (contact.created_at, contact.updated_at, contact.archived_at, contact.deleted_at):
        # A date-time carries its zone (RFC 3339); one without is off the spec, and compared
        # with the feed's cursor or a create's window it raised a TypeError, not this.
        if isinstance(mark, dt.datetime) and mark.utcoffset() is None:
            raise errors.UnexpectedResponse("Cliniko sent a contact date-time without a zone")
        # The generated parser keeps a mark it cannot read (a leap second's `:60`) as its raw
        # text: an archive mark that is no date-time read as "not archived" to the change
        # feed and as archived to the rules, and the feed published an unarchive nobody made.
        if mark is not None and not isinstance(mark, dt.datetime | Unset):
            raise errors.UnexpectedResponse("Cliniko sent a contact date-time it cannot read")
    phones = contact.phone_numbers
    if isinstance(phones, list) and not all(isinstance(p, PhoneNumber) for p in phones):
        # The generated parser keeps the whole raw list when one entry is off the spec (a
        # phone without its number); left raw, every caller's `to_dict` fails on it. Each
        # entry is kept, with a blank number where it had none: an erasure still sees a
        # phone to scrub, and whatever else it held stays readable.
        contact.phone_numbers = [_phone_number(p) for p in phones]
    return contact


def _phone_number(entry: Any) -> PhoneNumber:
    if isinstance(entry, PhoneNumber):
        return entry
    fields = dict(entry) if isinstance(entry, Mapping) else {}
    if not isinstance(fields.get("number"), str):
        fields["number"] = ""
    try:
        return PhoneNumber.from_dict(fields)
    except (KeyError, TypeError, ValueError, AttributeError):
        return PhoneNumber(number="")


def _write_body(body: ContactWrite | Mapping[str, Any]) -> ContactWrite:
    """The generated model of a contact body, checked to serialise before anything is sent.

    The generated `from_dict` keeps a value it cannot parse as it is (its unions fall back to
    the raw data), and `to_dict` then fails on a phone given as a plain mapping; so phones are
    parsed here, whether they come in a mapping or in a hand-built `ContactWrite`.
    """
    if isinstance(body, ContactWrite):
        unknown = set(body.additional_properties)
        fields = {
            name: value
            for name in rules.WRITABLE_FIELDS
            if not isinstance(value := getattr(body, name), Unset)
        }
    elif isinstance(body, Mapping):
        unknown = {str(name) for name in body if name not in rules.WRITABLE_FIELDS}
        fields = dict(body)
    else:
        raise TypeError("a contact body is a ContactWrite or a mapping of its fields")
    if unknown:
        # A typo'd or read-only field would be dropped by Cliniko without a word.
        raise errors.ValidationFailed(
            "Validation Failed",
            {name: "is not a writable contact field" for name in sorted(unknown)},
            status_code=None,
        )
    if "phone_numbers" in fields:
        phones = fields["phone_numbers"]
        wire = (
            [p.to_dict() if isinstance(p, PhoneNumberWrite) else p for p in phones]
            if isinstance(phones, list)
            else phones  # not a list: refused below, as Cliniko would
        )
        problem = rules.phone_numbers_problem(wire)
        if problem is not None:
            # Cannot be serialised by the generated model, so it is refused here, in
            # Cliniko's words, before anything is sent.
            raise errors.ValidationFailed(
                "Validation Failed", {"phone_numbers": problem}, status_code=None
            )
        fields["phone_numbers"] = wire
    model = ContactWrite.from_dict(fields)
    try:
        # As httpx will write it: a text no UTF-8 holds (a lone surrogate) or a number JSON
        # cannot carry fails here, refused before sending, not as if Cliniko had answered.
        json.dumps(model.to_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        raise errors.ValidationFailed(
            "Validation Failed", {"body": "cannot be sent as JSON"}, status_code=None
        ) from None
    return model
