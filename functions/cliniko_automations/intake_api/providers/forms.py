"""Form-encoded bodies: application/x-www-form-urlencoded and multipart/form-data.

Browsers post the first (the second when a form has file inputs); Jotform posts the second.
Repeated keys (checkboxes) become lists. File parts are skipped: the intake takes no files.
"""

from __future__ import annotations

import codecs
import re
from urllib.parse import parse_qsl

from cliniko_automations.intake_api.errors import MalformedBody

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 500
# The charsets a multipart part or a url-encoded body may name, by the names browsers and
# form services use, and the codec each is read with. Python has codecs that turn ASCII into
# any text at all (unicode_escape, raw_unicode_escape: lone surrogates included) or are not
# text codecs (base64, zlib): the sender's name is only ever looked up here, never handed to
# the codec registry.
FORM_CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
}

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

# What a browser sends from a page served in the legacy charset, without naming it: the
# url-encoded body's fallback when its bytes are not UTF-8.
LEGACY_BROWSER_CODEC = "cp1252"

FormValues = dict[str, str | list[str]]


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_form(body: bytes, content_type: str) -> FormValues:
    kind = media_type(content_type)
    if kind == URLENCODED:
        pairs = _urlencoded(body, _charset_parameter(content_type))
    elif kind == MULTIPART:
        pairs = _multipart(body, content_type)
    else:
        raise MalformedBody("not a form body")
    values: FormValues = {}
    for key, value in pairs:
        if key not in values:
            values[key] = value
        else:
            existing = values[key]
            values[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
    return values


def _urlencoded(body: bytes, charset: str | None) -> list[tuple[str, str]]:
    """The pairs of a url-encoded body in `charset` (the Content-Type's), else in UTF-8, else
    in windows-1252: a page served in that legacy charset posts its form in it unnamed, and
    a text that is not UTF-8 was not written in UTF-8."""
    # A BOM is never a form's content: left in, it hid the first field (read as "\ufeffphone").
    body = body.removeprefix(codecs.BOM_UTF8)
    if charset is not None:
        return _urlencoded_in(body, _charset_codec(charset, "form body"))
    try:
        return _urlencoded_in(body, "utf-8")
    except MalformedBody:
        return _urlencoded_in(body, LEGACY_BROWSER_CODEC)


def _urlencoded_in(body: bytes, codec: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode(codec),
            # A key without "=" (a bare checkbox name) is a blank answer, and an empty pair (a
            # trailing "&" of a hand-built body) is nothing: neither is a broken body.
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
            encoding=codec,
            errors="strict",  # the default would swap bad %-escapes for U+FFFD silently
        )
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("form body is not valid url-encoding") from None


def _charset_parameter(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type header, unquoted; None when it has none."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"')
    return None


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The fields of a multipart/form-data body (RFC 7578), read in one linear pass.

    Not the stdlib's MIME parser: a sender's part headers reached its RFC 2822 header parser,
    which recursed past the stack on 500 unbalanced "(" of a comment, handed RFC 2231 values
    to any codec they named (`name*=idna''x` raised UnicodeError) and took quadratic time
    over many ";" (a 64 kB header: 40 s of CPU, past the function's timeout). Form parts
    carry a Content-Disposition and at most a Content-Type; the rest of MIME is refused."""
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
    codec = _charset_codec(charset, "multipart part")
    try:
        return name, payload.decode(codec)
    except UnicodeDecodeError:
        raise MalformedBody("multipart part is not text") from None


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
        text = block.decode(LEGACY_BROWSER_CODEC, errors="replace")
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


def _charset_codec(named: str | None, what: str) -> str:
    """The codec for a charset a sender named (UTF-8 when none); MalformedBody naming `what`
    when it is not one of FORM_CHARSETS."""
    if named is None:
        return "utf-8"
    codec = FORM_CHARSETS.get(named.strip().lower())
    if codec is None:
        raise MalformedBody(f"{what} charset is not utf-8, us-ascii, iso-8859-1 or windows-1252")
    return codec
