"""`EmulatorControl`: the inspection API over HTTP, for tests, benchmarks and the local run."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx


@functools.cache
def plain_http_tls_context() -> ssl.SSLContext:
    """The TLS context for httpx clients of local plain-http servers (the emulator, moto),
    made once: httpx makes one for every client, reading the whole CA bundle (about 70 ms of
    CPU) even when no handshake will use it, and the tests make clients by the thousand."""
    return httpx.create_ssl_context()


class EmulatorControl:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self.url}/_emulator", timeout=timeout, verify=plain_http_tls_context()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"emulator {method} /_emulator/{path}: {response.status_code} {response.text}"
            )
        return response.json()

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def reset(self) -> None:
        self._call("POST", "reset")

    def add_key(self, key: str, *, user: str | None = None, read_only: bool = False) -> str:
        """Registers an API key; returns its shard.

        Keys with the same `user` share a rate-limit budget; a `read_only` key gets 403 on
        writes (a Cliniko user without the permission).
        """
        body: dict = {"key": key, "read_only": read_only}
        if user is not None:
            body["user"] = user
        return self._call("POST", "keys", json=body)["shard"]

    def revoke_key(self, key: str) -> None:
        """Forgets an API key, as archiving it in Cliniko does: 401 from then on."""
        self._call("DELETE", "keys", json={"key": key})

    def seed(
        self,
        n: int = 0,
        *,
        shard: str = "au1",
        seed: int | None = None,
        archived: int = 0,
        contacts: Iterable[Mapping[str, Any]] = (),
        fields: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Adds n fake contacts (the last `archived` of them archived) and the given ones.

        A given contact is a write body plus optional `created_at`, `updated_at`,
        `archived_at` (ISO 8601) or `"archived": true`. `fields` (a write body) is laid over
        each of the n fake contacts, e.g. `{"email": "bulk@example.com"}` for 100,000
        contacts a cleanup rule matches. Returns the new ids in order.
        """
        body = {
            "count": n,
            "shard": shard,
            "seed": seed,
            "archived": archived,
            "contacts": list(contacts),
            "fields": dict(fields or {}),
        }
        return self._call("POST", "seed", json=body)["ids"]

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log of Cliniko routes: method, path, query, status, key_shard, body..."""
        return self._call("GET", "requests", params={"since": since})["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def counters(self) -> dict[str, Any]:
        """{"total", "by_method", "by_status", "by_method_status" ("GET 200")}."""
        return self._call("GET", "counters")

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        statuses: Sequence[int] = (500, 502, 504),
        latency_ms: int = 0,
        drop_rate: float = 0.0,
        throttle_window_s: float = 0.0,
        after_effect: bool = False,
        after_effect_rate: float = 0.0,
        fail_next: Sequence[int | str] = (),
        seed: int | None = None,
        methods: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "error_rate": error_rate,
            "statuses": list(statuses),
            "latency_ms": latency_ms,
            "drop_rate": drop_rate,
            "throttle_window_s": throttle_window_s,
            "after_effect": after_effect,
            "after_effect_rate": after_effect_rate,
            "fail_next": list(fail_next),
            "seed": seed,
            "methods": list(methods) if methods is not None else None,
            "paths": list(paths) if paths is not None else None,
        }
        return self._call("POST", "faults", json=body)

    def clear_faults(self) -> None:
        self._call("POST", "faults", json={})

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def set_clock(self, offset_seconds: float) -> float:
        """Moves the emulator's clock (contacts' created_at/updated_at) this far ahead of now."""
        return self._call("POST", "clock", json={"offset_seconds": offset_seconds})[
            "offset_seconds"
        ]

    def set_skew(self, skew_seconds: float) -> float:
        """Puts Cliniko's clock this far from this machine's (negative: behind): its contacts'
        timestamps, its `Date` headers and its `X-RateLimit-Reset` all follow it."""
        return self._call("POST", "clock", json={"skew_seconds": skew_seconds})["skew_seconds"]

    def set_rate_limit(self, per_minute: int | None = 200, time_scale: float = 1) -> dict:
        """per_minute 0 or None disables the limit; time_scale 60 makes a minute one second."""
        return self._call(
            "POST", "rate_limit", json={"per_minute": per_minute, "time_scale": time_scale}
        )

    def rate_limit(self) -> dict[str, Any]:
        return self._call("GET", "rate_limit")

    def contacts(self, include_archived: bool = True, shard: str | None = None) -> list[dict]:
        """Every stored contact as Cliniko renders it, plus its `shard`, oldest first."""
        params: dict[str, str] = {"include_archived": str(include_archived).lower()}
        if shard:
            params["shard"] = shard
        return self._call("GET", "contacts", params=params)["contacts"]

    def violations(self) -> dict[str, Any]:
        """Requests and responses that did not match openapi.yaml."""
        return self._call("GET", "violations")

    def set_validation(self, *, strict: bool | None = None, enabled: bool | None = None) -> dict:
        body = {k: v for k, v in (("strict", strict), ("enabled", enabled)) if v is not None}
        return self._call("POST", "validation", json=body)

    def set_behaviour(
        self,
        *,
        archived_get: str | None = None,
        subsecond_times: bool | None = None,
        like_minds_case: bool | None = None,
        seed_shapes: bool | None = None,
        date_header: bool | None = None,
        update_methods: list[str] | None = None,
        unfilterable: list[str] | None = None,
        list_lag_seconds: float | None = None,
    ) -> dict[str, Any]:
        """archived_get: "visible" (default) or "hidden" (GET of an archived contact -> 404).
        subsecond_times: contacts' times keep their fractions (shown in whole seconds).
        like_minds_case: the `~` and `~~` filters mind case (they ignore it by default).
        seed_shapes: reads show a contact as the seed's examples do: no country_code (the
        country by name), and in a list no doctor_type.
        date_header: answers carry `Date` (true by default; false: as a proxy in front of
        Cliniko that drops it might pass them on).
        update_methods: which of PUT and PATCH update a contact (both by default; the other
        answers 404, as a route that does not exist).
        unfilterable: fields whose filters answer 400 "... is not filterable" (none).
        list_lag_seconds: a new contact shows in lists only this long after its create (0; to
        the whole second), as Cliniko's docs do not promise it at once; by id at once."""
        given = (
            ("archived_get", archived_get),
            ("subsecond_times", subsecond_times),
            ("like_minds_case", like_minds_case),
            ("seed_shapes", seed_shapes),
            ("date_header", date_header),
            ("update_methods", update_methods),
            ("unfilterable", unfilterable),
            ("list_lag_seconds", list_lag_seconds),
        )
        body = {k: v for k, v in given if v is not None}
        return self._call("POST", "behaviour", json=body)

    def changes(self, since: int = 0) -> list[dict[str, Any]]:
        """The journal of changes (creates, updates, archives, unarchives) after the
        `since`-th: each {"seq", "shard", "id", "kind", "updated_at"}. Seeding is not journaled."""
        return self._call("GET", "changes", params={"since": since})["changes"]

    def churn(
        self,
        count: int,
        *,
        shard: str = "au1",
        seed: int | None = None,
        at: str | None = None,
        kinds: Sequence[str] = ("create", "update", "archive", "unarchive"),
        distinct: bool = False,
    ) -> list[dict[str, Any]]:
        """Makes `count` changes of the given kinds at once (many inside one second), or all
        stamped `at` (ISO 8601, a past second); `distinct`: each to another contact. Returns
        their journal entries."""
        body = {
            "count": count,
            "shard": shard,
            "seed": seed,
            "at": at,
            "kinds": list(kinds),
            "distinct": distinct,
        }
        return self._call("POST", "churn", json=body)["changes"]

    def unarchive(self, contact_id: str, *, shard: str = "au1") -> dict[str, Any]:
        """Restores an archived contact as Cliniko's app can (its API cannot)."""
        return self._call("POST", "unarchive", json={"id": contact_id, "shard": shard})
