"""The emulator as a WSGI application: Cliniko's contacts routes and the inspection API.

Cliniko routes live at `/{shard}/v1/contacts...` (so the client's base URL template is
`http://127.0.0.1:PORT/{shard}/v1`); the inspection API at `/_emulator/...` is never
rate-limited, faulted, logged or validated. Choices where Cliniko's behaviour is not
documented are listed in README.md beside this file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from openapi_core.templating.paths.exceptions import PathError
from werkzeug.datastructures import Headers

from . import validation
from .faults import Faults
from .filters import FilterError, parse_filter, parse_filters, parse_sort
from .ratelimit import DEFAULT_PER_MINUTE, RateLimiter
from .store import (
    CHURN_KINDS,
    ContactStore,
    NotFound,
    ValidationFailed,
    format_datetime,
    parse_stored_datetime,
    render_contact,
)

SHARD_PATTERN = re.compile(r"^[a-z]{2}\d{1,2}$")
ID_PATTERN = re.compile(r"^\d{1,19}$")
# `Name (someone@example.com)`: a name, then a contact email in parentheses.
USER_AGENT_PATTERN = re.compile(r"^\s*[^()\s][^()]*\(\s*[^@\s()]+@[^@\s()]+\.[^@\s()]+\s*\)\s*$")
ROUTE = re.compile(r"^/(?P<shard>[^/]+)/v1/contacts(?:/(?P<id>[^/]+)(?P<archive>/archive)?)?/?$")
CLINIKO_PREFIX = re.compile(r"^/[^/]+/v1(/|$)")
MAX_PER_PAGE = 100
# The contact route's updates: the seed documents PUT, today's docs PATCH (the same body).
UPDATE_METHODS = ("PUT", "PATCH")
DEFAULT_PER_PAGE = 50
LOG_LIMIT = 10_000
VIOLATION_LIMIT = 1_000
BODY_LOG_LIMIT = 10_000


class DropConnection(Exception):
    """Raised by the app to make the server close the socket without an answer."""


class Reply:
    """A response under construction (status, headers, body bytes)."""

    def __init__(self, status: int, body: bytes = b"", content_type: str | None = None) -> None:
        self.status = status
        self.headers = Headers()
        if content_type:
            self.headers["Content-Type"] = content_type
        self.body = body

    @classmethod
    def json(cls, status: int, data: Any) -> Reply:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json; charset=utf-8")

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Reply:
        return cls(status, text.encode("utf-8"), f"{content_type}; charset=utf-8")


STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def injected_error(status: int) -> Reply:
    """What an overloaded Cliniko or its load balancer answers: not always JSON."""
    if status == 500:
        return Reply.json(500, {"message": "We're sorry, but something went wrong."})
    title = f"{status} {STATUS_TEXT.get(status, 'Error')}"
    return Reply.text(
        status,
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>",
        "text/html",
    )


def key_shard(key: str) -> str:
    """The shard of an API key: its suffix after the last '-', au1 without one."""
    if "-" not in key:
        return "au1"
    suffix = key.rsplit("-", 1)[1]
    if not SHARD_PATTERN.match(suffix):
        raise ValueError("the key's suffix after the last '-' must be a shard such as au1")
    return suffix


class Emulator:
    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        state_file: str | None = None,
        per_minute: int | None = DEFAULT_PER_MINUTE,
        time_scale: float = 1.0,
        validate: bool = True,
        strict: bool = False,
        spec_path: str | None = None,
        log_limit: int = LOG_LIMIT,
        archived_get: str = "visible",
    ) -> None:
        if archived_get not in ("visible", "hidden"):
            raise ValueError("archived_get must be 'visible' or 'hidden'")
        self._lock = threading.Lock()
        # Moved forward by `POST clock` so a test can replay a message "days later": the
        # contacts' timestamps then follow the same clock as the code under test.
        self.clock_offset = timedelta(0)
        # How far Cliniko's own clock is from this machine's (either way): its contacts'
        # timestamps, its answers' `Date` and its `X-RateLimit-Reset` all follow it, so a
        # test can put the code under test and Cliniko's clock apart.
        self.clock_skew = timedelta(0)
        self.store = ContactStore(state_file, clock=self._now)
        self.limiter = RateLimiter(per_minute, time_scale, clock=self.unix_time)
        self._default_rate = (per_minute, time_scale)
        self.faults = Faults()
        self.validator = validation.SpecValidator(validation.Path(spec_path) if spec_path else None)
        self.validate = validate
        self.strict = strict
        self._defaults = {"validate": validate, "strict": strict, "archived_get": archived_get}
        self._initial_keys = list(keys)
        self._keys: dict[str, str] = {}  # key -> shard
        self._users: dict[str, str] = {}  # key -> the Cliniko user it belongs to
        self._read_only: set[str] = set()
        for key in self._initial_keys:
            self.add_key(key)
        for saved in self.store.meta.get("keys", []):
            saved = saved if isinstance(saved, dict) else {"key": saved}
            self.add_key(
                saved["key"], user=saved.get("user"), read_only=saved.get("read_only", False)
            )
        self.archived_get = archived_get
        self.like_minds_case = False
        self.seed_shapes = False
        # Whether answers carry `Date` (an HTTP server with a clock sends one; a proxy in
        # front of Cliniko may not pass it on).
        self.date_header = True
        self.update_methods = UPDATE_METHODS
        self.unfilterable: frozenset[str] = frozenset()
        # Seconds before a new contact shows in lists (Cliniko's docs do not promise at once).
        self.list_lag = 0.0
        self._log: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self._seq = 0
        self._counters: Counter[str] = Counter()
        self._violations: list[dict[str, Any]] = []

    # -- state ----------------------------------------------------------------------

    def add_key(self, key: str, *, user: str | None = None, read_only: bool = False) -> str:
        """Registers a key; returns its shard.

        Keys of the same `user` share one rate-limit budget (Cliniko limits per user, across
        all of that user's keys); a `read_only` key gets 403 on every write, as a key of a
        Cliniko user without the permission does.
        """
        if not isinstance(key, str) or not key or ":" in key or any(c.isspace() for c in key):
            raise ValueError("a key must be a non-empty string without ':' or spaces")
        if user is not None and (not isinstance(user, str) or not user):
            raise ValueError("user must be a non-empty string")
        shard = key_shard(key)
        with self._lock:
            self._keys[key] = shard
            self._users[key] = user or key
            if read_only:
                self._read_only.add(key)
            else:
                self._read_only.discard(key)
            self._remember_keys()
        self.store.save()
        return shard

    def revoke_key(self, key: str) -> None:
        """Forgets a key, as archiving it in Cliniko does: 401 from then on."""
        with self._lock:
            self._keys.pop(key, None)
            self._read_only.discard(key)
            self._remember_keys()
        self.store.save()

    def _remember_keys(self) -> None:
        self.store.meta["keys"] = [
            {"key": k, "user": self._users[k], "read_only": k in self._read_only}
            for k in sorted(set(self._keys) - set(self._initial_keys))
        ]

    def reset(self) -> None:
        """Empties contacts, log, counters, violations; faults, rate limit, validation and
        behaviour back to the start-up settings.

        Keys given at start-up (CLI `--key`, constructor) survive; keys added later do not.
        """
        with self._lock:
            self._keys = {key: key_shard(key) for key in self._initial_keys}
            self._users = {key: key for key in self._initial_keys}
            self._read_only = set()
            self.store.meta["keys"] = []
            self._log.clear()
            self._counters.clear()
            self._violations.clear()
            self._seq = 0
        self.archived_get = self._defaults["archived_get"]
        self.store.subsecond = False
        self.like_minds_case = False
        self.seed_shapes = False
        self.date_header = True
        self.update_methods = UPDATE_METHODS
        self.unfilterable = frozenset()
        self.list_lag = 0.0
        self.strict = self._defaults["strict"]
        self.validate = self._defaults["validate"]
        self.faults.reset()
        self.clock_offset = timedelta(0)
        self.clock_skew = timedelta(0)
        self.limiter.configure(*self._default_rate)
        self.store.reset()

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._counters.clear()

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log if entry["seq"] > since]

    def counters(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counters)
        out: dict[str, Any] = {"total": counts.get("total", 0)}
        for prefix in ("by_method", "by_status", "by_method_status"):
            out[prefix] = {
                name.split(":", 1)[1]: value
                for name, value in counts.items()
                if name.startswith(prefix + ":")
            }
        return out

    def violations(self) -> dict[str, Any]:
        with self._lock:
            items = list(self._violations)
        return {
            "spec": str(self.validator.path),
            "spec_loaded": self.validator.available,
            "spec_error": self.validator.load_error,
            "request": [v for v in items if v["kind"] == "request"],
            "response": [v for v in items if v["kind"] == "response"],
        }

    def _record_violation(self, kind: str, entry: Mapping[str, Any], errors: list[str]) -> None:
        with self._lock:
            if len(self._violations) < VIOLATION_LIMIT:
                self._violations.append(
                    {
                        "kind": kind,
                        "seq": entry["seq"],
                        "method": entry["method"],
                        "path": entry["path"],
                        "query": entry["query_string"],
                        "status": entry.get("status"),
                        "errors": errors,
                    }
                )

    # -- WSGI -----------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/_emulator/") or path == "/_emulator":
            reply = self._control(environ, path)
        elif CLINIKO_PREFIX.match(path):
            reply = self._cliniko(environ, path)
        else:
            reply = Reply.json(404, {"message": "Not found"})
        reply.headers["Content-Length"] = str(len(reply.body))
        start_response(f"{reply.status} {STATUS_TEXT.get(reply.status, '')}", list(reply.headers))
        return [reply.body]

    # -- Cliniko routes -------------------------------------------------------------

    def _cliniko(self, environ: dict[str, Any], path: str) -> Reply:
        method = environ["REQUEST_METHOD"].upper()
        query_string = environ.get("QUERY_STRING", "")
        query = parse_qsl(query_string, keep_blank_values=True)
        body = _read_body(environ)
        headers = _headers(environ)
        with self._lock:
            self._seq += 1
            seq = self._seq
        match = ROUTE.match(path)
        shard = match["shard"] if match else path.split("/")[1]
        entry: dict[str, Any] = {
            "seq": seq,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method,
            "path": path,
            "query_string": query_string,
            "query": _multi(query),
            "shard": shard,
            "key_shard": None,
            "user_agent": headers.get("User-Agent"),
            "content_type": headers.get("Content-Type"),
            "body": _loggable_body(body),
            "status": None,
            "fault": None,
        }
        request = validation.make_request(
            shard=shard if SHARD_PATTERN.match(shard) else "au1",
            method=method,
            path=path[len(shard) + 1 :],
            query=query,
            headers=headers,
            content_type=headers.get("Content-Type", ""),
            body=body,
        )
        known_operation = True
        request_errors: list[str] = []
        if self.validate:
            request_errors = self.validator.request_errors(request)
            known_operation = not any(
                e.startswith(("PathNotFound", "OperationNotFound", "ServerNotFound"))
                for e in request_errors
            )

        decision = self.faults.decide(method, path)
        if decision.latency_s:
            time.sleep(decision.latency_s)
        after_effect = decision.after_effect and not decision.is_throttle
        try:
            if decision.is_fault and not after_effect:
                reply = self._fault_reply(decision, entry)
            else:
                reply = self._answer(method, match, shard, query, headers, body, entry, environ)
                if decision.is_fault and reply.status < 400:
                    reply = self._fault_reply(decision, entry, after_effect=True)
        except DropConnection:
            if request_errors:
                self._record_violation("request", entry | {"status": "dropped"}, request_errors)
            self._finish(entry, "dropped")
            raise
        if request_errors:
            self._record_violation("request", entry | {"status": reply.status}, request_errors)

        if self.validate and known_operation:
            response = validation.make_response(reply.status, reply.headers, reply.body)
            try:
                errors = self.validator.response_errors(request, response)
            except PathError as exc:
                errors = [validation.describe_error(exc)]
            if errors:
                self._record_violation("response", entry | {"status": reply.status}, errors)
                if self.strict:
                    reply = Reply.json(
                        500,
                        {"message": "emulator response violates openapi.yaml", "errors": errors},
                    )
        self._finish(entry, reply.status)
        return reply

    def _fault_reply(self, decision, entry: dict[str, Any], *, after_effect: bool = False) -> Reply:
        # The log says whether the request took effect first: "drop after effect" is a write
        # Cliniko committed whose answer never arrived.
        suffix = " after effect" if after_effect else ""
        if decision.drop:
            entry["fault"] = "drop" + suffix
            raise DropConnection()
        if decision.throttle_reset:
            entry["fault"] = "throttle"
            # The injected throttle's reset is on real time; Cliniko states it on its clock.
            skew = self.clock_skew.total_seconds()
            return self._throttled(decision.throttle_reset + math.ceil(skew))
        entry["fault"] = f"error {decision.status}{suffix}"
        return injected_error(decision.status)

    @staticmethod
    def _throttled(reset: int) -> Reply:
        reply = Reply.json(429, {"message": "Too many requests"})
        reply.headers["X-RateLimit-Reset"] = str(reset)
        return reply

    def _finish(self, entry: dict[str, Any], status: int | str) -> None:
        entry["status"] = status
        with self._lock:
            self._log.append(entry)
            self._counters["total"] += 1
            self._counters[f"by_method:{entry['method']}"] += 1
            self._counters[f"by_status:{status}"] += 1
            self._counters[f"by_method_status:{entry['method']} {status}"] += 1

    def _authenticate(self, headers: Mapping[str, str], shard: str) -> str | None:
        """The registered key the request authenticates with on this shard, else None."""
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            user = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username = user.split(":", 1)[0]
        with self._lock:
            # The key may be sent with or without its shard suffix.
            for candidate in (username, f"{username}-{shard}"):
                if candidate in self._keys:
                    return candidate if self._keys[candidate] == shard else None
        return None

    def _answer(
        self,
        method: str,
        match: re.Match[str] | None,
        shard: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        entry: dict[str, Any],
        environ: Mapping[str, Any],
    ) -> Reply:
        if not USER_AGENT_PATTERN.match(headers.get("User-Agent", "")):
            return Reply.text(403, "Requires a user agent")
        key = self._authenticate(headers, shard) if SHARD_PATTERN.match(shard) else None
        if key is None:
            reply = Reply.text(401, "HTTP Basic: Access denied.\n")
            reply.headers["WWW-Authenticate"] = 'Basic realm="Application"'
            return reply
        entry["key_shard"] = self._keys.get(key)
        reset = self.limiter.hit(self._users.get(key, key))
        if reset is not None:
            entry["fault"] = "rate_limit"
            return self._throttled(reset)
        if match is None:
            return Reply.json(404, {"message": "Not found"})
        if key in self._read_only and method not in ("GET", "HEAD"):
            return Reply.json(403, {"message": "You do not have permission to do this"})
        base_url = f"http://{environ.get('HTTP_HOST') or '127.0.0.1'}/{shard}/v1"
        contact_id, archive = match["id"], match["archive"]
        try:
            if contact_id is None:
                if method == "GET":
                    return self._list(shard, query, base_url)
                if method == "POST":
                    fields = _write_body(headers, body)
                    if isinstance(fields, Reply):
                        return fields
                    record = self.store.create(shard, fields)
                    reply = Reply.json(201, render_contact(record, base_url))
                    reply.headers["Location"] = f"{base_url}/contacts/{record['id']}"
                    return reply
                return _not_allowed("GET, POST")
            if not ID_PATTERN.match(contact_id):
                return Reply.json(404, {"message": "Not found"})
            if archive:
                if method != "POST":
                    return _not_allowed("POST")
                self._visible(shard, contact_id, query)
                self.store.archive(shard, contact_id)
                return Reply(204)
            if method == "GET":
                record = self._visible(shard, contact_id, query)
                return Reply.json(
                    200, self._as_read(render_contact(record, base_url), listed=False)
                )
            if method in UPDATE_METHODS and method not in self.update_methods:
                # As a Cliniko whose router lacks the route: no such resource.
                return Reply.json(404, {"message": "Not found"})
            if method in UPDATE_METHODS:
                fields = _write_body(headers, body)
                if isinstance(fields, Reply):
                    return fields
                self._visible(shard, contact_id, query)
                record = self.store.update(shard, contact_id, fields)
                return Reply.json(200, render_contact(record, base_url))
            if method == "DELETE":
                self._visible(shard, contact_id, query)
                self.store.archive(shard, contact_id)
                return Reply(204)
            return _not_allowed("GET, PUT, PATCH, DELETE")
        except NotFound:
            return Reply.json(404, {"message": "Not found"})
        except ValidationFailed as exc:
            return Reply.json(422, {"message": "Validation Failed", "errors": exc.errors})
        except FilterError as exc:
            return Reply.json(400, {"message": str(exc)})

    def _visible(self, shard: str, contact_id: str, query: list[tuple[str, str]]) -> dict:
        record = self.store.get(shard, contact_id)
        if record["archived_at"] is not None and self.archived_get == "hidden":
            asked = any(k == "q[]" and v.startswith("archived_at:") for k, v in query)
            if not asked:
                raise NotFound(contact_id)
        return record

    def _list(self, shard: str, query: list[tuple[str, str]], base_url: str) -> Reply:
        params: dict[str, str] = {}
        raw_filters: list[str] = []
        for name, value in query:
            if name == "q[]":
                raw_filters.append(value)
            else:
                params[name] = value
        page = _positive_int(params.get("page"), "page", default=1)
        per_page = _positive_int(params.get("per_page"), "per_page", default=DEFAULT_PER_PAGE)
        if per_page > MAX_PER_PAGE:
            raise FilterError(f"per_page must be between 1 and {MAX_PER_PAGE}")
        filters = parse_filters(raw_filters, like_minds_case=self.like_minds_case)
        for flt in filters:
            if flt.field in self.unfilterable:
                raise FilterError(f"{flt.field} is not filterable")
        if self.list_lag:
            # Made within the lag: not listed yet (an index catching up), read by id all the same.
            shown_before = (self._now() - timedelta(seconds=self.list_lag)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            filters.append(parse_filter(f"created_at:<{shown_before}"))
        sort = parse_sort(params.get("sort"), params.get("order"))
        contacts, total = self.store.query(
            shard, filters, sort, offset=(page - 1) * per_page, limit=per_page
        )
        others = [(k, v) for k, v in query if k != "page"]

        def link(number: int) -> str:
            return f"{base_url}/contacts?" + urlencode([("page", str(number)), *others])

        links = {"self": link(page)}
        if page * per_page < total:
            links["next"] = link(page + 1)
        if page > 1:
            links["previous"] = link(page - 1)
        return Reply.json(
            200,
            {
                "contacts": [
                    self._as_read(render_contact(record, base_url), listed=True)
                    for record in contacts
                ],
                "total_entries": total,
                "links": links,
            },
        )

    # -- inspection API -------------------------------------------------------------

    def _control(self, environ: dict[str, Any], path: str) -> Reply:
        method = environ["REQUEST_METHOD"].upper()
        name = path[len("/_emulator/") :].strip("/")
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        raw = _read_body(environ)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return Reply.json(400, {"message": "body must be JSON"})
        if not isinstance(data, dict):
            return Reply.json(400, {"message": "body must be a JSON object"})
        handler = CONTROL_ROUTES.get((method, name))
        if handler is None:
            return Reply.json(404, {"message": f"no inspection route {method} /_emulator/{name}"})
        try:
            return handler(self, data, query)
        except (ValueError, TypeError, ValidationFailed) as exc:
            detail = exc.errors if isinstance(exc, ValidationFailed) else str(exc)
            return Reply.json(400, {"message": "bad inspection request", "detail": detail})

    def _c_health(self, data, query) -> Reply:
        return Reply.json(200, {"ok": True})

    def _c_reset(self, data, query) -> Reply:
        self.reset()
        return Reply.json(200, {"ok": True})

    def _c_add_key(self, data, query) -> Reply:
        read_only = data.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ValueError("read_only must be true or false")
        shard = self.add_key(data.get("key"), user=data.get("user"), read_only=read_only)
        return Reply.json(201, {"shard": shard})

    def _c_revoke_key(self, data, query) -> Reply:
        self.revoke_key(data.get("key"))
        return Reply.json(200, {"ok": True})

    def _c_keys(self, data, query) -> Reply:
        with self._lock:
            shards = sorted(self._keys.values())
        # Never the keys themselves: the inspection output may end up in logs.
        return Reply.json(200, {"count": len(shards), "shards": shards})

    def _c_seed(self, data, query) -> Reply:
        count = data.get("count", 0)
        archived = data.get("archived", 0)
        for name, value in (("count", count), ("archived", archived)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0")
        shard = data.get("shard", "au1")
        if not isinstance(shard, str) or not SHARD_PATTERN.match(shard):
            raise ValueError("shard must look like au1")
        contacts = data.get("contacts", [])
        if not isinstance(contacts, list) or not all(isinstance(c, dict) for c in contacts):
            raise ValueError("contacts must be a list of objects")
        fields = data.get("fields") or {}
        if not isinstance(fields, dict):
            raise ValueError("fields must be an object (a contact write body)")
        created = self.store.seed(
            shard,
            count,
            seed=data.get("seed"),
            archived=min(archived, count),
            contacts=contacts,
            fields=fields,
        )
        return Reply.json(201, {"count": len(created), "ids": [c["id"] for c in created]})

    def _c_clock(self, data, query) -> Reply:
        return Reply.json(
            200,
            {
                "offset_seconds": self.clock_offset.total_seconds(),
                "skew_seconds": self.clock_skew.total_seconds(),
            },
        )

    def _c_set_clock(self, data, query) -> Reply:
        offset = data.get("offset_seconds", self.clock_offset.total_seconds())
        if isinstance(offset, bool) or not isinstance(offset, int | float) or offset < 0:
            raise ValueError("offset_seconds must be a number >= 0")
        skew = data.get("skew_seconds", self.clock_skew.total_seconds())
        if isinstance(skew, bool) or not isinstance(skew, int | float) or not math.isfinite(skew):
            raise ValueError("skew_seconds must be a number (negative: Cliniko's clock behind)")
        self.clock_offset = timedelta(seconds=offset)
        self.clock_skew = timedelta(seconds=skew)
        return self._c_clock(data, query)

    def _c_requests(self, data, query) -> Reply:
        return Reply.json(200, {"requests": self.requests(int(query.get("since", 0)))})

    def _c_clear_requests(self, data, query) -> Reply:
        self.clear_log()
        return Reply.json(200, {"ok": True})

    def _c_counters(self, data, query) -> Reply:
        return Reply.json(200, self.counters())

    def _c_faults(self, data, query) -> Reply:
        return Reply.json(200, self.faults.describe())

    def _c_set_faults(self, data, query) -> Reply:
        self.faults.configure(data)
        return Reply.json(200, self.faults.describe())

    def _c_rate_limit(self, data, query) -> Reply:
        return Reply.json(200, self.limiter.settings())

    def _c_set_rate_limit(self, data, query) -> Reply:
        per_minute = data.get("per_minute", DEFAULT_PER_MINUTE)
        time_scale = data.get("time_scale", 1)
        if per_minute is not None and (
            isinstance(per_minute, bool) or not isinstance(per_minute, int)
        ):
            raise ValueError("per_minute must be an integer (0 or null: no limit)")
        if isinstance(time_scale, bool) or not isinstance(time_scale, int | float):
            raise ValueError("time_scale must be a number")
        self.limiter.configure(per_minute, time_scale)
        return Reply.json(200, self.limiter.settings())

    def _c_contacts(self, data, query) -> Reply:
        include_archived = query.get("include_archived", "true").lower() != "false"
        shard = query.get("shard") or None
        base = "http://127.0.0.1/{shard}/v1"
        records = self.store.all(shard, include_archived=include_archived)
        contacts = []
        for record in records:
            rendered = render_contact(record, base.format(shard=record.get("_shard", "")))
            rendered["shard"] = record.get("_shard")
            rendered.pop("links", None)
            contacts.append(rendered)
        return Reply.json(200, {"contacts": contacts})

    def _c_changes(self, data, query) -> Reply:
        return Reply.json(200, {"changes": self.store.changes(int(query.get("since", 0)))})

    def _c_churn(self, data, query) -> Reply:
        count = data.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100_000:
            raise ValueError("count must be an integer from 0 to 100000")
        shard = data.get("shard", "au1")
        if not isinstance(shard, str) or not SHARD_PATTERN.match(shard):
            raise ValueError("shard must look like au1")
        kinds = data.get("kinds", list(CHURN_KINDS))
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError("kinds must be a list of names")
        at = data.get("at")
        if at is not None and not isinstance(at, str):
            raise ValueError("at must be an ISO 8601 date-time")
        changes = self.store.churn(
            shard,
            count,
            seed=data.get("seed"),
            at=parse_stored_datetime(at) if at else None,
            kinds=kinds,
            distinct=bool(data.get("distinct", False)),
        )
        return Reply.json(201, {"changes": changes})

    def _c_unarchive(self, data, query) -> Reply:
        try:
            record = self.store.unarchive(data.get("shard", "au1"), str(data.get("id", "")))
        except NotFound:
            return Reply.json(404, {"message": "no such contact"})
        updated_at = format_datetime(record["updated_at"])
        return Reply.json(200, {"id": record["id"], "updated_at": updated_at})

    def _c_violations(self, data, query) -> Reply:
        return Reply.json(200, self.violations())

    def _c_set_validation(self, data, query) -> Reply:
        if "strict" in data:
            self.strict = bool(data["strict"])
        if "enabled" in data:
            self.validate = bool(data["enabled"])
        return Reply.json(200, {"strict": self.strict, "enabled": self.validate})

    def _now(self) -> datetime:
        moment = datetime.now(UTC) + self.clock_skew
        if not self.store.subsecond:
            moment = moment.replace(microsecond=0)
        return moment + self.clock_offset

    def unix_time(self) -> float:
        """Cliniko's clock (this machine's, moved by `clock_skew`): its `Date`, its resets."""
        return time.time() + self.clock_skew.total_seconds()

    def _as_read(self, contact: dict[str, Any], *, listed: bool) -> dict[str, Any]:
        """A contact as a read shows it: with `seed_shapes`, as the seed's examples do, its
        country by name only, and in a list no doctor_type (its create and update answers
        show both)."""
        if self.seed_shapes:
            contact.pop("country_code", None)
            if listed:
                contact.pop("doctor_type", None)
        return contact

    def _c_set_behaviour(self, data, query) -> Reply:
        archived_get = data.get("archived_get", self.archived_get)
        if archived_get not in ("visible", "hidden"):
            raise ValueError("archived_get must be 'visible' or 'hidden'")
        switches = {
            name: data.get(name, current)
            for name, current in (
                ("subsecond_times", self.store.subsecond),
                ("like_minds_case", self.like_minds_case),
                ("seed_shapes", self.seed_shapes),
                ("date_header", self.date_header),
            )
        }
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        update_methods = data.get("update_methods", list(self.update_methods))
        if (
            not isinstance(update_methods, list)
            or not update_methods
            or not set(update_methods) <= set(UPDATE_METHODS)
        ):
            raise ValueError('update_methods must list "PUT", "PATCH" or both')
        unfilterable = data.get("unfilterable", sorted(self.unfilterable))
        if not isinstance(unfilterable, list) or not all(isinstance(f, str) for f in unfilterable):
            raise ValueError("unfilterable must list field names")
        list_lag = data.get("list_lag_seconds", self.list_lag)
        if isinstance(list_lag, bool) or not isinstance(list_lag, int | float) or list_lag < 0:
            raise ValueError("list_lag_seconds must be a number of seconds, 0 or more")
        self.archived_get = archived_get
        self.store.subsecond = switches["subsecond_times"]
        self.like_minds_case = switches["like_minds_case"]
        self.seed_shapes = switches["seed_shapes"]
        self.date_header = switches["date_header"]
        self.update_methods = tuple(m for m in UPDATE_METHODS if m in update_methods)
        self.unfilterable = frozenset(unfilterable)
        self.list_lag = float(list_lag)
        return Reply.json(
            200,
            {
                "archived_get": self.archived_get,
                **switches,
                "update_methods": list(self.update_methods),
                "unfilterable": sorted(self.unfilterable),
                "list_lag_seconds": self.list_lag,
            },
        )


CONTROL_ROUTES: dict[tuple[str, str], Callable[..., Reply]] = {
    ("GET", "health"): Emulator._c_health,
    ("POST", "reset"): Emulator._c_reset,
    ("POST", "keys"): Emulator._c_add_key,
    ("GET", "keys"): Emulator._c_keys,
    ("DELETE", "keys"): Emulator._c_revoke_key,
    ("POST", "seed"): Emulator._c_seed,
    ("GET", "requests"): Emulator._c_requests,
    ("DELETE", "requests"): Emulator._c_clear_requests,
    ("GET", "counters"): Emulator._c_counters,
    ("GET", "faults"): Emulator._c_faults,
    ("POST", "faults"): Emulator._c_set_faults,
    ("GET", "rate_limit"): Emulator._c_rate_limit,
    ("POST", "rate_limit"): Emulator._c_set_rate_limit,
    ("GET", "contacts"): Emulator._c_contacts,
    ("GET", "violations"): Emulator._c_violations,
    ("GET", "changes"): Emulator._c_changes,
    ("POST", "churn"): Emulator._c_churn,
    ("POST", "unarchive"): Emulator._c_unarchive,
    ("POST", "validation"): Emulator._c_set_validation,
    ("POST", "behaviour"): Emulator._c_set_behaviour,
    ("GET", "clock"): Emulator._c_clock,
    ("POST", "clock"): Emulator._c_set_clock,
}


# -- helpers ---------------------------------------------------------------------------


def _read_body(environ: Mapping[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None or length <= 0:
        return b""
    return stream.read(length)


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers[name[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["Content-Length"] = environ["CONTENT_LENGTH"]
    return headers


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _loggable_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body[:BODY_LOG_LIMIT].decode("utf-8", "replace")


def _write_body(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | Reply:
    """The JSON object of a write. Without a JSON content type Cliniko ignores the body."""
    mimetype = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if mimetype != "application/json" or not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return Reply.json(400, {"message": "The request body is not valid JSON"})
    if not isinstance(data, dict):
        return Reply.json(400, {"message": "The request body must be a JSON object"})
    return data


def _positive_int(value: str | None, name: str, *, default: int) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d{1,9}", value.strip()) or int(value) < 1:
        raise FilterError(f"{name} must be a positive integer")
    return int(value)


def _not_allowed(allow: str) -> Reply:
    reply = Reply.json(405, {"message": "Method not allowed"})
    reply.headers["Allow"] = allow
    return reply
