"""The httpx transport over urllib3 (`common/http_transport.py`), against servers on 127.0.0.1
that answer as scripted, down to the byte: what ClinikoTransport's guarantees rest on is
which exception a failure becomes (a connect error only when nothing was sent), that the
request goes out as httpx built it, and that a connection is reused only after a whole answer.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import trustme
import urllib3
from cliniko_automations.common import http_transport
from cliniko_automations.common.http_transport import Urllib3Transport
from cliniko_automations.common.logs import configure_logging

Script = Callable[[socket.socket, bytes], None]


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and hands each request's bytes (head and body, read
    as Content-Length says) to `script`, which writes whatever answer it likes."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script, self.tls = script, tls
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += connection.recv(65536)
                request, buffered = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append(request)
                self.script(connection, request)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        servers.append(ScriptedServer(script, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def answer(body: bytes = b'{"ok": true}', *headers: str, status: str = "200 OK") -> Script:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]

    def script(connection: socket.socket, request: bytes) -> None:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return script


def client(timeout: float = 2.0, context: ssl.SSLContext | None = None) -> httpx.Client:
    return httpx.Client(
        transport=Urllib3Transport(context or ssl.create_default_context()),
        timeout=httpx.Timeout(timeout),
    )


QUERY = {"q[]": "email:=grizelda.thistlewaite@example.com", "sort": "updated_at:desc"}


def test_the_request_goes_out_as_httpx_built_it_and_the_answer_comes_back_whole(serve):
    body = gzip.compress(b'{"contacts": []}')
    server = serve(
        answer(body, "Content-Encoding: gzip", "Link: <a>; rel=next", "Link: <b>; rel=prev")
    )
    with client() as http:
        sent = http.build_request(
            "POST", f"http://127.0.0.1:{server.port}/v1/contacts", params=QUERY, json={"a": 1}
        )
        response = http.send(sent)
    request = server.requests[0]
    head, _, content = request.partition(b"\r\n\r\n")
    request_line, *header_lines = head.split(b"\r\n")
    assert request_line == b"POST " + sent.url.raw_path + b" HTTP/1.1"
    assert content == sent.content
    assert sorted(h.split(b":")[0].lower() for h in header_lines) == sorted(
        name.lower() for name, _ in sent.headers.raw
    )
    assert response.status_code == 200
    assert response.json() == {"contacts": []}  # httpx decoded the gzip, urllib3 did not
    assert response.headers.get_list("link") == ["<a>; rel=next", "<b>; rel=prev"]
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"


def test_header_bytes_beyond_ascii_reach_httpx_as_they_came(serve):
    server = serve(
        lambda connection, request: connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Clinic: Caf\xe9\r\n\r\n{}"
        )
    )
    with client() as http:
        response = http.get(f"http://127.0.0.1:{server.port}/v1/contacts")
    assert response.headers.raw[-1] == (b"X-Clinic", b"Caf\xe9")
    assert response.json() == {}


def test_a_connection_is_reused_after_a_whole_answer_and_not_after_a_partial_one(serve):
    server = serve(answer(b"x" * 300_000))
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    with client() as http:
        http.get(url)
        http.get(url)
        assert server.connections == 1
        with http.stream("GET", url) as partial:
            next(partial.iter_raw(1024))  # the rest stays on the wire
        http.get(url)
        assert server.connections == 2


def test_a_connection_whose_answer_is_still_arriving_is_not_used_again(serve):
    # Cut off before the rest of its body came (ClinikoTransport's deadline, an answer too
    # large): on a kept connection, that rest would be read as the next request's answer.
    def half_now_half_later(connection: socket.socket, request: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"
        connection.sendall(head + b"x" * 1000)
        time.sleep(0.3)
        connection.sendall(b"x" * 1000)

    server = serve(half_now_half_later)
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    with client() as http:
        with http.stream("GET", url) as partial:
            next(partial.iter_raw())
        assert http.get(url).content == b"x" * 2000
        assert server.connections == 2


def test_an_informational_answer_never_leaves_the_real_one_for_the_next_request(serve):
    # 103 Early Hints, then the answer: http.client skips a 100 only and took any other 1xx
    # for the answer, so the real one stayed on the kept connection and the next request on
    # it read it as its own (and every answer after was one behind).
    def early_hints_first(connection: socket.socket, request: bytes) -> None:
        asked = request.split(b" ")[1]
        if len(server.requests) == 1:
            connection.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
            time.sleep(0.2)
        answer(asked)(connection, request)

    server = serve(early_hints_first)
    url = f"http://127.0.0.1:{server.port}/v1/contacts/"
    with client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(url + "111")
        assert [http.get(url + asked).content for asked in ("222", "333")] == [
            b"/v1/contacts/222",
            b"/v1/contacts/333",
        ]
    assert server.connections == 2  # the one the 103 came on was not used again


def test_a_connection_idle_past_the_keep_alive_expiry_is_not_used_again(serve):
    server = serve(answer())
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    # An expiry a stalled test cannot reach between two requests in a row.
    transport = Urllib3Transport(ssl.create_default_context(), keep_alive_expiry=1.0)
    with httpx.Client(transport=transport) as http:
        http.get(url)
        http.get(url)
        assert server.connections == 1
        time.sleep(1.3)
        http.get(url)
        assert server.connections == 2


class ThawedClocks:
    """`time` as the transport reads it in a Lambda thawed after an hour's freeze, whose
    monotonic clock did not run meanwhile (Firecracker does not promise it does)."""

    def __init__(self) -> None:
        self.frozen_for = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self.frozen_for


def test_a_connection_kept_over_a_freeze_is_not_used_again_whichever_clock_ran(serve, monkeypatch):
    # The server (or a NAT) forgot the connection during the freeze without a FIN the
    # pool could see: the next request on it is read as closed, never answered. A create
    # sent on it would be an unknown outcome (the worker's lost create) for nothing.
    answered: set[socket.socket] = set()

    def forgotten_after_the_first_answer(connection: socket.socket, request: bytes) -> None:
        if connection in answered:
            connection.shutdown(socket.SHUT_RDWR)
            return
        answered.add(connection)
        answer()(connection, request)

    server = serve(forgotten_after_the_first_answer)
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    clocks = ThawedClocks()
    monkeypatch.setattr(http_transport, "time", clocks)
    with client() as http:
        http.get(url)
        clocks.frozen_for = 3600.0
        http.post(url, json={})
    assert server.connections == 2
    assert [request.split(b" ")[0] for request in server.requests] == [b"GET", b"POST"]
    assert len(answered) == 2


def test_headers_trickled_past_the_request_s_deadline_are_a_read_timeout(serve):
    head = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 60 + b"\r\nContent-Length: 2\r\n\r\n{}"

    def trickle(connection: socket.socket, request: bytes) -> None:
        for byte in head:  # each byte well inside the read timeout, the whole in some 8 s
            connection.sendall(bytes([byte]))
            time.sleep(0.1)

    server = serve(trickle)
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    with client(timeout=2.0) as http:
        # What had come by the deadline (the status line, some headers) is no answer.
        with pytest.raises(httpx.ReadTimeout):
            http.get(url, extensions={"deadline": time.monotonic() + 1.5})
        # Without one, the answer comes whole, late; a deadline met leaves it as it was.
        assert http.get(url).json() == {}
        fast = serve(answer(b"{}"))
        deadline = {"deadline": time.monotonic() + 30}
        fast_url = f"http://127.0.0.1:{fast.port}/v1/contacts"
        assert [http.get(fast_url, extensions=deadline).json() for _ in range(2)] == [{}, {}]
        assert fast.connections == 1  # and its connection is kept


def client_end(connection: socket.socket) -> tuple[int, int]:
    """The (local, remote) ports of the client's side of a connection a server accepted."""
    return connection.getpeername()[1], connection.getsockname()[1]


def _held_by_this_process(ports: tuple[int, int]) -> bool:
    """Whether a file descriptor of this process is the TCP socket with these (local, remote)
    ports (Linux: the socket's inode in /proc/net/tcp among /proc/self/fd's links). Both
    ends: Linux gives one local port to connections to different servers, and the process
    may hold another with the same local port (seen once in a full run)."""
    links = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            links.add(os.readlink(f"/proc/self/fd/{fd}"))
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rpartition(":")[2], 16) for f in fields[1:3])
            if (local, remote) == ports and f"socket:[{fields[9]}]" in links:
                return True
    return False


def test_an_answer_cut_off_at_its_deadline_leaves_its_socket_closed(serve):
    # The file http.client reads the answer through holds the socket open past urllib3's
    # close of the connection: a descriptor a warm Lambda keeps until a garbage collection.
    client_ports: list[tuple[int, int]] = []
    release = threading.Event()

    def part_of_a_head(connection: socket.socket, request: bytes) -> None:
        client_ports.append(client_end(connection))
        connection.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ppp\r\n")
        release.wait(10)

    server = serve(part_of_a_head)
    gc.disable()  # closed by the transport, not by a collection that happens to run
    try:
        with client(timeout=5.0) as http:
            with pytest.raises(httpx.ReadTimeout):
                http.get(
                    f"http://127.0.0.1:{server.port}/v1/contacts",
                    extensions={"deadline": time.monotonic() + 0.5},
                )
            assert len(client_ports) == 1
            assert not _held_by_this_process(client_ports[0])
    finally:
        gc.enable()
        release.set()


def test_nothing_listening_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with client() as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/v1/contacts")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), httpx.ConnectTimeout),
        (urllib3.exceptions.ClosedPoolError(None, "Pool is closed."), httpx.ConnectError),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), httpx.ReadTimeout),
    ],
    ids=["connect-timeout", "pool-closed-meanwhile", "read-timeout"],
)
def test_failures_a_local_server_cannot_stage_are_placed_by_whether_anything_was_sent(
    failure, expected
):
    request = httpx.Request("POST", "https://api.au1.cliniko.com/v1/contacts")
    placed = http_transport._as_httpx(failure, request)
    assert type(placed) is expected


def close_without_answering(connection: socket.socket, request: bytes) -> None:
    connection.shutdown(socket.SHUT_RDWR)


def answer_then_stall(connection: socket.socket, request: bytes) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(3)


def answer_then_drop(connection: socket.socket, request: bytes) -> None:
    connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{")
    connection.shutdown(socket.SHUT_RDWR)


def garbage(connection: socket.socket, request: bytes) -> None:
    connection.sendall(b"this is not HTTP at all\r\n\r\n")


def stall(connection: socket.socket, request: bytes) -> None:
    time.sleep(3)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (close_without_answering, httpx.RemoteProtocolError),
        (stall, httpx.ReadTimeout),
        (answer_then_stall, httpx.ReadTimeout),
        (answer_then_drop, httpx.RemoteProtocolError),
        (garbage, httpx.RemoteProtocolError),
    ],
    ids=["closed-unanswered", "no-answer", "body-stalls", "body-cut-short", "not-http"],
)
def test_a_failure_after_the_request_was_sent_is_never_a_connect_error(serve, script, expected):
    """ClinikoTransport sends a create again only after a connect error: each of these reached
    the server, so each must be a read or protocol error."""
    server = serve(script)
    with client(timeout=0.5) as http, pytest.raises(httpx.TransportError) as raised:
        http.post(f"http://127.0.0.1:{server.port}/v1/contacts", json={"first_name": "A"})
    assert isinstance(raised.value, expected), repr(raised.value)
    assert not isinstance(raised.value, httpx.ConnectError | httpx.ConnectTimeout)
    assert len(server.requests) == 1


MALFORMED = {
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "length-not-a-number": b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}",
    "status-not-a-number": b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
    "status-below-100": b"HTTP/1.1 42 Odd\r\nContent-Length: 2\r\n\r\n{}",
    "header-line-70kb": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n{}",
    "200-headers": b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 200 + b"\r\n{}",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_an_httpx_error_or_an_answer_never_another_exception(serve, raw):
    server = serve(lambda connection, request: (connection.sendall(raw), connection.close()))
    with client(timeout=1.0) as http:
        try:
            http.get(f"http://127.0.0.1:{server.port}/v1/contacts").read()
        except httpx.TransportError as exc:
            assert not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout), repr(exc)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def tls_server_context(authority: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert(name).configure_cert(context)
    return context


def test_https_to_a_trusted_server_is_answered(serve, authority):
    server = serve(answer(), tls_server_context(authority, "localhost"))
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    with client(context=trusting) as http:
        assert http.get(f"https://localhost:{server.port}/v1/contacts").json() == {"ok": True}


@pytest.mark.parametrize("certificate_for", ["localhost", "someone-else.example"])
def test_a_refused_certificate_is_a_connect_error_with_nothing_sent(
    serve, authority, certificate_for
):
    server = serve(answer(), tls_server_context(authority, certificate_for))
    trusting = ssl.create_default_context()
    if certificate_for != "localhost":
        authority.configure_trust(trusting)  # trusted, but for another name
    with client(context=trusting) as http, pytest.raises(httpx.ConnectError):
        http.post(f"https://localhost:{server.port}/v1/contacts", json={"first_name": "A"})
    assert server.requests == []


def test_an_answer_urllib3_cannot_parse_logs_no_url_at_debug(serve, caplog):
    """urllib3 logs the request's URL, query string included, when an answer's headers do not
    parse: a lookup's query holds a name, which the redacting filter cannot know."""
    server = serve(
        lambda connection, request: connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nnot a header\r\n\r\n{}"
        )
    )
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        configure_logging()
        with caplog.at_level(logging.DEBUG), client() as http:
            response = http.get(
                f"http://127.0.0.1:{server.port}/v1/contacts",
                params={"q[]": "last_name:=Thistlewaite"},
            )
    finally:
        root.setLevel(previous)
    assert response.json() == {}  # the answer is read all the same
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "thistlewaite" not in logged.lower()


class LateTimer(threading.Timer):
    """threading.Timer as it runs when its thread loses the GIL right after its check of
    `finished`: the request's thread gets its headers, cancels the timer (too late) and goes
    on, and the timer's call comes after."""

    def run(self) -> None:
        self.finished.wait(self.interval)
        if not self.finished.is_set():
            self.finished.wait(2.0)  # descheduled; the request's thread runs meanwhile
            time.sleep(0.1)
            self.function(*self.args, **self.kwargs)
        self.finished.set()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_cut_that_lost_the_race_to_the_headers_never_reaches_the_answer(
    serve, authority, monkeypatch, tls
):
    body = b'{"id": "1", "first_name": "Grizelda"}'

    def headers_at_the_deadline(connection: socket.socket, request: bytes) -> None:
        time.sleep(0.3)  # the headers come as the deadline passes
        connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body))
        connection.sendall(body)  # a TLS record of its own, on the wire before the late cut

    server = serve(
        headers_at_the_deadline, tls_server_context(authority, "localhost") if tls else None
    )
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    url = f"{'https' if tls else 'http'}://localhost:{server.port}/v1/contacts"
    monkeypatch.setattr(threading, "Timer", LateTimer)
    with client(timeout=2.0, context=trusting) as http:
        try:
            with http.stream(
                "POST", url, json={}, extensions={"deadline": time.monotonic() + 0.2}
            ) as created:
                time.sleep(0.3)  # the timer's late call comes as the body is still unread
                content = created.read()
        except httpx.ReadTimeout:
            return  # cut at the headers
        # Taken as whole, it is the answer sent (a late shutdown of a TLS socket had its body
        # read as the raw ciphertext).
        assert content == body


def test_a_late_cut_never_reaches_the_next_request_on_the_kept_connection(serve, monkeypatch):
    def slow(connection: socket.socket, request: bytes) -> None:
        time.sleep(0.3)  # the first answer's headers as its deadline passes
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    server = serve(slow)
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    monkeypatch.setattr(threading, "Timer", LateTimer)
    with client(timeout=2.0) as http:
        with contextlib.suppress(httpx.ReadTimeout):  # cut at the headers: as it may be
            http.get(url, extensions={"deadline": time.monotonic() + 0.2})
        # The next request, with no deadline of its own, on the connection kept.
        assert http.post(url, json={}).json() == {}


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_connection_cut_at_the_deadline_is_not_used_again(serve, authority, tls):
    answered: list[int] = []

    def first_trickles(connection: socket.socket, request: bytes) -> None:
        answered.append(1)
        if len(answered) > 1:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            return
        for byte in b"HTTP/1.1 200 OK\r\nX-Pad: ppppppppppppppp\r\n":
            connection.sendall(bytes([byte]))
            time.sleep(0.05)

    server = serve(first_trickles, tls_server_context(authority, "localhost") if tls else None)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    url = f"{'https' if tls else 'http'}://localhost:{server.port}/v1/contacts"
    with client(timeout=2.0, context=trusting) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get(url, extensions={"deadline": time.monotonic() + 0.5})
        far = {"deadline": time.monotonic() + 30}
        assert [http.get(url, extensions=far).json() for _ in range(3)] == [{}, {}, {}]
    assert server.connections == 2


def test_threads_sharing_a_transport_keep_their_own_deadlines_and_no_timer_outlives_a_request(
    serve,
):
    server = serve(answer(b"{}"))
    url = f"http://127.0.0.1:{server.port}/v1/contacts"
    failures: list[BaseException] = []
    with client() as http:

        def poll(deadline_in: float | None) -> None:
            try:
                for _ in range(50):
                    within = (
                        {} if deadline_in is None else {"deadline": time.monotonic() + deadline_in}
                    )
                    assert http.get(url, extensions=within).json() == {}
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=poll, args=(d,)) for d in (600.0, None, 0.5, 600.0)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    time.sleep(0.2)
    assert [t for t in threading.enumerate() if isinstance(t, threading.Timer)] == []
