"""multipart/form-data bodies (RFC 7578), read in one linear pass.

Not the stdlib's MIME parser: a sender's part headers reached its RFC 2822 header parser,
which recursed past the stack on 500 unbalanced "(" of a comment, handed RFC 2231 values to
any codec they named (`name*=idna''x` raised UnicodeError) and took quadratic time over many
";" (a 64 kB header: 40 s of CPU, past the function's timeout). Form parts carry a
Content-Disposition and at most a Content-Type; the rest of MIME is refused.
"""

from __future__ import annotations

import re

from cliniko_automations.intake_api.errors import MalformedBody
from cliniko_automations.intake_api.providers.forms import (
    MAX_FIELDS,
    charset_codec,
    unlabelled_decoding,
)

# Multipart limits: RFC 2046 allows a boundary of 70 characters; browsers send a part's
# headers in some 100 bytes, a file's name included, and one parameter or two.
BOUNDARY = re.compile(r"[\x20-\x7e]{0,199}[\x21-\x7e]")
MAX_PART_HEADERS = 4096
MAX_PARAMETERS = 8
PLAIN_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
# `; name=token` or `; name="quoted"`: each alternative consumes distinct characters, so a
# match takes time linear in what it reads, whatever the sender puts there. A quoted value is
# read with backslash escapes (RFC 2045) unless that leaves it unclosed, then as browsers
# write it (HTML: `"` as %22, a backslash as itself: `filename="C:\notes\"`).
PARAMETER = re.compile(
    r"[ \t]*;[ \t]*(?P<name>[!#$%&\'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*"
    r'(?:(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<literal>"[^"]*")|(?P<token>[^";\s]*))[ \t]*'
)
QUOTED_PAIR = re.compile(r"\\(.)")


def read_multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The (name, value) of each field of a multipart/form-data body, files left out."""
    boundary = _parameters(content_type, "multipart Content-Type")[1].get("boundary", "")
    if not BOUNDARY.fullmatch(boundary):
        raise MalformedBody("multipart body without a boundary")
    # A delimiter is a line of its own; the line break before it belongs to it, not to the
    # part it ends (RFC 2046 5.1.1). Bare LF line ends are read as CRLF.
    delimiter = re.compile(b"\r?\n--" + re.escape(boundary.encode("ascii")) + b"(?=--|[ \t]*\r?\n)")
    sections = delimiter.split(b"\r\n" + body)
    if len(sections) > MAX_FIELDS + 2:
        raise MalformedBody("too many form fields")
    pairs: list[tuple[str, str]] = []
    # sections[0] is the preamble, ignored; the close delimiter's "--" ends the parts.
    for section in sections[1:]:
        if section.startswith(b"--"):
            return pairs
        part = _part(section.lstrip(b" \t"))
        if part is not None:
            pairs.append(part)
    raise MalformedBody("multipart body is malformed (no closing boundary)")


def _part(section: bytes) -> tuple[str, str] | None:
    """One part's (name, value); None for a file part, which the intake does not take."""
    if section.startswith(b"\r\n"):
        section = section[2:]
    elif section.startswith(b"\n"):
        section = section[1:]
    else:
        raise MalformedBody("multipart part is malformed")
    block, payload = _split_part(section)
    headers = _part_headers(block)
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MalformedBody("multipart part is malformed")
    kind, parameters = _parameters(disposition, "multipart part")
    if kind.lower() != "form-data" or "name*" in parameters:
        raise MalformedBody("multipart part is malformed")
    name = parameters.get("name")
    if name is None:
        raise MalformedBody("multipart part without a name")
    if "filename" in parameters or "filename*" in parameters:
        return None
    if headers.get("content-transfer-encoding", "binary").lower() not in PLAIN_ENCODINGS:
        # Deprecated for form data (RFC 7578 4.7); no browser or form service sends it.
        raise MalformedBody("multipart part in a transfer encoding")
    charset = None
    if "content-type" in headers:
        charset = _parameters(headers["content-type"], "multipart part")[1].get("charset")
    try:
        if charset is None:
            # HTML posts a part in the page's charset, unlabelled, as it posts url-encoded
            # bodies: read the same way.
            return name, _unlabelled_text(payload)
        return name, payload.decode(charset_codec(charset, "multipart part"))
    except UnicodeDecodeError:
        raise MalformedBody("multipart part is not text") from None


def _unlabelled_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(*unlabelled_decoding(data))


def _split_part(section: bytes) -> tuple[bytes, bytes]:
    """A part's header block and its value: they part at the first blank line."""
    found = [(i, len(s)) for s in (b"\r\n\r\n", b"\n\n") if (i := section.find(s)) >= 0]
    if found:
        end, length = min(found)
        block, payload = section[:end], section[end + length :]
    elif section.endswith(b"\n"):
        # The blank line's break is the next delimiter's: the value is empty.
        block, payload = section.rstrip(b"\r\n"), b""
    else:
        raise MalformedBody("multipart part is malformed")
    if len(block) > MAX_PART_HEADERS:
        raise MalformedBody("multipart part headers are too long")
    return block, payload


def _part_headers(block: bytes) -> dict[str, str]:
    """A part's headers by lower-cased name; a header given twice is malformed."""
    try:
        text = block.decode("utf-8")  # browsers send a field's name as UTF-8, unescaped
    except UnicodeDecodeError:
        # A page served in that legacy charset, as for url-encoded bodies (a file's name).
        text = block.decode(unlabelled_decoding(block)[0], errors="replace")
    headers: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or name in headers or not HEADER_NAME.fullmatch(name):
            raise MalformedBody("multipart part headers are malformed")
        headers[name] = value.strip()
    return headers


def _parameters(value: str, what: str) -> tuple[str, dict[str, str]]:
    """A header value's first item and its `; name=value` parameters (names lower-cased,
    quoted values unquoted); MalformedBody naming `what` when it does not read as such."""
    first, separator, rest = value.partition(";")
    # A trailing ";" (some senders end every header with one) introduces nothing.
    rest = (separator + rest).rstrip(" \t;")
    parameters: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = PARAMETER.match(rest, position)
        if match is None or len(parameters) >= MAX_PARAMETERS:
            raise MalformedBody(f"{what} has malformed parameters")
        name = match["name"].lower()
        if name in parameters:
            raise MalformedBody(f"{what} names a parameter twice")
        quoted, literal = match["quoted"], match["literal"]
        if quoted:
            parameters[name] = QUOTED_PAIR.sub(r"\1", quoted[1:-1])
        else:
            parameters[name] = literal[1:-1] if literal else match["token"]
        position = match.end()
    return first.strip(), parameters
