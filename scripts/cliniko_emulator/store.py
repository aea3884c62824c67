"""The emulator's contacts, per shard, in memory and optionally in a JSON file.

Records keep their date-times as aware `datetime`s truncated to whole seconds (Cliniko shows
`2018-02-12T17:58:18Z`, so a filter on a value it showed never misses the same second's
record). Every public method takes the store's lock, so the threaded server may call it
from any thread.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import fake
from .contact_rules import STRING_FIELDS, TYPE_NAMES, country_name, validate_contact_fields
from .filters import DATETIME_FIELDS, Filter, SortKey, apply_filters, sort_contacts

# Cliniko's ids are 64-bit integers with 19 digits today (e.g. 1390712996921091568).
FIRST_ID = 1_390_712_996_921_091_568
ID_STEP_MAX = 9_973
# The kinds of change `ContactStore.churn` makes.
CHURN_KINDS = ("create", "update", "archive", "unarchive")


class ValidationFailed(Exception):
    def __init__(self, errors: Mapping[str, str | None]) -> None:
        super().__init__("Validation Failed")
        self.errors = dict(errors)


class NotFound(Exception):
    pass


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def format_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_stored_datetime(value: Any, *, subsecond: bool = False) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment if subsecond else moment.replace(microsecond=0)


def normalize_number(number: str) -> str:
    """Digits only, keeping a leading `+` (Cliniko's normalised number is E.164-like)."""
    digits = re.sub(r"\D", "", number)
    return ("+" + digits) if number.strip().startswith("+") else digits


def _blank_contact() -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(STRING_FIELDS, "")
    record.update(
        country_code="",
        doctor_type=None,
        type_code=0,
        phone_numbers=[],
        archived_at=None,
        deleted_at=None,
    )
    return record


def apply_write(record: dict[str, Any], body: Mapping[str, Any]) -> bool:
    """Copies the writable fields of `body` onto `record`; True when something changed.

    Read-only fields (`id`, `country`, `type`, timestamps) and unknown keys are ignored, as
    Rails' strong parameters do. Blank and null strings are stored as "" (Cliniko returns
    blanks as ""); `phone_numbers`, when sent, replaces the whole list.
    """
    before = copy.deepcopy(record)
    for name in STRING_FIELDS & body.keys():
        record[name] = body[name] if body[name] is not None else ""
    if "country_code" in body:
        code = body["country_code"]
        record["country_code"] = code.upper() if code else ""
    if "doctor_type" in body:
        # Validated: a documented value, or null to clear it.
        record["doctor_type"] = body["doctor_type"]
    if "type_code" in body:
        record["type_code"] = body["type_code"]
    if "phone_numbers" in body:
        record["phone_numbers"] = [
            {"number": phone["number"], "phone_type": phone["phone_type"]}
            for phone in body["phone_numbers"] or []
        ]
    return record != before


class ContactStore:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, clock=now_utc) -> None:
        self._lock = threading.RLock()
        self._path = Path(path) if path else None
        self._clock: Callable[[], datetime] = clock
        self._shards: dict[str, dict[str, dict[str, Any]]] = {}
        self._last_id = FIRST_ID
        self._rng = random.Random(FIRST_ID)
        # Other state the emulator wants kept across restarts (registered keys).
        self.meta: dict[str, Any] = {}
        self._batching = False
        # Every change as the change feed must see it: (seq, shard, id, kind, updated_at).
        # In memory only: it is the tests' record of what happened, not Cliniko state.
        self._journal: list[dict[str, Any]] = []
        # Seeded times keep their fractions (the emulator's `subsecond_times`): shown in whole
        # seconds, as Cliniko shows them, but sorted and filtered by the instant.
        self.subsecond = False
        if self._path and self._path.exists():
            self._load()

    # -- persistence -------------------------------------------------------------------

    def _load(self) -> None:
        assert self._path is not None
        data = json.loads(self._path.read_text(encoding="utf-8"))
        self._last_id = int(data.get("last_id", FIRST_ID))
        self.meta = dict(data.get("meta", {}))
        for shard, records in data.get("shards", {}).items():
            bucket = self._shards.setdefault(shard, {})
            for record in records:
                for name in DATETIME_FIELDS:
                    record[name] = parse_stored_datetime(record.get(name))
                bucket[str(record["id"])] = record

    def _save(self) -> None:
        if self._path is None or self._batching:
            return
        data = {
            "last_id": self._last_id,
            "meta": self.meta,
            "shards": {
                shard: [self._serializable(record) for record in bucket.values()]
                for shard, bucket in self._shards.items()
            },
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves half a file behind.
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=self._path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, self._path)

    @staticmethod
    def _serializable(record: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for name in DATETIME_FIELDS:
            out[name] = format_datetime(record.get(name))
        return out

    def save(self) -> None:
        with self._lock:
            self._save()

    # -- helpers ---------------------------------------------------------------------

    def _next_id(self) -> str:
        self._last_id += self._rng.randint(1, ID_STEP_MAX)
        return str(self._last_id)

    def _bucket(self, shard: str) -> dict[str, dict[str, Any]]:
        return self._shards.setdefault(shard, {})

    def _journal_change(self, shard: str, record: Mapping[str, Any], kind: str) -> None:
        self._journal.append(
            {
                "seq": len(self._journal) + 1,
                "shard": shard,
                "id": record["id"],
                "kind": kind,
                "updated_at": format_datetime(record["updated_at"]),
            }
        )

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """The journal of creates, updates, archives and unarchives after `since`."""
        with self._lock:
            return [dict(entry) for entry in self._journal[since:]]

    def _find(self, shard: str, contact_id: str) -> dict[str, Any]:
        record = self._bucket(shard).get(str(contact_id))
        if record is None:
            raise NotFound(contact_id)
        return record

    # -- operations ------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._shards.clear()
            self._journal.clear()
            self._save()

    def create(self, shard: str, body: Mapping[str, Any], **stamps: Any) -> dict[str, Any]:
        """A new contact from a validated body; `stamps` may preset timestamps (seeding)."""
        errors = validate_contact_fields(body, creating=True)
        if errors:
            raise ValidationFailed(errors)
        with self._lock:
            moment = self._clock()
            record = _blank_contact()
            apply_write(record, body)
            record["id"] = self._next_id()
            fine = self.subsecond
            record["created_at"] = (
                parse_stored_datetime(stamps.get("created_at"), subsecond=fine) or moment
            )
            # A seeded contact given only a creation time was last changed then.
            record["updated_at"] = (
                parse_stored_datetime(stamps.get("updated_at"), subsecond=fine)
                or record["created_at"]
            )
            record["archived_at"] = parse_stored_datetime(stamps.get("archived_at"), subsecond=fine)
            self._bucket(shard)[record["id"]] = record
            if not self._batching:
                self._journal_change(shard, record, "created")
            self._save()
            return copy.deepcopy(record)

    def update(self, shard: str, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._find(shard, contact_id)
            errors = validate_contact_fields(body, creating=False)
            if errors:
                raise ValidationFailed(errors)
            if apply_write(record, body):
                # Like Rails, updated_at moves only when a value really changed.
                record["updated_at"] = self._clock()
                self._journal_change(shard, record, "updated")
                self._save()
            return copy.deepcopy(record)

    def archive(self, shard: str, contact_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._find(shard, contact_id)
            if record["archived_at"] is None:
                moment = self._clock()
                record["archived_at"] = moment
                record["updated_at"] = moment
                self._journal_change(shard, record, "archived")
                self._save()
            return copy.deepcopy(record)

    def unarchive(self, shard: str, contact_id: str) -> dict[str, Any]:
        """Cliniko's API cannot unarchive a contact, but its app can (staff restore one):
        `archived_at` clears and `updated_at` moves, which is what a poller sees."""
        with self._lock:
            record = self._find(shard, contact_id)
            if record["archived_at"] is not None:
                record["archived_at"] = None
                record["updated_at"] = self._clock()
                self._journal_change(shard, record, "unarchived")
                self._save()
            return copy.deepcopy(record)

    def get(self, shard: str, contact_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find(shard, contact_id))

    def query(
        self,
        shard: str,
        filters: Sequence[Filter],
        sort: Sequence[SortKey],
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of matching contacts and the number matching over every page."""
        with self._lock:
            matching = list(apply_filters(self._candidates(shard, filters), filters))
            ordered = sort_contacts(matching, sort)
            page = [copy.deepcopy(record) for record in ordered[offset : offset + limit]]
            return page, len(matching)

    def _candidates(self, shard: str, filters: Sequence[Filter]) -> Iterable[dict[str, Any]]:
        """The records a query must look at: with an `id =` filter only those ids (a lookup,
        as a database index would do), so batch lookups stay fast in a large store. The
        filters are still applied to them; the answer is the same as from a full scan."""
        bucket = self._bucket(shard)
        for flt in filters:
            if flt.field == "id" and flt.operator == "=":
                ids = flt.value if isinstance(flt.value, tuple) else (flt.value,)
                return [bucket[key] for key in dict.fromkeys(str(i) for i in ids) if key in bucket]
        return bucket.values()

    def all(self, shard: str | None = None, *, include_archived: bool = True) -> list[dict]:
        with self._lock:
            shards = [shard] if shard else sorted(self._shards)
            records = [
                {**copy.deepcopy(record), "_shard": name}
                for name in shards
                for record in self._shards.get(name, {}).values()
                if include_archived or record["archived_at"] is None
            ]
        return sort_contacts(records, [SortKey("created_at", False)])

    def seed(
        self,
        shard: str,
        count: int = 0,
        *,
        seed: int | None = None,
        archived: int = 0,
        contacts: Iterable[Mapping[str, Any]] = (),
        fields: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Adds `count` fake contacts (the last `archived` of them archived) and `contacts`.

        Fake contacts get creation times spread over the past two years, in id order, so
        lists and date filters have something realistic to work on. `fields` (a write body)
        is laid over every fake contact: bulk seeding of contacts a filter will match.
        """
        rng = random.Random(seed)
        created: list[dict[str, Any]] = []
        with self._lock:
            # One write of the state file for the whole seed, not one per contact.
            self._batching = True
            try:
                self._seed(shard, count, rng, archived, contacts, created, fields or {})
            finally:
                self._batching = False
            self._save()
        return created

    def _seed(
        self,
        shard: str,
        count: int,
        rng: random.Random,
        archived: int,
        contacts: Iterable[Mapping[str, Any]],
        created: list[dict[str, Any]],
        fields: Mapping[str, Any],
    ) -> None:
        contacts = list(contacts)
        errors = validate_contact_fields(fields, creating=False) if fields else {}
        if errors:
            raise ValidationFailed({f"fields.{k}": v for k, v in errors.items()})
        for index, given in enumerate(contacts):  # all or nothing
            errors = validate_contact_fields(given, creating=True)
            if errors:
                raise ValidationFailed({f"contacts[{index}].{k}": v for k, v in errors.items()})
        moment = self._clock()
        start = moment - timedelta(days=730)
        span = max(count, 1)
        for index in range(count):
            body = {**fake.contact(rng), **fields}
            created_at = start + timedelta(seconds=int(730 * 86400 * index / span))
            updated_at = min(moment, created_at + timedelta(days=rng.randint(0, 60)))
            stamps: dict[str, Any] = {"created_at": created_at, "updated_at": updated_at}
            if index >= count - archived:
                stamps["archived_at"] = updated_at
            created.append(self.create(shard, body, **stamps))
        for given in contacts:
            body = {k: v for k, v in given.items() if k not in DATETIME_FIELDS}
            stamps = {k: given[k] for k in DATETIME_FIELDS if given.get(k)}
            if given.get("archived") and "archived_at" not in stamps:
                stamps["archived_at"] = moment
            created.append(self.create(shard, body, **stamps))

    def churn(
        self,
        shard: str,
        count: int,
        *,
        seed: int | None = None,
        at: datetime | None = None,
        kinds: Sequence[str] = CHURN_KINDS,
        distinct: bool = False,
    ) -> list[dict[str, Any]]:
        """Makes `count` changes of the given kinds to random contacts of `shard`, as fast as
        they can be made (so many share a second), or all stamped `at` (a past second: a
        change whose transaction committed after a poll had already read that second).

        With `distinct`, no contact is changed twice by one call (so each change is a state a
        poller can see). With `at`, only contacts last changed at or before `at` are touched
        (updated_at never goes back). Returns the journal entries of the changes made. A kind
        with nothing to act on (no archived contact to unarchive) falls back to an update, or
        to a create.
        """
        unknown = set(kinds) - set(CHURN_KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be some of {', '.join(CHURN_KINDS)}")
        rng = random.Random(seed)
        with self._lock:
            clock = self._clock
            if at is not None:
                moment = parse_stored_datetime(at)
                self._clock = lambda: moment
            start = len(self._journal)
            limit = parse_stored_datetime(at) if at is not None else None
            touched: set[str] = set()
            self._batching = True
            try:
                for _ in range(count):
                    changed = self._churn_one(shard, rng, rng.choice(list(kinds)), touched, limit)
                    if distinct:
                        touched.add(changed)
            finally:
                self._batching = False
                self._clock = clock
            self._save()
            return [dict(entry) for entry in self._journal[start:]]

    def _churn_one(
        self,
        shard: str,
        rng: random.Random,
        kind: str,
        touched: set[str],
        limit: datetime | None,
    ) -> str:
        candidates = [
            r
            for r in self._bucket(shard).values()
            if r["id"] not in touched and (limit is None or r["updated_at"] <= limit)
        ]
        active = [r for r in candidates if r["archived_at"] is None]
        archived = [r for r in candidates if r["archived_at"] is not None]
        if kind == "unarchive" and archived:
            return self.unarchive(shard, rng.choice(archived)["id"])["id"]
        if kind == "archive" and active:
            return self.archive(shard, rng.choice(active)["id"])["id"]
        if kind in ("update", "archive", "unarchive") and active:
            record = rng.choice(active)
            field = rng.choice(("occupation", "company_name", "city", "notes", "last_name"))
            body = {field: f"{field} {rng.randrange(10**9)}"}
            return self.update(shard, record["id"], body)["id"]
        record = self.create(shard, fake.contact(rng))
        self._journal_change(shard, record, "created")
        return record["id"]


def render_contact(record: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """A stored record as Cliniko's JSON: id as a string, derived `country` and `type`."""
    out: dict[str, Any] = {
        "id": record["id"],
        "created_at": format_datetime(record["created_at"]),
        "updated_at": format_datetime(record["updated_at"]),
        "archived_at": format_datetime(record.get("archived_at")),
        "deleted_at": format_datetime(record.get("deleted_at")),
    }
    for name in sorted(STRING_FIELDS):
        out[name] = record.get(name) or ""
    code = record.get("country_code") or ""
    out["country_code"] = code
    out["country"] = (country_name(code) or "") if code else ""
    out["doctor_type"] = record.get("doctor_type")
    type_code = record.get("type_code")
    out["type_code"] = type_code
    out["type"] = TYPE_NAMES.get(type_code) if type_code is not None else None
    out["phone_numbers"] = [
        {
            "number": phone["number"],
            "phone_type": phone["phone_type"],
            "normalized_number": normalize_number(phone["number"]),
        }
        for phone in record.get("phone_numbers") or []
    ]
    out["links"] = {"self": f"{base_url}/contacts/{record['id']}"}
    return out
