"""The httpx transport every outgoing HTTPS request of ours is sent through (Cliniko, captcha
services): httpx's client API over urllib3's connection pools.

httpx's own transport sends through httpcore, whose import (with h11, its HTTP/1.1 parser)
is about 84 million instructions, 6 % of a minimal Lambda handler's whole cold start, paid on
the first Cliniko request of every function. urllib3 is loaded already in every function,
since boto3 sends through it. The generated client, its typed models and our
`ClinikoTransport` (pacing, retries, typed errors) are unchanged: they see httpx requests,
responses and exceptions.

What the layer above relies on, and this transport keeps:

- Nothing is retried or redirected here (`retries=False`): every retry is ClinikoTransport's
  decision, by method.
- The exception says whether the request may have reached the server. `httpx.ConnectError` /
  `httpx.ConnectTimeout` only when no connection was made (name resolution, refused, the
  connect timed out, the server's certificate refused during the handshake), so nothing was
  sent. Anything later, and anything this transport cannot place, is a read or protocol error:
  a create that meets it is an unknown outcome, never sent twice.
- httpx's per-request timeouts: connect bounds the connect and the TLS handshake, read bounds
  each read of the answer (urllib3 bounds the sending by the connect timeout). There is no
  pool wait: a busy pool opens another connection. A request's `deadline` extension
  (time.monotonic) bounds the wait for its status line and headers as a whole, a read timeout
  once passed: a read timeout alone never ends headers trickled a byte at a time. The body's
  bound is the caller's (`ReadWithin`), as it is read.
- The body is handed over as it arrives, undecoded: httpx decodes `Content-Encoding` itself,
  and ClinikoTransport can cut a trickled answer off.
- A connection is kept for the next request only when its answer was read to the end, and
  not past httpx's keep-alive expiry (5 s idle): a server or a NAT may have dropped it
  meanwhile (a Lambda frozen between invocations), and a create sent on a dead connection is
  an unknown outcome. Idle by either clock: a frozen guest's monotonic clock may not have
  moved while the wall clock went on an hour (Firecracker does not promise which).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

# Connections kept per host: httpx's default keep-alive limit. More may be open at once (a
# busy pool makes another), the extras are closed when their answer is read.
KEEP_ALIVE_CONNECTIONS = 20
CHUNK_BYTES = 65_536
# httpx's own default: a connection idle longer is not used again.
KEEP_ALIVE_EXPIRY_SECONDS = 5.0


# The deadline of the request this thread is sending, for its connection's answer.
_answer_by = threading.local()
_CUT_OFF = "the answer's headers were still arriving at the deadline"


class _HeadersWithin:
    """A connection whose answer's status line and headers end by the request's deadline: the
    socket is shut then, which ends the read that waits on it."""

    sock: socket.socket | None

    def getresponse(self) -> Any:
        deadline = getattr(_answer_by, "deadline", None)
        if deadline is None:
            return super().getresponse()  # type: ignore[misc]
        # Taken once, by whichever comes first: the cut, or the end of the headers' wait. A
        # timer past its check of `cancel()` still calls cut_off: it must not shut the socket
        # of an answer taken as whole (its body is read on, the connection kept and reused).
        first = threading.Lock()
        sock = self.sock  # the answer's: a connection closed meanwhile may get another

        def cut_off() -> None:
            if not first.acquire(blocking=False):
                return
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut_off)
        timer.daemon = True
        timer.start()
        try:
            response = super().getresponse()  # type: ignore[misc]
        except Exception as exc:
            if not first.acquire(blocking=False):  # a read timeout, as urllib3 and httpx name it
                raise TimeoutError(_CUT_OFF) from exc
            raise
        finally:
            timer.cancel()
        if not first.acquire(blocking=False):
            # http.client takes the end of the stream for the end of the headers: what it read
            # before the cut is no whole answer. Closed here: its file over the socket keeps the
            # socket open when urllib3 closes the connection, until a garbage collection.
            response.close()
            raise TimeoutError(_CUT_OFF)
        return response


class _Connection(_HeadersWithin, HTTPConnection):
    pass


class _TlsConnection(_HeadersWithin, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


class Urllib3Transport(httpx.BaseTransport):
    """Sends httpx requests over urllib3, its TLS checked against `ssl_context`."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, keep_alive_expiry: float = KEEP_ALIVE_EXPIRY_SECONDS
    ) -> None:
        self.ssl_context = ssl_context
        self._keep_alive_expiry = keep_alive_expiry
        self._last_answer_at = self._last_answer_wall = 0.0
        self._answered()
        self._pools = urllib3.PoolManager(
            maxsize=KEEP_ALIVE_CONNECTIONS, block=False, ssl_context=ssl_context, retries=False
        )
        self._pools.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        headers = urllib3.HTTPHeaderDict()
        for name, value in request.headers.raw:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        body = request.read()
        url = request.url
        if self._idle_seconds() > self._keep_alive_expiry:
            # Every kept connection has been idle since: close them, connect afresh.
            self._pools.clear()
        _answer_by.deadline = request.extensions.get("deadline")
        try:
            pool = self._pools.connection_from_host(
                url.raw_host.decode("ascii"), port=url.port, scheme=url.scheme
            )
            answer = pool.urlopen(
                request.method,
                url.raw_path.decode("ascii"),
                body=body or None,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeouts.get("connect"), read=timeouts.get("read")),
                preload_content=False,
                decode_content=False,
            )
        except (HTTPError, OSError, ValueError) as exc:
            raise _as_httpx(exc, request) from exc
        finally:
            _answer_by.deadline = None
        if answer.status < 200:
            # http.client skips 100 Continue only: any other informational answer (103 Early
            # Hints) it takes for the answer, and the real one would be left on the kept
            # connection, read by the next request as its own. The connection goes with it.
            answer.close()
            answer.release_conn()
            raise httpx.RemoteProtocolError(
                f"an informational answer ({answer.status}) came where the answer was due",
                request=request,
            )
        return httpx.Response(
            status_code=answer.status,
            # As bytes, as they came: http.client read them as Latin-1, and a value beyond
            # ASCII given to httpx as text would fail its encoding.
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.headers.items()
            ],
            stream=_Body(answer, request, on_close=self._answered),
            extensions={
                "http_version": b"HTTP/1.0" if answer.version == 10 else b"HTTP/1.1",
                "reason_phrase": answer.reason.encode("latin-1", "replace")
                if answer.reason
                else b"",
            },
        )

    def _answered(self) -> None:
        self._last_answer_at, self._last_answer_wall = time.monotonic(), time.time()

    def _idle_seconds(self) -> float:
        """Since the last answer was read, by whichever clock says longer: the monotonic
        clock of a Lambda thawed after an hour may count only the time it ran."""
        return max(
            time.monotonic() - self._last_answer_at, abs(time.time() - self._last_answer_wall)
        )

    def close(self) -> None:
        self._pools.clear()


class _Body(httpx.SyncByteStream):
    """An answer's body as urllib3 reads it, its failures as httpx's."""

    def __init__(
        self,
        answer: urllib3.BaseHTTPResponse,
        request: httpx.Request,
        *,
        on_close: Callable[[], None],
    ) -> None:
        self._answer, self._request, self._on_close = answer, request, on_close
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                # What has arrived, not a full chunk: a read that waits to fill one would keep
                # a trickled answer from ClinikoTransport's deadline.
                chunk = self._answer.read1(CHUNK_BYTES, decode_content=False)
            except (HTTPError, OSError, ValueError) as exc:
                raise _as_httpx(exc, self._request, reading=True) from exc
            if not chunk:
                break
            yield chunk
        self._complete = True

    def close(self) -> None:
        if not self._complete:
            # Part of the answer is still on the wire: the connection cannot be reused.
            self._answer.close()
        self._answer.release_conn()
        self._on_close()


def _as_httpx(
    exc: BaseException, request: httpx.Request, *, reading: bool = False
) -> httpx.TransportError:
    """httpx's exception for a failure of urllib3's, by whether the request may have been
    sent: only a connection never made is a connect error."""
    message = f"{type(exc).__name__}: {exc}"
    if not reading:
        if isinstance(exc, NewConnectionError):  # before ConnectTimeoutError: a subclass
            return httpx.ConnectError(message, request=request)
        if isinstance(exc, ClosedPoolError):
            # Another thread closed the idle pools (the keep-alive expiry) as this request
            # took one: no connection was taken from it.
            return httpx.ConnectError(message, request=request)
        if isinstance(exc, ConnectTimeoutError):
            return httpx.ConnectTimeout(message, request=request)
        if isinstance(exc, SSLError) and _refused_certificate(exc):
            # Refused during the handshake, before a byte of the request was sent.
            return httpx.ConnectError(message, request=request)
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)


def _refused_certificate(exc: BaseException) -> bool:
    """Whether a certificate check failed somewhere in `exc`'s chain of causes."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # a chain may loop back on itself
        if isinstance(cause, ssl.SSLCertVerificationError):  # CertificateError is its alias
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


class ReadWithin(httpx.SyncByteStream):
    """An answer's body, cut off as a read timeout once `deadline` (time.monotonic) passes:
    httpx's read timeout bounds each read, so a body trickled a byte at a time never ends."""

    def __init__(self, stream: Any, deadline: float, request: httpx.Request) -> None:
        self._stream, self._deadline, self._request = stream, deadline, request

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            if time.monotonic() > self._deadline:
                raise httpx.ReadTimeout(
                    "the answer was still arriving when the time left ran out",
                    request=self._request,
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()
