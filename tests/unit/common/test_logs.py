"""The shared logging set-up: library loggers pinned to WARNING whatever the root level, and
the redacting filter blanking emails, phones and secrets from every part of a record."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cliniko_automations.common import logs
from cliniko_automations.common.logs import (
    THIRD_PARTY_LOGGERS,
    configure_logging,
    function_logger,
    redact,
    register_secret,
)

SECRET = "sk_live_Zq81-secret+/value=="


@pytest.mark.parametrize(
    "name",
    ["httpx", "httpcore", "botocore", "boto3", "urllib3", "s3transfer", "aws_lambda_powertools"],
)
def test_library_loggers_stay_at_warning_when_the_root_logger_is_at_debug(name):
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)  # what Lambda's JSON logging does for LogLevel=DEBUG
    try:
        configure_logging()
        child = logging.getLogger(f"{name}.endpoint")
        assert not child.isEnabledFor(logging.INFO)
        assert child.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(previous)
    assert name in THIRD_PARTY_LOGGERS


def test_library_child_loggers_set_louder_beforehand_are_pinned_and_filtered():
    # A layer or wrapper that set `botocore.endpoint` to DEBUG (or called
    # boto3.set_stream_logger) before the handler's import: the child's own level won over the
    # pinned parent, and botocore logged a secret's value and a stored body in clear.
    endpoint, parsers = logging.getLogger("botocore.endpoint"), logging.getLogger("urllib3.util")
    stream = io.StringIO()
    own = logging.StreamHandler(stream)
    endpoint.setLevel(logging.DEBUG)
    parsers.setLevel(logging.INFO)
    endpoint.addHandler(own)
    try:
        configure_logging()
        assert not endpoint.isEnabledFor(logging.INFO)
        assert not parsers.isEnabledFor(logging.INFO)
        register_secret(SECRET)
        endpoint.warning("answer %s for ana.lima@clinic.org.au", SECRET)
        assert stream.getvalue().count("[") >= 2
        assert SECRET not in stream.getvalue() and "ana.lima" not in stream.getvalue()
    finally:
        endpoint.removeHandler(own)
        endpoint.setLevel(logging.NOTSET)
        parsers.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("contact 1234567890123456789 archived", "1234567890123456789"),
        ("submission 3f2a1b4c-1234-5678-9abc-def012345678", "3f2a1b4c-1234-5678-9abc-def012345678"),
        ("received 2026-11-23T10:00:00+00:00", "2026-11-23T10:00:00+00:00"),
        ("retrying in 0.25s (attempt 2 of 4)", "retrying in 0.25s (attempt 2 of 4)"),
        ("trace 1-5759e988-bd862e3fe1be46a994272793", "1-5759e988-bd862e3fe1be46a994272793"),
        ("due 2026-11-23 today", "2026-11-23"),
    ],
)
def test_ids_dates_and_counts_are_kept(text, kept):
    assert kept in redact(text)


@pytest.mark.parametrize(
    "value",
    [
        "Grizelda.Thistlewaite+ortho@example.com",
        "grizelda.thistlewaite%2Bortho%40example.com",
        "+61 412 987 654",
        "0412987654",
        "(02) 5550 1234",
        "0491-570-156",
        "5550 1234",  # a landline without its area code: 8 digits, the fewest a phone has
    ],
)
def test_emails_and_phones_are_blanked(value):
    assert value not in redact(f"q[]=email:={value} and more")


def test_a_long_token_is_redacted_in_one_pass():
    # Tried from every character of a run, the email pattern took time quadratic in the run's
    # length (20,000 characters: 5 s, so these runs of 200,000: minutes each). The bound is
    # against that hang, not a speed measurement: in one pass they take about a second, and
    # a loaded machine took 12.
    started = time.monotonic()
    for run in ("a" * 200_000, "%40" * 70_000, "1-" * 100_000, "a." * 100_000, " 1-" * 60_000):
        assert redact(run + " ann@example.org").endswith(" [email]")
    assert time.monotonic() - started < 120


def test_a_registered_secret_is_blanked_whole_and_url_encoded():
    register_secret(SECRET)
    for form in (SECRET, quote(SECRET, safe=""), quote_plus(SECRET), SECRET.lower()):
        assert SECRET.lower() not in redact(f"key={form}").lower()
        assert form not in redact(f"key={form}")


def test_a_secret_with_spaces_is_blanked_in_either_url_encoding():
    # A query string writes a space as %20 (httpx) or as + (a form body): a passphrase as a
    # signing secret is blanked in both.
    passphrase = "correct horse battery staple"
    register_secret(passphrase)
    for form in (quote(passphrase, safe=""), quote_plus(passphrase)):
        assert redact(f"key={form}") == "key=[secret]"


def test_short_secrets_are_not_searched_for():
    register_secret("abc")
    assert redact("abc") == "abc"


@contextlib.contextmanager
def written_by(logger: Any) -> Iterator[io.StringIO]:
    """What the function logger's handler writes meanwhile."""
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_the_function_logger_redacts_messages_extras_and_exceptions():
    register_secret(SECRET)
    logger = function_logger("tests-logs")
    with written_by(logger) as stream:
        logger.info("looked up %s", "ada+x@example.com", extra={"detail": {"k": SECRET}})
        try:
            raise ValueError(f"bad key {SECRET} for 0412 987 654")
        except ValueError:
            logger.exception("failed")
    text = stream.getvalue()
    assert "ada+x@example.com" not in text and SECRET not in text and "987 654" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "looked up [email]"
    assert first["detail"] == {"k": "[secret]"}
    assert second["exception_name"] == "ValueError"
    assert "[secret]" in second["exception"]


def test_a_records_extra_keys_are_redacted_for_the_runtimes_handler_too():
    # A library's line reaches Lambda's own handler on the root logger, whose JSON format
    # writes a record's extra keys, without the function logger's redacted JSON.
    register_secret(SECRET)
    record = logging.LogRecord("botocore.endpoint", logging.WARNING, __file__, 1, "sent", (), None)
    record.detail = {"to": "ada+x@example.com", "key": SECRET}
    assert logs.REDACTING_FILTER.filter(record)
    assert record.detail == {"to": "[email]", "key": "[secret]"}


def test_the_filter_is_added_once():
    function_logger("tests-logs")
    function_logger("tests-logs")
    target = logging.getLogger("tests-logs")
    assert sum(isinstance(f, logs.RedactingFilter) for f in target.filters) == 1


def test_a_dict_message_stays_structured():
    logger = function_logger("tests-logs")
    stream = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(stream)
    try:
        logger.info({"outcome": "ok", "to": "ada+x@example.com", "count": 3})
    finally:
        handler.setStream(previous)
    record = json.loads(stream.getvalue())
    assert record["message"] == {"outcome": "ok", "to": "[email]", "count": 3}


def test_documentation_addresses_are_kept_and_lookalikes_are_not():
    # ".example" is reserved for documentation (RFC 2606): the fixes logged for a refused
    # User-Agent quote one. A real domain that merely contains "example" is still blanked.
    assert "it@acme.example" in redact("e.g. 'Acme Clinic (it@acme.example)'")
    assert "ada@example.example.org" not in redact("to ada@example.example.org")
    assert "ada@my.example.com" not in redact("to ada@my.example.com")


def test_keys_appended_to_the_logger_and_the_correlation_id_are_redacted():
    # Powertools adds them in its formatter, after the filters have run.
    register_secret(SECRET)
    logger = function_logger("tests-logs")
    try:
        with written_by(logger) as stream:
            logger.append_keys(erasure_request_id="0412345678", who="ada+x@example.com", key=SECRET)
            logger.set_correlation_id("ada+x@example.com")
            logger.info("handled")
    finally:
        logger.remove_keys(["erasure_request_id", "who", "key"])
        logger.set_correlation_id(None)
    text = stream.getvalue()
    assert "ada+x@example.com" not in text and SECRET not in text and "0412345678" not in text
    record = json.loads(text)
    assert record["who"] == record["correlation_id"] == "[email]"
    assert record["erasure_request_id"] == "[phone]" and record["key"] == "[secret]"


@contextlib.contextmanager
def handler_on(name: str) -> Iterator[io.StringIO]:
    """What a plain handler on logger `name` (`""`: the root, as Lambda's runtime puts its
    own there; a library's, as `boto3.set_stream_logger` does) writes meanwhile, once the
    logging set-up has run."""
    target = logging.getLogger(name)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    target.addHandler(handler)
    try:
        configure_logging()
        yield stream
    finally:
        target.removeHandler(handler)


@pytest.mark.parametrize("holder", ["", "boto3"], ids=["the-runtimes-root", "a-librarys-own"])
def test_a_handler_added_before_the_set_up_writes_redacted_lines(holder):
    register_secret(SECRET)
    with handler_on(holder) as stream:
        logging.getLogger("boto3.resources").warning("key %s for ada+x@example.com", SECRET)
        logging.getLogger("a_plain_module").warning("to 0412 987 654")
    text = stream.getvalue()
    assert "key [secret] for [email]" in text
    assert SECRET not in text and "ada+x" not in text and "987 654" not in text


def test_an_exception_leaves_the_record_only_as_redacted_text():
    # A formatter that builds its text from exc_info (Lambda's JSON one writes errorMessage and
    # stackTrace from it) would print the original message: the filter takes exc_info away.
    register_secret(SECRET)
    try:
        raise ValueError(f"bad key {SECRET} for ada+x@example.com")
    except ValueError:
        info = sys.exc_info()
    record = logging.LogRecord("botocore.endpoint", logging.ERROR, __file__, 1, "failed", (), info)
    assert logs.REDACTING_FILTER.filter(record)
    assert record.exc_info is None
    assert "[secret]" in record.exc_text and "[email]" in record.exc_text
    assert SECRET not in repr(vars(record)) and "ada+x" not in repr(vars(record))
    assert "[secret]" in logging.Formatter().format(record)


def test_relayed_exception_text_and_stack_text_are_redacted():
    # A QueueHandler relays a record with its exception already text, and no exc_info.
    register_secret(SECRET)
    record = logging.LogRecord("botocore.endpoint", logging.ERROR, __file__, 1, "failed", (), None)
    record.exc_text = f"ValueError: bad key {SECRET}"
    record.stack_info = "Stack (most recent call last): to ada+x@example.com"
    assert logs.REDACTING_FILTER.filter(record)
    assert record.exc_text == "ValueError: bad key [secret]"
    assert record.stack_info == "Stack (most recent call last): to [email]"


def test_emails_and_phones_used_as_keys_are_redacted():
    logger = function_logger("tests-logs")
    with written_by(logger) as stream:
        logger.info("counts", extra={"by_email": {"ada+x@example.com": 2}})
    assert json.loads(stream.getvalue())["by_email"] == {"[email]": 2}
    assert logs.redact_value({"0412 987 654": 1}) == {"[phone]": 1}
