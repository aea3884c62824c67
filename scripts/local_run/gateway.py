"""An HTTP API (API Gateway v2) stand-in that serves exactly the template's HttpApi routes.

Each request becomes a genuine payload-format-2.0 event (lower-cased headers, comma-joined
repeats, cookies apart, non-text bodies base64-encoded as HTTP APIs do) for the route's
function, and the function's answer becomes the HTTP response. Like API Gateway it answers
CORS preflights itself from the template's CorsConfiguration and adds the CORS headers to
responses for allowed origins; routes with `AWS_IAM` auth refuse requests that carry no
Signature Version 4 `Authorization` header and otherwise get a local IAM identity (the
signature itself is not verified: there is no IAM here).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .functions import FunctionRuntime
from .template import HttpRoute

logger = logging.getLogger("local_run.gateway")

TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-yaml|yaml))$", re.I
)
MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway refuses bigger bodies with 413.


def _compile(path: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                pattern += f"(?P<{name[:-1]}>.+)"
            else:
                pattern += f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(f"^{pattern}$")


class Gateway:
    def __init__(
        self,
        routes: Sequence[HttpRoute],
        functions: Mapping[str, FunctionRuntime],
        cors: Mapping[str, Any] | None,
        *,
        api_id: str = "local",
        region: str = "eu-west-1",
        account: str = "123456789012",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.routes = [(route, _compile(route.path)) for route in routes]
        self.functions = functions
        self.cors = dict(cors or {})
        self.api_id = api_id
        self.region = region
        self.account = account
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- routing
    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def path_known(self, path: str) -> list[str]:
        return [route.method for route, pattern in self.routes if pattern.match(path)]

    # -- CORS, as API Gateway applies a CorsConfiguration
    def origin_allowed(self, origin: str | None) -> bool:
        if not origin:
            return False
        allowed = self.cors.get("AllowOrigins", [])
        return "*" in allowed or origin in allowed

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        if not self.cors or not self.origin_allowed(origin):
            return {}
        headers = {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}
        if self.cors.get("AllowCredentials"):
            headers["Access-Control-Allow-Credentials"] = "true"
        if self.cors.get("ExposeHeaders"):
            headers["Access-Control-Expose-Headers"] = ",".join(self.cors["ExposeHeaders"])
        return headers

    def preflight(self, origin: str | None, method: str | None, headers: str | None):
        allowed_methods = [m.upper() for m in self.cors.get("AllowMethods", [])]
        allowed_headers = [h.lower() for h in self.cors.get("AllowHeaders", [])]
        asked = [h.strip().lower() for h in (headers or "").split(",") if h.strip()]
        ok = (
            self.origin_allowed(origin)
            and method is not None
            and ("*" in allowed_methods or method.upper() in allowed_methods)
            and ("*" in allowed_headers or all(h in allowed_headers for h in asked))
        )
        if not ok:
            return {}  # no CORS headers: the browser refuses the real request
        answer = self.cors_headers(origin)
        answer["Access-Control-Allow-Methods"] = ",".join(allowed_methods)
        if allowed_headers:
            answer["Access-Control-Allow-Headers"] = ",".join(allowed_headers)
        if "MaxAge" in self.cors:
            answer["Access-Control-Max-Age"] = str(self.cors["MaxAge"])
        return answer

    # -- the event
    def event(
        self,
        route: HttpRoute,
        path_parameters: dict[str, str],
        method: str,
        raw_path: str,
        raw_query: str,
        header_pairs: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in header_pairs:
            key = name.lower()
            if key == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(UTC)
        request_id = base64.b64encode(uuid.uuid4().bytes).decode()[:14] + "="
        content_type = headers.get("content-type", "").split(";")[0].strip()
        is_text = bool(TEXT_TYPES.match(content_type)) if content_type else True
        try:
            text_body = body.decode("utf-8") if is_text else None
        except UnicodeDecodeError:
            text_body = None
        context: dict[str, Any] = {
            "accountId": self.account,
            "apiId": self.api_id,
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": headers.get("host", "localhost").split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if route.authorizer == "AWS_IAM":
            context["authorizer"] = {"iam": self._iam_identity(headers["authorization"])}
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        if body:
            if text_body is not None:
                event["body"] = text_body
            else:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        return event

    def _iam_identity(self, authorization: str) -> dict[str, Any]:
        # The caller's access key is in the SigV4 credential scope: AKID/date/region/service/...
        found = re.search(r"Credential=([^/,\s]+)/", authorization)
        access_key = found.group(1) if found else "AKIALOCAL"
        return {
            "accessKey": access_key,
            "accountId": self.account,
            "callerId": f"AIDALOCAL{access_key[-8:]}",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{self.account}:user/local-operator",
            "userId": f"AIDALOCAL{access_key[-8:]}",
        }


def _to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy answer (payload 2.0) as status, headers and body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Format 2.0 lets a function return any JSON: API Gateway answers 200 with it.
        body = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], body.encode()
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    headers.extend(("Set-Cookie", cookie) for cookie in result.get("cookies") or [])
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


def _handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-http-api"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                self.send_header(name, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _message(self, status: int, message: str, extra=None) -> None:
            body = json.dumps({"message": message}).encode()
            headers = [("Content-Type", "application/json"), *(extra or [])]
            self._send(status, headers, body)

        def _dispatch(self) -> None:
            started = time.monotonic()
            parts = urlsplit(self.path)
            raw_path, raw_query = parts.path, parts.query
            origin = self.headers.get("Origin")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD:
                self._message(413, "Request Entity Too Large")
                return
            body = self.rfile.read(length) if length else b""
            method = self.command.upper()
            if (
                method == "OPTIONS"
                and gateway.cors
                and self.headers.get("Access-Control-Request-Method")
                and gateway.path_known(raw_path)
            ):
                answer = gateway.preflight(
                    origin,
                    self.headers.get("Access-Control-Request-Method"),
                    self.headers.get("Access-Control-Request-Headers"),
                )
                self._send(204, list(answer.items()), b"")
                return
            matched = gateway.match(method, raw_path)
            if matched is None:
                self._message(404, "Not Found")
                return
            route, path_parameters = matched
            if route.authorizer == "AWS_IAM" and not (
                self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 ")
            ):
                self._message(403, "Forbidden")
                return
            event = gateway.event(
                route,
                path_parameters,
                method,
                raw_path,
                raw_query,
                list(self.headers.items()),
                body,
                self.client_address[0],
            )
            try:
                result = gateway.functions[route.function].invoke(event)
                status, headers, payload = _to_http(result)
            except Exception:
                # What API Gateway answers when the integration fails.
                logger.exception("%s failed", route.function)
                self._message(500, "Internal Server Error")
                return
            if gateway.cors:
                # API Gateway replaces the function's CORS headers with its own, and says
                # `Vary: Origin` once.
                headers = [
                    (k, v)
                    for k, v in headers
                    if not k.lower().startswith("access-control-")
                    and (k.lower(), v) != ("vary", "Origin")
                ]
                headers.extend(gateway.cors_headers(origin).items())
            self._send(status, headers, payload)
            logger.info(
                "%s %s -> %s %d (%.0f ms)",
                method,
                raw_path,
                route.function,
                status,
                (time.monotonic() - started) * 1000,
            )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    return Handler
