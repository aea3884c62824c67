"""scripts/erasure.py: local mode against the emulator and moto; remote mode signs with SigV4."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest

from tests.integration.cleanup.tables import create_table
from tests.integration.erasure import stack
from tests.integration.erasure.stack import PERSONAL, personal_values, whole_values_in

erasure_stack = stack.erasure_stack  # the fixture

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "erasure.py"


def load_cli():
    spec = importlib.util.spec_from_file_location("erasure_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cli():
    return load_cli()


def test_request_then_status_in_local_mode(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()

    code = cli.main(
        ["request", "--contact-id", contact_id, "--reason", "GDPR art. 17", "--request-id", "c-1"]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "Request c-1: completed (erased)" in out
    assert (
        f"Contact {contact_id} in main-clinic: scrubbed and archived, verified by reading it back; "
        "fields blanked: title, first_name"
    ) in out
    assert "Cliniko keeps an archived record" in out
    assert "deleted" not in out.lower()
    assert whole_values_in(out, personal_values(PERSONAL)) == []
    assert erasure_stack.contact(contact_id)["archived_at"]

    assert cli.main(["status", "c-1"]) == 0
    assert "Request c-1: completed (erased)" in capsys.readouterr().out
    received = [i for i in erasure_stack.audit_items() if i["sk"] == "000#received"]
    assert received[0]["caller"].startswith("arn:aws:")  # the local AWS identity


def test_a_contact_left_unfinished_is_not_said_to_be_blanked(
    erasure_stack, cli, capsys, monkeypatch, tmp_path
):
    # A key whose user may read but not write: Cliniko refuses the scrub (403).
    contact_id = erasure_stack.seed()
    key = f"MS0xreadonly{secrets.token_hex(8)}-au1"
    erasure_stack.cliniko.control.add_key(key, read_only=True)
    boto3.client("secretsmanager").create_secret(Name="tests/cliniko/read-only", SecretString=key)
    accounts = stack.write_accounts(tmp_path / "a.yaml", {"ro": "tests/cliniko/read-only"})
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(accounts))
    args = ["--cliniko-key-secret", "tests/cliniko/read-only", "request", "--contact-id"]
    cli.main([*args, contact_id, "--reason", "t", "--request-id", "ro-1"])
    out = capsys.readouterr().out
    assert f"Contact {contact_id} in ro: NOT finished; fields to blank: title, first_name" in out
    assert "Cliniko account ro: Cliniko refused the request (403)" in out
    assert "fields blanked" not in out
    assert erasure_stack.contact(contact_id)["first_name"] == PERSONAL["first_name"]


def test_dry_run_several_matches_and_json_output(erasure_stack, cli, capsys):
    ids = sorted([erasure_stack.seed(), erasure_stack.seed()])
    before = len(erasure_stack.log())

    code = cli.main(["request", "--email", PERSONAL["email"], "--reason", "ticket 7", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 3 and "Matching contact ids" in out
    assert all(contact_id in out for contact_id in ids)
    (hint,) = [line for line in out.splitlines() if "--all-matches" in line]
    request_id = hint.rsplit("--request-id ", 1)[1].rstrip(".")
    again = ["request", "--email", PERSONAL["email"], "--reason", "ticket 7", "--dry-run"]
    code = cli.main([*again, "--all-matches", "--request-id", request_id])
    out = capsys.readouterr().out
    assert code == 0 and "completed (dry_run)" in out, out

    code = cli.main(
        [
            "--json",
            "request",
            "--email",
            PERSONAL["email"],
            "--reason",
            "ticket 7",
            "--dry-run",
            "--all-matches",
        ]
    )
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["result"] == "dry_run"
    assert sorted(body["contact_ids"]) == ids
    assert not [e for e in erasure_stack.log()[before:] if e["method"] != "GET"]
    # In words, what the real run would blank, contact by contact.
    args = ["request", "--email", PERSONAL["email"], "--reason", "t", "--dry-run", "--all-matches"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert all(
        f"Contact {contact_id} in main-clinic: would be scrubbed and archived; fields that "
        "would be blanked: "
        "title, first_name" in out
        for contact_id in ids
    )


def test_the_script_runs_as_a_program(erasure_stack):
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [
            sys.executable,
            str(SCRIPT),
            "--caller",
            "arn:aws:iam::123456789012:user/cli",
            "request",
            "--email",
            "nobody@example.com",
            "--reason",
            "ticket 8",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **erasure_stack.env},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "completed (no_record_found)" in result.stdout
    assert "No record was found" in result.stdout


def test_missing_settings_and_targets_are_clear_errors(cli, capsys, monkeypatch):
    for name in ("AUDIT_TABLE", "PEPPER_SECRET_NAME", "CLINIKO_API_KEY_SECRET_NAME"):
        monkeypatch.delenv(name, raising=False)
    fresh = load_cli()  # defaults are read from the environment when the parser is built
    with pytest.raises(SystemExit) as caught:
        fresh.main(["status", "x"])
    assert "--audit-table" in str(caught.value)
    with pytest.raises(SystemExit) as caught:
        cli.main(["request", "--reason", "x"])
    assert caught.value.code == 2


class _Recorder(BaseHTTPRequestHandler):
    """Records each request and answers every one alike."""

    seen: list[dict] = []  # noqa: RUF012 (one server per test)
    status = 200
    payload = json.dumps(
        {
            "request_id": "remote-1",
            "status": "completed",
            "result": "no_record_found",
            "dry_run": False,
            "contacts": [],
            "contact_ids": [],
            "message": "No record was found.",
        }
    ).encode()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        type(self).seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


def test_remote_mode_signs_requests_with_sigv4(cli, capsys):
    _Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = cli.main(
            [
                "--api-url",
                url,
                "--region",
                "eu-west-1",
                "request",
                "--contact-id",
                "42",
                "--reason",
                "GDPR",
                "--request-id",
                "remote-1",
            ]
        )
        assert code == 0
        assert cli.main(["--api-url", url, "--region", "eu-west-1", "status", "remote-1"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    post, get = _Recorder.seen
    assert post["method"] == "POST" and post["path"] == "/erasure-requests"
    assert json.loads(post["body"])["contact_id"] == "42"
    assert get["method"] == "GET" and get["path"] == "/erasure-requests/remote-1"
    for seen in (post, get):
        auth = seen["headers"]["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/eu-west-1/execute-api/aws4_request" in auth
        assert "x-amz-date" in {h.lower() for h in seen["headers"]}
    assert "No record was found." in capsys.readouterr().out


def test_an_unreachable_api_is_one_clear_line(cli, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(
        ["--api-url", f"http://127.0.0.1:{port}", "--region", "eu-west-1", "status", "x"]
    )
    assert code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("erasure.py: ConnectError")
    # Named (README "Operating"): the error alone says "Connection refused", not to what.
    assert line.endswith(f"(http://127.0.0.1:{port})")


def test_a_silent_api_is_one_clear_line_once_its_wait_is_over(cli, capsys, monkeypatch):
    # Takes the connection and never answers: a stalled proxy, a host that is no API Gateway.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setattr(cli, "API_ANSWER_SECONDS", 0.5)  # 35 s as shipped
        remote = ["--api-url", f"http://127.0.0.1:{port}", "--region", "eu-west-1"]
        for command in (["status", "r-1"], ["request", "--contact-id", "42", "--reason", "x"]):
            started = time.monotonic()
            assert cli.main([*remote, *command]) == 1
            assert time.monotonic() - started < 5
            (line,) = capsys.readouterr().err.splitlines()
            assert line.startswith("erasure.py: ReadTimeout")
            assert line.endswith(f"(http://127.0.0.1:{port})")
            if command[0] == "request":
                # The id it went under, made up here: the one way to ask what became of it.
                (made_up,) = re.findall(r"request (cli-[0-9a-f-]{36}):", line)
                assert f"`status {made_up}`" in line and f"`--request-id {made_up}`" in line
            else:
                assert "--request-id" not in line


def test_a_request_sent_unanswered_names_the_request_id_it_was_given(cli, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = ["--api-url", f"http://127.0.0.1:{port}", "--region", "eu-west-1"]
    command = ["request", "--email", "a@example.com", "--reason", "x", "--request-id", "r-7"]
    assert cli.main([*remote, *command]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("erasure.py: ConnectError")
    assert "request r-7: `status r-7` tells where it got to, `--request-id r-7`" in line
    assert "a@example.com" not in line
    assert line.endswith(f"(http://127.0.0.1:{port})")


def test_the_remote_wait_ends_soon_after_api_gateway_has_answered(cli):
    # API Gateway ends an HTTP API integration at 30 s and answers then (503), the function
    # itself stops at 29 s: waiting much past 30 s is waiting on something that is no API.
    from local_run.template import load

    template = load(Path(__file__).resolve().parents[2] / "template.yaml")
    function_timeout = template["Resources"]["ErasureApiFunction"]["Properties"]["Timeout"]
    assert function_timeout < 30
    assert 30 < cli.API_ANSWER_SECONDS <= 40
    assert cli.API_CONNECT_SECONDS <= 5


class _NoSuchRoute(_Recorder):
    """API Gateway's answer on a path it has no route for (a stage or path mistyped)."""

    seen: list[dict] = []  # noqa: RUF012 (one server per test)
    status = 404
    payload = b'{"message":"Not Found"}'


def test_an_api_url_with_no_erasure_api_behind_it_is_not_an_unknown_request(cli, capsys):
    server = HTTPServer(("127.0.0.1", 0), _NoSuchRoute)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/prod"
    remote = ["--api-url", url, "--region", "eu-west-1"]
    try:
        for command in (["status", "r-1"], ["request", "--contact-id", "42", "--reason", "x"]):
            with pytest.raises(SystemExit) as caught:
                cli.main([*remote, *command])
            assert str(caught.value) == (
                f"erasure.py: no erasure API at {url} (HTTP 404 Not Found): --api-url is the "
                "stack's ApiUrl output"
            )
    finally:
        server.shutdown()
        server.server_close()
    assert "Refused" not in capsys.readouterr().out


def test_verify_of_an_empty_trail_says_so_and_claims_nothing(erasure_stack, cli, capsys):
    assert cli.main(["verify", "--all"]) == 0
    assert capsys.readouterr().out.startswith("0 requests in the audit trail")
    assert cli.main(["--json", "verify", "--all"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["requests"] == 0 and body["intact"] is None


def test_verify_of_a_table_that_is_not_the_trail_is_one_line(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    assert cli.main(["request", "--contact-id", contact_id, "--reason", "t", "--dry-run"]) == 0
    capsys.readouterr()
    wrong = erasure_stack.env["IDEMPOTENCY_TABLE"]  # it has an item now, keyed otherwise
    assert cli.main(["--audit-table", wrong, "verify", "--all"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"erasure.py: --audit-table (AUDIT_TABLE): table {wrong} is not an erasure audit table "
        "(keyed id): take it from the stack's ErasureAuditTableName output"
    ]
    # One keyed otherwise and empty read "0 requests in the audit trail", exit 0.
    feed = create_table("ChangeFeedTable", "erasure-change-feed")
    assert cli.main(["--audit-table", feed, "verify", "--all"]) == 1
    assert f"table {feed} is not an erasure audit table (keyed pk)" in capsys.readouterr().err


def table_items(*names: str) -> list[list[dict]]:
    dynamodb = boto3.client("dynamodb")
    return [dynamodb.scan(TableName=name)["Items"] for name in names]


# Another of the stack's tables for each table setting. Before: IDEMPOTENCY_TABLE of the
# submission store (both keyed `id`) erased, writing Powertools' records into the store;
# SUBMISSION_TABLE of the idempotency table scrubbed the contact in Cliniko, wrote tombstones
# into the idempotency table, then failed (the store's index missing) and left the request
# open; of the ledger or the audit table, scrubbed the contact and then failed.
WRONG_TABLES = [
    ("--idempotency-table", "IDEMPOTENCY_TABLE", "submission_table", "the idempotency table"),
    ("--idempotency-table", "IDEMPOTENCY_TABLE", "table_name", "the idempotency table"),
    ("--submission-table", "SUBMISSION_TABLE", "idempotency_table", "the submission store"),
    ("--submission-table", "SUBMISSION_TABLE", "ledger", "the submission store"),
    ("--submission-table", "SUBMISSION_TABLE", "table_name", "the submission store"),
    ("--audit-table", "AUDIT_TABLE", "submission_table", "an erasure audit table"),
    ("--audit-table", "AUDIT_TABLE", "ledger", "an erasure audit table"),
]


@pytest.mark.parametrize(("flag", "variable", "given", "kind"), WRONG_TABLES)
def test_a_table_of_another_kind_is_one_line_before_anything_changes(
    erasure_stack, cli, capsys, monkeypatch, flag, variable, given, kind
):
    ledger = create_table("LedgerTable", "erasure-ledger")
    contact_id = erasure_stack.seed()
    assert cli.main(["request", "--contact-id", contact_id, "--reason", "t", "--dry-run"]) == 0
    capsys.readouterr()
    wrong = ledger if given == "ledger" else getattr(erasure_stack, given)
    monkeypatch.setenv(variable, wrong)
    tables = (erasure_stack.table_name, erasure_stack.idempotency_table)
    before = table_items(*tables, erasure_stack.submission_table, ledger)
    requests = len(erasure_stack.log())

    request = ["request", "--contact-id", contact_id, "--reason", "t", "--request-id", "w-1"]
    for argv in (request, ["--json", *request], [flag, wrong, *request]):
        assert cli.main(argv) == 1
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith(f"erasure.py: {flag} ({variable}): table {wrong} is not {kind} (")
    assert table_items(*tables, erasure_stack.submission_table, ledger) == before
    assert len(erasure_stack.log()) == requests  # Cliniko was not asked anything
    assert not erasure_stack.contact(contact_id)["archived_at"]


def test_an_idempotency_table_that_is_not_there_is_named(erasure_stack, cli, capsys):
    # DynamoDB's "Requested resource not found" names no table: the line does. (Found by the
    # check of each table's kind, before Powertools, which wraps the same answer, is reached.)
    contact_id = erasure_stack.seed()
    request = ["request", "--contact-id", contact_id, "--reason", "t", "--dry-run"]
    code = cli.main(["--idempotency-table", "idem-typo", *request])
    assert code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("erasure.py: ResourceNotFoundException: ")
    assert line.endswith(" (table idem-typo)")


def test_verify_finds_a_trail_cut_short(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    assert cli.main(["--json", "request", "--contact-id", contact_id, "--reason", "t"]) == 0
    receipt = json.loads(capsys.readouterr().out)["receipt"]
    request_id, head = receipt["request_id"], receipt["chain_head"]
    assert cli.main(["verify", request_id, "--receipt-head", head]) == 0
    capsys.readouterr()
    # The last record deleted: its chain shows no gap, but its claimed place still counts it.
    table = boto3.client("dynamodb")
    key = {"request_id": {"S": request_id}}
    table.delete_item(TableName=erasure_stack.table_name, Key={**key, "sk": {"S": "999#outcome"}})
    assert cli.main(["verify", request_id]) == 1
    assert f"record #{receipt['records']} is missing" in capsys.readouterr().out
    # Every record deleted, the claims kept: reported, not "no such request".
    for item in erasure_stack.audit_items():
        table.delete_item(TableName=erasure_stack.table_name, Key={**key, "sk": {"S": item["sk"]}})
    assert cli.main(["verify", "--all"]) == 1
    assert "NOT INTACT" in capsys.readouterr().out
    # The claims deleted too: the receipt's head the person holds still tells.
    for item in erasure_stack.audit_items(links=True):
        table.delete_item(TableName=erasure_stack.table_name, Key={**key, "sk": {"S": item["sk"]}})
    assert cli.main(["verify", request_id]) == 3  # no such request, as far as the table says
    capsys.readouterr()
    assert cli.main(["verify", request_id, "--receipt-head", head]) == 1
    assert "the receipt's chain head is in no record" in capsys.readouterr().out
    with pytest.raises(SystemExit) as caught:
        cli.main(["verify", "--all", "--receipt-head", head])
    assert caught.value.code == 2


def test_a_receipt_head_mistyped_is_a_bad_argument_not_a_tampered_trail(erasure_stack, cli, capsys):
    # A head cut short or mistyped when pasted from the receipt claimed "records were removed
    # or rewritten" (exit 1): the operator's slip read as tampering with the trail.
    contact_id = erasure_stack.seed()
    assert cli.main(["--json", "request", "--contact-id", contact_id, "--reason", "t"]) == 0
    receipt = json.loads(capsys.readouterr().out)["receipt"]
    request_id, head = receipt["request_id"], receipt["chain_head"]
    for mistyped in (head[:12], head + "0", head[:-1] + "g", f" {head}x"):
        with pytest.raises(SystemExit) as caught:
            cli.main(["verify", request_id, "--receipt-head", mistyped])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "a receipt's chain head is 64 hexadecimal digits" in err
        assert "NOT INTACT" not in err
    # The same head in capitals, or with the spaces a copy picks up, is the receipt's.
    assert cli.main(["verify", request_id, "--receipt-head", f" {head.upper()} "]) == 0
    assert "audit trail intact" in capsys.readouterr().out


def test_argument_errors_exit_2(erasure_stack, cli, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["--api-url", "example.com", "--region", "eu-west-1", "status", "x"])
    assert caught.value.code == 2
    assert "--api-url needs http(s):// and a host" in capsys.readouterr().err
    # A malformed email is refused before anything is done: an argument error, as documented.
    assert cli.main(["request", "--email", "not-an-address", "--reason", "t"]) == 2
    assert "invalid request" in capsys.readouterr().out
    assert "2 bad arguments" in cli.__doc__ and "malformed email" in cli.__doc__
    # An empty request id is refused, not swapped for a new one (a retry must be a retry);
    # as is one the API could not take, in either mode (a path, a byte a terminal typed).
    for given in ("", "x/../y", "r-\udcff"):
        for command in (["request", "--contact-id", "1", "--reason", "t", "--request-id"], []):
            with pytest.raises(SystemExit) as caught:
                cli.main([*command, given] if command else ["status", given])
            assert caught.value.code == 2
            assert "a request id is 1-128 letters" in capsys.readouterr().err
    remote = ["--region", "eu-west-1", "--api-url"]
    # "https://" (a host variable left unset) has no host to send to.
    for url in ("http://[::1", "https://x.example:99999", "https://x.exampl\udcff.com", "https://"):
        with pytest.raises(SystemExit) as caught:
            cli.main([*remote, url, "status", "x"])
        assert caught.value.code == 2
        assert "--api-url needs http(s):// and a host" in capsys.readouterr().err
    # A byte a non-UTF-8 terminal typed (Python's arguments carry it as a lone surrogate).
    assert cli.main(["request", "--contact-id", "1", "--reason", "ticket Jos\udce9"]) == 2
    assert "reason" in capsys.readouterr().out
    assert cli.main(["extend", "r-none", "--reason", "Jos\udce9"]) == 2
    assert "reason" in capsys.readouterr().out
    # Past int64's maximum no Cliniko id can be: said with the bound, not a traceback or a
    # contact not found (a 20-digit id, a 19-digit one past 9223372036854775807).
    for contact_id in (str(2**63), "9" * 19, "1" * 20):
        assert cli.main(["request", "--contact-id", contact_id, "--reason", "t"]) == 2
        assert "contact_id: must be a Cliniko contact id (digits, 1 to 9223372036854775807)" in (
            capsys.readouterr().out
        )
    assert erasure_stack.audit_items() == []
    # Who asks is one token: a name typed here would stay in the audit trail for years.
    with pytest.raises(SystemExit) as caught:
        cli.main(["--caller", "Grizelda Thistlewaite <g@example.com>", "status", "x"])
    assert caught.value.code == 2
    assert "IAM ARN or a user id" in capsys.readouterr().err


def test_a_reader_that_stops_reading_gets_the_verdict_quietly(erasure_stack, cli):
    contact_id = erasure_stack.seed()
    assert cli.main(["request", "--contact-id", contact_id, "--reason", "t"]) == 0
    verify = subprocess.Popen(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, str(SCRIPT), "verify", "--all"],
        env={**os.environ, **erasure_stack.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    verify.stdout.close()  # as `| head -1` does once it has its line
    err = verify.stderr.read()
    verify.stderr.close()
    assert verify.wait(timeout=120) == 0  # intact, whoever stopped reading
    assert err == ""
