"""Form-encoded bodies: application/x-www-form-urlencoded and multipart/form-data.

Browsers post the first (the second when a form has file inputs); Jotform posts the second.
Repeated keys (checkboxes) become lists. File parts are skipped: the intake takes no files.
"""

from __future__ import annotations

import codecs
from urllib.parse import parse_qsl, unquote_to_bytes

from cliniko_automations.intake_api.errors import MalformedBody

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 500
# The charsets a multipart part or a url-encoded body may name, by the names browsers and
# form services use, and the codec each is read with: as the WHATWG Encoding standard reads
# them, so "iso-8859-1" and "us-ascii" are windows-1252 (a typed ’ is 0x92 there, a C1
# control in Latin-1). Python has codecs that turn ASCII into
# any text at all (unicode_escape, raw_unicode_escape: lone surrogates included) or are not
# text codecs (base64, zlib): the sender's name is only ever looked up here, never handed to
# the codec registry.
FORM_CHARSETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
}

# What a browser sends from a page served in the legacy charset, without naming it: the
# fallback for form text whose bytes are not UTF-8 (see `unlabelled_decoding`).
LEGACY_BROWSER_CODEC = "cp1252"

FormValues = dict[str, str | list[str]]


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_form(body: bytes, content_type: str) -> FormValues:
    kind = media_type(content_type)
    if kind == URLENCODED:
        pairs = _urlencoded(body, _charset_parameter(content_type))
    elif kind == MULTIPART:
        # Imported here: its patterns are compiled at import, and JSON senders never need them.
        from cliniko_automations.intake_api.providers.multipart import read_multipart

        pairs = read_multipart(body, content_type)
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
    # parse_qsl's own limit counts every "&" (empty pairs too); past it, its ValueError read
    # as "not valid url-encoding", which sent the sender looking in the wrong place.
    if body.count(b"&") + 1 > MAX_FIELDS:
        raise MalformedBody(f"too many form fields (at most {MAX_FIELDS})")
    if charset is not None:
        return _urlencoded_in(body, charset_codec(charset, "form body"))
    try:
        return _urlencoded_in(body, "utf-8")
    except MalformedBody:
        return _urlencoded_in(body, *unlabelled_decoding(unquote_to_bytes(body)))


def _urlencoded_in(body: bytes, codec: str, errors: str = "strict") -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode(codec, errors),
            # A key without "=" (a bare checkbox name) is a blank answer, and an empty pair (a
            # trailing "&" of a hand-built body) is nothing: neither is a broken body.
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FIELDS,
            encoding=codec,
            errors=errors,  # "replace" only by choice (unlabelled_decoding), never by default
        )
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("form body is not valid url-encoding") from None


def unlabelled_decoding(data: bytes) -> tuple[str, str]:
    """How to read form text that names no charset and is not UTF-8: (codec, errors).

    Windows-1252, what a page served in that legacy charset posts, when none of it is UTF-8;
    but UTF-8 with the broken sequences as U+FFFD when some of it is (a client that cut a
    character in two), as JSON's lone surrogates are: read as Windows-1252, every other
    accented letter of the form came out as two ("JosÃ©")."""
    text = data.decode("utf-8", "replace")
    if any(ord(character) > 0x7F and character != "\ufffd" for character in text):
        return "utf-8", "replace"
    return LEGACY_BROWSER_CODEC, "strict"


def _charset_parameter(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type header, unquoted; None when it has none."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"')
    return None


def charset_codec(named: str, what: str) -> str:
    """The codec for a charset a sender named; MalformedBody naming `what` when it is not one
    of FORM_CHARSETS."""
    codec = FORM_CHARSETS.get(named.strip().lower())
    if codec is None:
        raise MalformedBody(f"{what} charset is not utf-8, us-ascii, iso-8859-1 or windows-1252")
    return codec
