"""An answer too long to hold is refused as it is read, never held whole: a Lambda of 256 MB
would die of a body of hundreds of MB, or of a few hundred kB of gzip that inflate to them,
where the worker, the erasure and the change feed each expect a typed error."""

from __future__ import annotations

import gc
import gzip
import json
import re
import socket
import tracemalloc
import zlib

import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.transport import MAX_ANSWER_BYTES

from tests.integration.cliniko.test_contacts import CONTACT, ID, scripted_client
from tests.integration.common.test_http_transport import _held_by_this_process, answer, client_end

MB = 1 << 20


def status_for(request: bytes) -> str:
    """What Cliniko answers a success with: 201 for a create, 200 for the rest."""
    return "201 Created" if request.startswith(b"POST") else "200 OK"


def gzip_bomb(megabytes: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * MB
    return b"".join(squeeze.compress(chunk) for _ in range(megabytes)) + squeeze.flush()


BOMB = gzip_bomb(256)  # some 250 kB sent, 256 MB once inflated


def bomb(connection: socket.socket, request: bytes) -> None:
    headers = ("Content-Type: application/json", "Content-Encoding: gzip")
    answer(BOMB, *headers, status=status_for(request))(connection, request)


def flood(connection: socket.socket, request: bytes) -> None:
    head = f"HTTP/1.1 {status_for(request)}\r\nContent-Length: {256 * MB}\r\n\r\n"
    connection.sendall(head.encode())
    for _ in range(256):
        connection.sendall(b" " * MB)


def call(client, operation: str):
    return {
        "get": lambda: client.get_contact(ID),
        "create": lambda: client.create_contact({"first_name": "Ana", "last_name": "Lima"}),
        "list": lambda: client.list_contacts(),
    }[operation]()


@pytest.mark.parametrize("script", [bomb, flood], ids=["gzip-bomb", "plain-flood"])
@pytest.mark.parametrize("operation", ["get", "create", "list"])
def test_an_answer_too_long_to_hold_is_refused_as_it_is_read(script, operation):
    client, server = scripted_client(script)
    tracemalloc.start()
    try:
        with pytest.raises(errors.UnexpectedResponse) as caught:
            call(client, operation)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
        server.stop()
    assert peak < 4 * MAX_ANSWER_BYTES, f"{peak // MB} MB held reading one answer"
    # A create's 2xx keeps its status: the contact may be made, so the worker looks it up.
    assert caught.value.status_code == (201 if operation == "create" else 200)
    assert isinstance(caught.value, errors.AnswerTooLong)
    if operation == "list":
        # A page too long to hold is asked for again in halves, down to one contact, from the
        # same one; one contact too long to hold is refused all the same.
        sizes = [re.search(rb"per_page=(\d+)", r).group(1) for r in server.requests]
        assert sizes == [b"100", b"50", b"25", b"12", b"6", b"3", b"1"]
        assert all(b"?page=1&" in r.split(b"\r\n")[0] for r in server.requests)
    else:
        assert len(server.requests) == 1  # nothing sent again: the answer came, it was refused


def test_an_answer_refused_as_too_long_leaves_its_socket_closed():
    # Read no further, the rest of the answer is still on the wire: the connection can only
    # be closed, and by the transport. Left to whatever frees the answer, its socket stayed
    # open for as long as the error was held (a caller deciding what to do, a log line's
    # traceback, a listing halving its page: one socket more for each half).
    ports: list[tuple[int, int]] = []

    def flood_from(connection: socket.socket, request: bytes) -> None:
        ports.append(client_end(connection))
        flood(connection, request)

    client, server = scripted_client(flood_from)
    gc.disable()  # closed by the transport, not by a collection that happens to run
    try:
        with pytest.raises(errors.AnswerTooLong) as caught:
            client.get_contact(ID)
        assert caught.value.status_code == 200  # the error is held while the socket is looked for
        assert len(ports) == 1
        assert not _held_by_this_process(ports[0])
    finally:
        gc.enable()
        client.close()
        server.stop()


def test_a_gzip_answer_within_the_bound_is_read_as_it_was_sent():
    contact = {**json.loads(CONTACT), "notes": "n" * MB}
    body = gzip.compress(json.dumps(contact).encode())
    client, server = scripted_client(answer(body, "Content-Encoding: gzip"))
    try:
        got = client.get_contact(ID)
    finally:
        client.close()
        server.stop()
    assert (got.id, got.notes) == (ID, "n" * MB)
    assert b"accept-encoding: gzip\r\n" in server.requests[0].lower()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("br", b"\x1b\x00\x00"), ("deflate", zlib.compress(b"{}")), ("gzip", b"not gzip at all")],
    ids=["not-asked-for", "deflate-not-asked-for", "corrupt"],
)
def test_an_answer_that_does_not_decode_is_off_the_spec(encoding, body):
    client, server = scripted_client(answer(body, f"Content-Encoding: {encoding}"))
    try:
        with pytest.raises(errors.UnexpectedResponse) as caught:
            client.get_contact(ID)
    finally:
        client.close()
        server.stop()
    assert caught.value.status_code == 200


def test_a_rate_limit_with_a_page_too_long_to_hold_is_still_a_rate_limit():
    # A proxy's 429 page: only its beginning is read, and the header says all an error needs.
    page = b"<html>" + b" " * (MAX_ANSWER_BYTES + MB) + b"</html>"
    client, server = scripted_client(
        answer(page, "X-RateLimit-Reset: 4102444800", status="429 Too Many Requests")
    )
    try:
        with pytest.raises(errors.RateLimited):
            client.create_contact({"first_name": "Ana", "last_name": "Lima"})
    finally:
        client.close()
        server.stop()
