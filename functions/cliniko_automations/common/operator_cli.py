"""How the operators' command-line tools (scripts/erasure.py, scripts/cleanup.py,
scripts/dead_letters.py, the webhook tools, the configuration files' `--check`) end when
something goes wrong that is not a bug of theirs.

A mistake of the environment (no region or credentials, an endpoint out of reach, a queue or
table that is not there or of another kind, a bad setting or configuration file, a secret that
cannot be read) is one line on stderr naming it, exit 1: a person at a terminal needs the
cause, not a traceback. Anything else is a bug and keeps its traceback. Output cut short by its
reader (`| head -1`) ends quietly; output that cannot be written (a full disk) is one line and
exit 1; Ctrl-C ends with one line and 130, as a shell reports SIGINT.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import argparse

EXIT_FAILED = 1
# What a shell reports for a command killed by SIGINT, or by SIGPIPE (128 + the signal).
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141

# A write to stdout that can never succeed: a full disk or quota (`> /dev/full`, `> out.txt`
# on a full volume), a file grown past its limit, a terminal that went away (EIO).
_OUTPUT_LOST = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}

# What an HTTP client quotes of a header it refuses (http.client's "Invalid header value
# b'...'", h11's "Illegal header value b'...'"): a line end in a credential (an env file with
# CRLF line ends, sourced) puts the session token, or the Authorization, there. Withheld.
_HEADER_VALUE = re.compile(r"(header value) b?(['\"]).*\2", re.DOTALL)
HEADER_WITHHELD = (
    r"\1 withheld: a credential (AWS_SESSION_TOKEN, AWS_ACCESS_KEY_ID, ...) or the region holds "
    "a line end or another character an HTTP header cannot carry"
)


def environment_failure(error: BaseException) -> bool:
    """A failure of the environment (network, AWS, secrets, settings, configuration files)
    rather than of the tool's own code."""
    import botocore.exceptions
    import httpx
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyPersistenceLayerError,
    )

    from cliniko_automations.cliniko.errors import ClinikoError
    from cliniko_automations.common.config_file import ConfigError
    from cliniko_automations.common.secrets import SecretUnavailable
    from cliniko_automations.common.settings import SettingsError

    if isinstance(error, ValueError) and _raised_in(error, "botocore."):
        return True  # botocore's own check of a setting: AWS_ENDPOINT_URL=localhost:4566
    return isinstance(
        error,
        httpx.HTTPError
        | botocore.exceptions.BotoCoreError
        | botocore.exceptions.ClientError  # QueueDoesNotExist, ResourceNotFoundException too
        | ClinikoError
        | IdempotencyPersistenceLayerError
        | SecretUnavailable
        | SettingsError
        | ConfigError,
    )


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether `error` was raised within a call into `package` (a frame of its code on the
    traceback: botocore parses an endpoint with urllib, whose frame is the last)."""
    frame = error.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__")).startswith(package):
            return True
        frame = frame.tb_next
    return False


def stdout_closed() -> None:
    """The reader of stdout went away (`| head`): point stdout at /dev/null, so that the
    interpreter's own flush at exit does not raise BrokenPipeError again (the Python docs'
    recipe, "Note on SIGPIPE")."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def interrupted_while_starting(prog: str) -> None:
    """Ctrl-C from here until `run_tool` begins ends the tool at once, with one line and
    EXIT_INTERRUPTED: it falls while the tool imports its modules, where there is nothing to
    undo yet, and a KeyboardInterrupt there would be a traceback from deep in importlib.
    Called first thing by each tool's `__main__` (this module imports nothing heavy for it)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # SIGINT ignored (a background job) or taken over: theirs to keep
    signal.signal(signal.SIGINT, _StopWhileStarting(prog))


class _StopWhileStarting:
    """The SIGINT handler of `interrupted_while_starting` (a class, so `run_tool` knows it)."""

    def __init__(self, prog: str) -> None:
        self.line = f"{prog}: interrupted\n".encode(errors="backslashreplace")

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):  # stderr closed: the status says it
            os.write(2, self.line)
        os._exit(EXIT_INTERRUPTED)


# How long an operator waits on AWS for one call, at most: 5 s to connect, 10 s for an answer
# (the tools' calls answer in tens of ms), three attempts. botocore's defaults are 60 s and
# 60 s, five attempts: an endpoint that takes the connection and never answers (a stalled
# proxy or port-forward, a wrong AWS_ENDPOINT_URL) held a tool silent for many minutes.
AWS_CONNECT_SECONDS = 5
AWS_ANSWER_SECONDS = 10
AWS_ATTEMPTS = 3


@contextlib.contextmanager
def bounded_aws_waits() -> Iterator[None]:
    """Within it, every AWS client this process makes (from boto3's default session, or the
    shared one of `common.aws`) waits as above; a client's own configuration (FAIL_FAST)
    still wins. What it changed is put back after (a test calling a tool's `main`).

    Through botocore sessions it holds, with botocore's public `set_default_client_config`:
    boto3 offers no public way to the one under a boto3 session it made. So boto3's default
    session is made here, on one of them, and taken away after; a default session someone
    else made first (a test's, carrying its own event hooks) is theirs and left as it is."""
    import boto3
    import botocore.session
    from botocore.config import Config

    from cliniko_automations.common import aws

    bounded = Config(
        connect_timeout=AWS_CONNECT_SECONDS,
        read_timeout=AWS_ANSWER_SECONDS,
        # Attempts, the first one included (botocore's `max_attempts` would add one).
        retries={"mode": "standard", "total_max_attempts": AWS_ATTEMPTS},
    )
    shared = aws.botocore_session()
    before = shared.get_default_client_config()
    shared.set_default_client_config(bounded)
    made_default = boto3.DEFAULT_SESSION is None
    if made_default:
        default = botocore.session.get_session()
        default.set_default_client_config(bounded)
        boto3.setup_default_session(botocore_session=default)
    try:
        yield
    finally:
        shared.set_default_client_config(before)
        if made_default:
            boto3.DEFAULT_SESSION = None


def parsed_arguments(
    prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """`parser.parse_args(argv)`, its `--help` (or `--version`) ending as `run_tool` ends a
    command whose output cannot be written: argparse drops the error of its write and exits 0,
    so `--help > /dev/full` said nothing (exit 120 and Python's "Exception ignored" lines when
    stdout is buffered, as it is unless PYTHONUNBUFFERED is set)."""
    watched = _WatchedOutput(sys.stdout) if sys.stdout is not None else None
    try:
        # argparse writes to the sys.stdout of the moment (print_help's file=None).
        with contextlib.redirect_stdout(watched):
            return parser.parse_args(argv)
    except SystemExit as done:
        if done.code not in (0, None):
            raise  # a usage error: argparse's line on stderr and 2
        try:
            if watched is not None:  # else closed (`>&-`): argparse wrote to stderr
                if watched.error is not None:
                    raise watched.error from None
                watched.flush()
        except BrokenPipeError:
            stdout_closed()
            raise SystemExit(EXIT_PIPE_CLOSED) from None
        except OSError as error:
            if error.errno not in _OUTPUT_LOST:
                raise
            raise SystemExit(_output_lost(prog, error)) from None
        raise


class _WatchedOutput:
    """A stream passing writes on and keeping the first that failed (argparse drops it)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        self.stream.flush()


def _output_lost(prog: str, error: OSError) -> int:
    # What stdout still buffers would fail again at exit, printing a traceback there.
    stdout_closed()
    print(f"{prog}: its output could not be written: {error.strerror}", file=sys.stderr)
    return EXIT_FAILED


# Whether a `run_tool` is under way: a tool whose `main` another tool calls (scripts/build.py
# runs each configuration file's check) leaves how the process ends to the outer one.
_running = False


def run_tool(prog: str, command: Callable[[], int], *, aws_calls: bool = True) -> int:
    """`command()`'s exit status; an environment failure is one line and EXIT_FAILED.
    `aws_calls`: the command may call AWS, whose waits are bounded (`bounded_aws_waits`).
    Within another `run_tool`, only `command()`: a closed pipe or Ctrl-C ends the outer tool
    too, which a status of the inner one would have read as its own verdict ("invalid")."""
    global _running
    if _running:
        return command()
    _running = True
    try:
        return _run_outermost(prog, command, aws_calls)
    finally:
        _running = False


class Ended(KeyboardInterrupt):
    """SIGTERM (`timeout`, `kill`, a service manager) or SIGHUP (the terminal closed), raised
    where the tool is, as Ctrl-C is, so that what it began is undone (`finally`): killed
    outright, a listing left every dead letter it had received hidden for HIDE_SECONDS. A
    KeyboardInterrupt, so that whatever undoes a Ctrl-C (`except KeyboardInterrupt`: the local
    cleanup loop releasing its run) undoes it too; only its last line and status differ."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_ended(signum: int, frame: FrameType | None) -> None:
    raise Ended(signum)


@contextlib.contextmanager
def _ending_signals_raised() -> Iterator[None]:
    """Within it, SIGTERM and SIGHUP raise `Ended`, where nobody else handles them."""
    taken = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _raise_ended)
                taken.append(signum)
        except ValueError:  # not the main thread: signals are not ours to handle
            break
    try:
        yield
    finally:
        for signum in taken:
            signal.signal(signum, signal.SIG_DFL)


def _run_outermost(prog: str, command: Callable[[], int], aws_calls: bool) -> int:
    from cliniko_automations.common.printable import printable
    from cliniko_automations.common.stack_resources import WrongResource

    if sys.stderr is None:
        # Started with stderr closed (`2>&-`): print(file=None) writes to stdout, which mixed
        # the tool's error lines into its output (a --json listing). Dropped; the status says.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's, to its end)
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): refused before anything is done, as nobody could
        # read what was done (an erasure's receipt); it was an AttributeError traceback.
        print(f"{prog}: stdout is closed: send it to a file or to /dev/null", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(signal.getsignal(signal.SIGINT), _StopWhileStarting):
        # From here Ctrl-C is a KeyboardInterrupt: what the command began is undone (`finally`).
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for stream in (sys.stdout, sys.stderr):
        # Text this system did not write (a dead letter's) may hold a lone surrogate, which
        # UTF-8 cannot encode: shown escaped, not a UnicodeEncodeError halfway through a list.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        # Set but empty (`export AWS_DEFAULT_REGION=$REGION` with REGION unset): botocore takes
        # it for a region and builds https://sqs..amazonaws.com; unset, it says none is given.
        if os.environ.get(name) == "":
            del os.environ[name]
    try:
        with (
            _ending_signals_raised(),
            bounded_aws_waits() if aws_calls else contextlib.nullcontext(),
        ):
            code = command()
        sys.stdout.flush()  # here, not at exit, where a closed pipe's error is printed
        return code
    except BrokenPipeError:
        stdout_closed()
        return EXIT_PIPE_CLOSED
    except Ended as ended:  # before KeyboardInterrupt, which it is
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{prog}: ended by {signal.Signals(ended.signum).name}", file=sys.stderr)
        return 128 + ended.signum  # as a shell reports a command that signal killed
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WrongResource as error:  # its own words name the setting and the table or queue
        print(f"{prog}: {printable(error)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:
        # Not an `except OSError` of its own: botocore's timeouts are OSErrors too.
        if isinstance(error, OSError) and error.errno in _OUTPUT_LOST:
            return _output_lost(prog, error)
        if not environment_failure(error):
            raise
        # Escaped: it quotes what came from outside (a file's path or contents, an endpoint's
        # answer), where a control character would act on the terminal or break the line.
        said = printable(_HEADER_VALUE.sub(HEADER_WITHHELD, str(error)))
        print(f"{prog}: {type(error).__name__}: {said}{_resource_of(error)}", file=sys.stderr)
        return EXIT_FAILED


# What AWS's answer leaves out: which of the tool's queues or tables it spoke of ("The
# specified queue does not exist", "Requested resource not found"). Only these parameters of
# the failed call are shown: the others (a key, a message body) may hold what is not ours to
# print.
_NAMED_PARAMETERS = {"QueueUrl": "queue", "TableName": "table"}


def _resource_of(error: BaseException | None) -> str:
    """What the failure was about, where its own text does not say: ` (queue URL)` or
    ` (table NAME)` for a resource AWS answered about (a ClientError, also one a library
    wrapped in its own: Powertools' idempotency layer), as the tool passed it to botocore (its
    `_make_api_call` frame); ` (http://HOST:PORT)` for a server httpx did not reach ("Connection
    refused"): its origin only, as a path or query may carry a person's email. Else nothing."""
    import httpx
    from botocore.exceptions import ClientError

    from cliniko_automations.common.printable import printable

    while error is not None:
        if isinstance(error, httpx.RequestError):
            try:
                url = error.request.url
            except RuntimeError:  # an error raised without its request
                return ""
            port = f":{url.port}" if url.port is not None else ""
            return f" ({printable(url.scheme)}://{printable(url.host)}{port})"
        frame = error.__traceback__ if isinstance(error, ClientError) else None
        while frame is not None:
            code = frame.tb_frame.f_code
            if code.co_name == "_make_api_call" and str(
                frame.tb_frame.f_globals.get("__name__")
            ).startswith("botocore."):
                params = frame.tb_frame.f_locals.get("api_params")
                if isinstance(params, dict):
                    for parameter, kind in _NAMED_PARAMETERS.items():
                        if isinstance(params.get(parameter), str):
                            return f" ({kind} {printable(params[parameter])})"
                return ""
            frame = frame.tb_next
        error = error.__cause__ or error.__context__
    return ""
