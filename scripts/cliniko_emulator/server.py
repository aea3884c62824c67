"""A small threaded HTTP/1.1 server for the emulator's WSGI app, on 127.0.0.1.

Werkzeug's development server closes every connection after one answer; clients (httpx,
the benchmarks) keep connections alive, so this server does too, which roughly doubles the
requests per second. It also lets the app drop a connection without any answer
(`DropConnection`), which is one of the injected faults.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import DropConnection, Emulator

MAX_BODY = 10 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClinikoEmulator/1.0"
    sys_version = ""
    # Idle keep-alive connections end after this many seconds, so threads do not pile up.
    timeout = 30
    # Headers and body go out in separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive answer.
    disable_nagle_algorithm = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The `Date` of every answer, on Cliniko's clock (the app's, which a test may skew).
        if timestamp is None:
            timestamp = self.server.app.unix_time()  # type: ignore[attr-defined]
        return super().date_time_string(timestamp)

    def send_header(self, keyword: str, value: str) -> None:
        # Without `Date` when a test says so: Cliniko's answers as a proxy may pass them on.
        if keyword == "Date" and not self.server.app.date_header:  # type: ignore[attr-defined]
            return
        super().send_header(keyword, value)

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            self.send_error(413 if self.headers.get("Content-Length") else 400)
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": _unquote_path(path),
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        content_type = self.headers.get("Content-Type")
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value

        status_line: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            status_line[:] = [status]
            response_headers[:] = headers
            return lambda data: None

        try:
            chunks = self.server.app(environ, start_response)
            payload = b"".join(chunks)
        except DropConnection:
            # The fault: no status line, no bytes; the client sees the connection close.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except Exception:  # a bug in the emulator must still answer, not hang the client
            self.server.handle_error(self.request, self.client_address)
            payload = b'{"message": "emulator error"}'
            status_line[:] = ["500 Internal Server Error"]
            response_headers[:] = [("Content-Type", "application/json")]
        code, _, reason = status_line[0].partition(" ")
        self.send_response(int(code), reason)
        has_length = False
        for name, value in response_headers:
            has_length = has_length or name.lower() == "content-length"
            self.send_header(name, value)
        if not has_length:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the app, which answers 405 for the ones a route lacks.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


def _unquote_path(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path, encoding="latin-1")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app, verbose: bool = False) -> None:
        self.app = app
        self.verbose = verbose
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # a client that went away is not an emulator problem
        super().handle_error(request, client_address)


class EmulatorServer:
    """The emulator on 127.0.0.1 in a background thread.

    `EmulatorServer(port=0).start()` picks a free port; `.url` is the root
    (`http://127.0.0.1:PORT`), `.base_url_template` the Cliniko base URL with `{shard}`.
    Other keyword arguments go to `Emulator` (keys, state_file, per_minute, time_scale,
    validate, strict, spec_path).
    """

    def __init__(
        self, port: int = 0, *, host: str = "127.0.0.1", verbose: bool = False, **options: Any
    ) -> None:
        self.app = Emulator(**options)
        self._server = _Server((host, port), self.app, verbose=verbose)
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url_template(self) -> str:
        return f"{self.url}/{{shard}}/v1"

    def start(self) -> EmulatorServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name=f"cliniko-emulator-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        """Releases the socket after `serve_forever` returned in the calling thread."""
        self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
