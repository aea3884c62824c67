"""The one logging set-up every function uses: `function_logger(service)`.

Lambda's JSON logging sets the root logger's level from the function's `LogLevel`, and every
library logger without a level of its own inherits it. At DEBUG, botocore logs Secrets
Manager answers (signing secrets, Cliniko keys, the pepper) and SQS message bodies; at INFO,
httpx logs each request line, query string included (an erasure by email). So the libraries'
loggers are pinned to WARNING on their own, whatever `LogLevel` says (urllib3's connections,
which warn with a request's whole URL, to ERROR).

Behind that, a redacting filter on the function's logger and on the root logger's handlers
(the Lambda runtime's) is the last line of defence: it blanks emails, phone-like digit runs
and every secret value this container has read, whole or URL-encoded, from messages, extra
keys and exception texts. The code still logs only ids, counts, field names and fixed reason
codes; the filter is for the line someone adds later without thinking.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import traceback
from typing import Any
from urllib.parse import quote, quote_plus

from aws_lambda_powertools import Logger

# Libraries whose DEBUG/INFO lines carry request lines, bodies or secrets.
THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "botocore",
    "boto3",
    "urllib3",
    "s3transfer",
    "aws_lambda_powertools",
)
THIRD_PARTY_LEVEL = logging.WARNING
# Loggers quieter still: urllib3's connections log a request's whole URL, query string (a
# lookup's name or email) included, at WARNING when an answer's headers do not parse, which
# any server can make happen. What they warn of reaches the caller as an exception anyway.
URL_LOGGERS = ("urllib3.connection",)
URL_LOGGERS_LEVEL = logging.ERROR

# Each candidate starts where a run of the local part's characters starts (the lookbehind):
# tried from every character of a long run instead, a 20,000-character token took 5 s to
# redact, the scan quadratic in its length.
EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+'-])[A-Za-z0-9._%+'-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.[A-Za-z]{2,}"
)
# A phone number: 8-15 digits, led by "+", "0" or "(", or grouped by spaces, dashes or
# parentheses. A bare run of digits that starts with 1-9 is left alone (Cliniko's ids look
# so), as are digits inside a word, a uuid or a dotted number. At most 40 characters, more
# than the longest number written out: unbounded, a long run of digits and spaces was read
# from each of its digits to its end (24,000 characters: 6 s).
DIGIT_RUN = re.compile(r"(?<![\w%.-])\+?\(?\d[\d\s()-]{0,38}\d(?![\w%-])")
# RFC 2606 reserves the ".example" top-level domain for documentation: no person has such an
# address, and the misconfiguration fixes show the User-Agent rule with one.
DOCUMENTATION_EMAIL = re.compile(r".*\.example", re.IGNORECASE)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# Secrets shorter than this are not searched for (they would blank ordinary words).
MIN_SECRET_LENGTH = 8

REDACTED_EMAIL = "[email]"
REDACTED_PHONE = "[phone]"
REDACTED_SECRET = "[secret]"  # noqa: S105 (the placeholder, not a secret)

# Attributes every LogRecord has; anything else on a record is an `extra` key.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}

_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Blank `value` (and its URL-encodings) wherever it would be logged from now on."""
    forms = {value, value.strip()}
    forms |= {quote(form, safe="") for form in list(forms)}
    forms |= {quote_plus(form) for form in list(forms)}
    forms = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
    global _secret_pattern
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so a secret's encoding is not half-replaced by the secret itself.
        alternatives = "|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))
        _secret_pattern = re.compile(alternatives, re.IGNORECASE)


def _email(match: re.Match[str]) -> str:
    address = match.group(0)
    return address if DOCUMENTATION_EMAIL.fullmatch(address) else REDACTED_EMAIL


def _phone(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = sum(c.isdigit() for c in run)
    if not 8 <= digits <= 15 or ISO_DATE.match(run):
        return run
    grouped = any(not c.isdigit() for c in run.lstrip("+("))
    if run[0] in "+(0" or grouped:
        return REDACTED_PHONE
    return run


def redact(text: str) -> str:
    """`text` with secrets, emails and phone-like digit runs blanked."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED_SECRET, text)
    text = EMAIL.sub(_email, text)
    return DIGIT_RUN.sub(_phone, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A logged value with every string in it redacted (containers copied, not changed)."""
    if isinstance(value, str):
        return redact(value)
    if depth > 8:
        return value if isinstance(value, int | float | bool | None) else "[nested]"
    if isinstance(value, dict):
        return {redact_value(k, depth + 1): redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, depth + 1) for item in value]
    if value is None or isinstance(value, int | float | bool):
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Redacts a record in place: its message, its extra keys and its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) and not record.args:
            record.msg = redact_value(record.msg)  # Powertools logs a dict message as JSON
        else:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string must not lose the record
                message = str(record.msg)
            record.msg, record.args = redact(message), None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRIBUTES:
                setattr(record, name, redact_value(value))
        if record.exc_info and record.exc_info[0] is not None:
            text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
            # Formatters format exc_info again (Powertools adds the exception's value as a
            # structured stack trace): hand them the redacted text instead.
            record.exc_text = text
            record.exception = text
            record.exception_name = record.exc_info[0].__name__
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTING_FILTER = RedactingFilter()


def configure_logging() -> None:
    """Pin the libraries' loggers and filter the root logger's handlers (idempotent).

    The libraries' own child loggers set louder before this ran (`botocore.endpoint` at DEBUG
    by a layer, `boto3.set_stream_logger`) take the pinned level again: a child's own level
    wins over its parent's, and botocore's DEBUG lines hold secrets' values and request
    bodies before any redaction knows them. Their handlers get the redacting filter too.
    """
    for name in THIRD_PARTY_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(THIRD_PARTY_LEVEL)
        for handler in library.handlers:
            _add_filter(handler)
    for name, child in list(logging.root.manager.loggerDict.items()):
        if not isinstance(child, logging.Logger) or not _of_a_library(name):
            continue
        if child.level != logging.NOTSET and child.level < THIRD_PARTY_LEVEL:
            child.setLevel(logging.NOTSET)  # as its pinned parent
        for handler in child.handlers:
            _add_filter(handler)
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(URL_LOGGERS_LEVEL)
    for handler in logging.getLogger().handlers:
        _add_filter(handler)


def _of_a_library(name: str) -> bool:
    return any(name.startswith(f"{library}.") for library in THIRD_PARTY_LOGGERS)


def function_logger(service: str) -> Logger:
    """The Powertools logger of one function (`service` names it), set up as above."""
    configure_logging()
    logger = Logger(service=service, json_serializer=_redacted_json)
    # The standard logger Powertools writes through (named after the service): its `filters`
    # are what the check below reads, which Powertools' Logger only exposes untyped.
    _add_filter(logging.getLogger(logger.name))
    return logger


def _redacted_json(log: dict[str, Any]) -> str:
    """A Powertools log line as JSON, every value redacted. The keys a logger carries from line
    to line (`append_keys`, the correlation id) are the formatter's, not the record's: they
    are added after every filter has run, so the filter never sees them."""
    return json.dumps(redact_value(log), default=str, separators=(",", ":"), ensure_ascii=False)


def _add_filter(target: logging.Logger | logging.Handler) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(REDACTING_FILTER)
