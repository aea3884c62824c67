"""Every Cliniko-route request and response checked against openapi.yaml with openapi-core.

Requests reach the emulator at `http://127.0.0.1:PORT/{shard}/v1/...`; they are validated as
if sent to the spec's server `https://api.{shard}.cliniko.com/v1/...`, so the spec needs no
emulator-specific server entry.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import V31RequestValidator
from openapi_core.validation.response.validators import V31ResponseValidator

try:  # Rust JSON Schema validator, installed with schemathesis; only a speed-up
    import jsonschema_rs
except ImportError:  # pragma: no cover - the dev extra always has it
    jsonschema_rs = None
from werkzeug.datastructures import Headers, ImmutableMultiDict

log = logging.getLogger(__name__)

# scripts/cliniko_emulator/validation.py -> the repository root holds openapi.yaml.
DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"


def spec_path() -> Path:
    return Path(os.environ.get("CLINIKO_EMULATOR_SPEC") or DEFAULT_SPEC)


class _Request:
    def __init__(
        self,
        shard: str,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        content_type: str,
        body: bytes,
    ) -> None:
        self.host_url = f"https://api.{shard}.cliniko.com"
        self.path = path
        self.method = method.lower()
        self.body = body or None
        self.content_type = (content_type or "application/octet-stream").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(query)), header=Headers(dict(headers))
        )


class _Response:
    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.data = body
        self.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def describe_error(error: BaseException) -> str:
    """The error and its causes, with each schema error's path, on one line each."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {_text(current)}")
        for schema_error in getattr(current, "schema_errors", None) or ():
            where = "/".join(str(p) for p in getattr(schema_error, "absolute_path", ()))
            parts.append(f"  at {where or '(root)'}: {getattr(schema_error, 'message', '')}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def _text(error: BaseException) -> str:
    # openapi-core's own messages decode a non-UTF-8 body and may raise while formatting.
    try:
        return str(error)
    except Exception:
        return repr(error.args)


def _checked(run) -> list[str]:
    try:
        return [describe_error(e) for e in run()]
    except Exception as exc:  # the validator itself failed: still a finding, never a crash
        return [f"validator error: {describe_error(exc)}"]


class _FastPath:
    """Checks a value with a compiled jsonschema-rs validator first.

    openapi-core validates in pure Python (about 20 ms for a page of 50 contacts). Values that
    jsonschema-rs finds valid are accepted at once; anything else goes through openapi-core,
    so every reported violation is still openapi-core's, with its messages. The spec's
    schemas use nothing beyond JSON Schema 2020-12 (no discriminator, readOnly/writeOnly only
    as annotations), so both agree on what is valid.
    """

    _compiled: dict[tuple[int, tuple[str, ...]], Any]

    def _validate_schema(self, schema, value: Any) -> None:
        fast = _compiled_validator(self.spec, schema)
        if fast is not None and fast.is_valid(value):
            return
        super()._validate_schema(schema, value)  # type: ignore[misc]


_COMPILED: dict[tuple[int, tuple[str, ...]], Any] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled_validator(spec, schema) -> Any:
    if jsonschema_rs is None:
        return None
    key = (id(spec), tuple(schema.parts))
    validator = _COMPILED.get(key)
    if validator is None:
        with schema.resolve() as resolved:
            contents = resolved.contents
        if not isinstance(contents, dict):
            return None
        components = (spec / "components").read_value() if "components" in spec else {}
        # Every $ref of the spec is local (#/components/...): resolve them against a root
        # that holds the components beside the schema's own keywords.
        root = {"components": components, **contents}
        try:
            validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
        except Exception:  # a schema jsonschema-rs cannot compile: openapi-core alone
            validator = False
        with _COMPILED_LOCK:
            _COMPILED[key] = validator
    return validator or None


class _RequestValidator(_FastPath, V31RequestValidator):
    pass


class _ResponseValidator(_FastPath, V31ResponseValidator):
    pass


FAST_CONFIG = Config(
    request_validator_cls=_RequestValidator, response_validator_cls=_ResponseValidator
)


class SpecValidator:
    """Loads the spec once (lazily: it may appear after the server started)."""

    def __init__(self, path: Path | None = None, *, fast: bool = True) -> None:
        self.path = path or spec_path()
        self._config = FAST_CONFIG if fast else None
        self._openapi: OpenAPI | None = None
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self.load_error: str | None = None

    def _spec(self) -> OpenAPI | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self.load_error = f"{self.path} not found"
            return None
        with self._lock:
            if self._openapi is None or mtime != self._mtime:
                try:
                    self._openapi = OpenAPI.from_file_path(str(self.path), config=self._config)
                    self.load_error = None
                except Exception as exc:  # a broken spec must be reported, not crash the server
                    self._openapi = None
                    self.load_error = f"cannot load {self.path}: {exc}"
                    log.warning("openapi spec not loaded: %s", exc)
                self._mtime = mtime
            return self._openapi

    @property
    def available(self) -> bool:
        return self._spec() is not None

    def request_errors(self, request: _Request) -> list[str]:
        openapi = self._spec()
        if openapi is None:
            return []
        return _checked(lambda: openapi.iter_request_errors(request))

    def response_errors(self, request: _Request, response: _Response) -> list[str]:
        openapi = self._spec()
        if openapi is None:
            return []
        return _checked(lambda: openapi.iter_response_errors(request, response))


def make_request(**kwargs: Any) -> _Request:
    return _Request(**kwargs)


def make_response(status: int, headers: Headers, body: bytes) -> _Response:
    return _Response(status, headers, body)
