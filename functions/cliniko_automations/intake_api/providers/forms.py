"""Form-encoded bodies: application/x-www-form-urlencoded and multipart/form-data.

Browsers post the first (the second when a form has file inputs); Jotform posts the second.
Repeated keys (checkboxes) become lists. File parts are skipped: the intake takes no files.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from cliniko_automations.intake_api.errors import MalformedBody

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
MAX_FIELDS = 500
# The charsets a part may name, by the names browsers and form services use, and the codec
# each is read with. Python has codecs that turn ASCII into any text at all (unicode_escape,
# raw_unicode_escape: lone surrogates included) or are not text codecs (base64, zlib): the
# sender's name is only ever looked up here, never handed to the codec registry.
PART_CHARSETS = {
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

FormValues = dict[str, str | list[str]]


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse_form(body: bytes, content_type: str) -> FormValues:
    kind = media_type(content_type)
    if kind == URLENCODED:
        pairs = _urlencoded(body)
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


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            max_num_fields=MAX_FIELDS,
            errors="strict",  # the default would swap bad %-escapes for U+FFFD silently
        )
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("form body is not valid url-encoding") from None


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    # The stdlib MIME parser reads multipart/form-data once given its Content-Type line
    # (with the boundary); it is lenient, so its recorded defects decide what is malformed.
    # Imported here: its header policies cost a cold start ~5 ms that JSON senders never need.
    from email import policy
    from email.message import EmailMessage
    from email.parser import BytesParser

    if "boundary=" not in content_type.lower():
        raise MalformedBody("multipart body without a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart() or message.defects:
        raise MalformedBody("multipart body is malformed")
    pairs = []
    for part in message.iter_parts():
        if part.defects or part.get_content_disposition() != "form-data":
            raise MalformedBody("multipart part is malformed")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise MalformedBody("multipart part without a name")
        if part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise MalformedBody("multipart part is malformed")
        try:
            pairs.append((name, payload.decode(_part_charset(part.get_content_charset()))))
        except UnicodeDecodeError:
            raise MalformedBody("multipart part is not text") from None
        if len(pairs) > MAX_FIELDS:
            raise MalformedBody("too many form fields")
    return pairs


def _part_charset(named: str | None) -> str:
    if named is None:
        return "utf-8"
    codec = PART_CHARSETS.get(named.strip().lower())
    if codec is None:
        raise MalformedBody(
            "multipart part charset is not utf-8, us-ascii, iso-8859-1 or windows-1252"
        )
    return codec
