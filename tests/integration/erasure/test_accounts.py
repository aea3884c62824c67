"""An erasure across the Cliniko accounts of the stack's cliniko_accounts.yaml (main-clinic and
north-clinic, stack.py), wired as the Lambda wires it (service.build_eraser)."""

from __future__ import annotations

import secrets
from typing import Any

import boto3
import jmespath
import pytest
from cliniko_automations.common import cliniko_accounts
from cliniko_automations.common.secrets import SecretUnavailable
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.errors import InvalidRequest, RequestIdConflict, SeveralMatches
from cliniko_automations.erasure.idempotency import IDENTITY
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.scrub import PLACEHOLDER_FIRST_NAME
from cliniko_automations.erasure.service import build_eraser
from cliniko_automations.erasure.settings import ErasureSettings
from cliniko_automations.erasure.trail import GENESIS_HASH, RECEIVED_SK, chained, matched_before
from cliniko_automations.erasure.workflow import Eraser, fingerprint, request_identity
from cliniko_emulator.app import injected_error

from tests.fixtures.emulator import before_each_answer
from tests.integration.erasure import stack
from tests.integration.erasure.stack import PEPPER, PERSONAL

erasure_stack = stack.erasure_stack  # the fixture

CALLER = "arn:aws:iam::123456789012:user/privacy-officer"
EMAIL = PERSONAL["email"].lower()


def eraser() -> Eraser:
    return build_eraser(ErasureSettings.from_env())


def ask(**values: Any) -> ErasureRequest:
    return ErasureRequest.parse({"reason": "GDPR art. 17", **values})


def test_an_email_is_searched_in_every_account_and_each_contact_erased_in_its_own(
    erasure_stack,
):
    main = erasure_stack.seed("main-clinic")
    north = erasure_stack.seed("north-clinic")
    erase = eraser()

    # One email in two clinics may be two people: confirmed first, as within one account.
    with pytest.raises(SeveralMatches) as several:
        erase.submit(ask(request_id="both", email=EMAIL), CALLER)
    assert several.value.accounts == {"main-clinic": [main], "north-clinic": [north]}
    assert "1 in main-clinic, 1 in north-clinic" in str(several.value)

    outcome = erase.submit(ask(request_id="both", email=EMAIL, erase_all_matches=True), CALLER)

    assert (outcome.status, outcome.result) == ("completed", "erased")
    assert outcome.accounts == {"main-clinic": [main], "north-clinic": [north]}
    assert [(c.account, c.contact_id, c.action) for c in outcome.contacts] == [
        ("main-clinic", main, "scrubbed_and_archived"),
        ("north-clinic", north, "scrubbed_and_archived"),
    ]
    for account, contact_id in (("main-clinic", main), ("north-clinic", north)):
        stored = erasure_stack.contact(contact_id, account)
        assert stored["archived_at"] and stored["first_name"] == PLACEHOLDER_FIRST_NAME
    sks = {i["sk"] for i in erasure_stack.audit_items() if i["request_id"] == "both"}
    assert {f"002#contact#main-clinic#{main}", f"002#contact#north-clinic#{north}"} <= sks
    # A repeat answers from the record, the accounts included.
    assert erase.status("both").accounts == outcome.accounts


def test_a_person_in_one_account_is_erased_there_and_no_record_names_every_account(
    erasure_stack,
):
    north = erasure_stack.seed("north-clinic")
    other = erasure_stack.seed("main-clinic", email="someone.else@example.org")
    erase = eraser()

    outcome = erase.submit(ask(request_id="north-only", email=EMAIL), CALLER)

    assert outcome.result == "erased"
    assert outcome.accounts == {"main-clinic": [], "north-clinic": [north]}
    assert erasure_stack.contact(north, "north-clinic")["archived_at"]
    assert not erasure_stack.contact(other, "main-clinic")["archived_at"]

    nobody = erase.submit(ask(request_id="nobody", email="nobody@example.org"), CALLER)
    assert nobody.result == "no_record_found"
    assert "in Cliniko accounts main-clinic, north-clinic" in nobody.message


def test_a_contact_id_is_the_default_account_s_unless_the_request_names_another(erasure_stack):
    main = erasure_stack.seed("main-clinic")
    north = erasure_stack.seed("north-clinic")
    erase = eraser()

    # The default account is the one whose key ClinikoApiKeySecretName names: main-clinic.
    # north-clinic's contact id there names nobody.
    missed = erase.submit(ask(request_id="north-by-default", contact_id=north), CALLER)
    assert missed.result == "no_record_found"
    assert missed.accounts == {"main-clinic": []}
    assert not erasure_stack.contact(north, "north-clinic")["archived_at"]

    named = erase.submit(
        ask(request_id="north-named", contact_id=north, account="north-clinic"), CALLER
    )
    assert named.result == "erased" and named.accounts == {"north-clinic": [north]}
    assert erasure_stack.contact(north, "north-clinic")["archived_at"]
    assert not erasure_stack.contact(main, "main-clinic")["archived_at"]


def test_an_account_the_deployment_does_not_have_is_refused_without_echoing_it(erasure_stack):
    with pytest.raises(InvalidRequest) as refused:
        eraser().submit(ask(request_id="r", email=EMAIL, account="Grizelda's clinic"), CALLER)
    assert refused.value.problems == {
        "account": "is not an account of this deployment (its accounts: main-clinic, north-clinic)"
    }
    assert erasure_stack.audit_items() == []


def test_a_contact_id_needs_an_account_when_there_is_no_default():
    accounts = ErasureAccounts(["main-clinic", "north-clinic"], lambda _name: None)
    with pytest.raises(InvalidRequest) as refused:
        accounts.scope(ask(request_id="r", contact_id="12"))
    assert "is required with contact_id" in refused.value.problems["account"]
    # An email needs none; the only account is every contact id's.
    assert accounts.scope(ask(request_id="r", email=EMAIL)) == ["main-clinic", "north-clinic"]
    only = ErasureAccounts(["main-clinic"], lambda _name: None)
    assert only.scope(ask(request_id="r", contact_id="12")) == ["main-clinic"]


def test_a_retry_finishes_each_half_done_contact_in_its_own_account(erasure_stack):
    # Both contacts scrubbed (their email blanked), neither archived: the retry finds each by
    # id in the account it was matched in, not by the email it no longer has.
    main = erasure_stack.seed("main-clinic")
    north = erasure_stack.seed("north-clinic")
    control = erasure_stack.cliniko.control
    request = ask(request_id="half", email=EMAIL, erase_all_matches=True)
    control.set_faults(fail_next=[503] * 40, methods=["POST"])
    try:
        failed = eraser().submit(request, CALLER)
    finally:
        control.clear_faults()
    assert failed.status == "failed"
    for account, contact_id in (("main-clinic", main), ("north-clinic", north)):
        stored = erasure_stack.contact(contact_id, account)
        assert stored["email"] in (None, "") and not stored["archived_at"]

    retried = eraser().submit(request, CALLER)

    assert (retried.status, retried.result) == ("completed", "erased")
    assert retried.accounts == {"main-clinic": [main], "north-clinic": [north]}
    assert erasure_stack.contact(main, "main-clinic")["archived_at"]
    assert erasure_stack.contact(north, "north-clinic")["archived_at"]


def test_a_refused_key_names_its_account(erasure_stack):
    contact_id = erasure_stack.seed("main-clinic")
    revoked = f"MS0xrevoked{secrets.token_hex(8)}-uk1"  # never registered: Cliniko answers 401
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.other_key_secret, SecretString=revoked
    )

    outcome = eraser().submit(ask(request_id="refused", email=EMAIL), CALLER)

    assert outcome.status == "failed"
    assert "Cliniko account north-clinic: Cliniko refused the API key on shard uk1" in (
        outcome.message
    )
    # Nothing changed anywhere: the lookup stops before the purge and the scrub.
    assert not erasure_stack.contact(contact_id, "main-clinic")["archived_at"]


@pytest.mark.parametrize("refused_at", ["lookup", "scrub"])
def test_a_key_rotated_within_the_cache_needs_no_fixing_and_the_retry_uses_it(
    erasure_stack, monkeypatch, refused_at
):
    # README "Secrets": the new key put in the secret, then the old one archived in Cliniko,
    # within the five minutes a warm erasure function keeps the old one (here from a dry run).
    contact_id = erasure_stack.seed("main-clinic")
    cliniko = erasure_stack.cliniko
    assert eraser().submit(ask(request_id="warm", email=EMAIL, dry_run=True), CALLER).status
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "new-au1"

    def rotate() -> None:
        cliniko.server.app.add_key(new_key)
        boto3.client("secretsmanager").put_secret_value(
            SecretId=erasure_stack.key_secret, SecretString=new_key
        )
        cliniko.server.app.revoke_key(cliniko.api_key)

    if refused_at == "lookup":
        rotate()
    else:
        rotated: list[str] = []

        def rotate_at_the_first_write(method: str, _body: bytes) -> None:
            if method != "GET" and not rotated:
                rotated.append(method)
                rotate()

        before_each_answer(cliniko.server, monkeypatch, rotate_at_the_first_write)

    outcome = eraser().submit(ask(request_id="rotated", email=EMAIL), CALLER)

    assert outcome.status == "failed"
    if refused_at == "lookup":
        assert "(cliniko_key_rotated searching Cliniko account main-clinic" in outcome.message
    else:
        assert [c.error for c in outcome.contacts] == ["cliniko_key_rotated"]
    assert "send it again with the same request id to retry" in outcome.message
    assert "refused" not in outcome.message and "will fail the same way" not in outcome.message
    retried = eraser().submit(ask(request_id="rotated", email=EMAIL), CALLER)
    assert (retried.status, retried.result) == ("completed", "erased")
    assert erasure_stack.contact(contact_id, "main-clinic")["archived_at"]


def test_a_key_without_the_permission_reads_its_secret_again_once_per_request(
    erasure_stack, monkeypatch
):
    # A Cliniko user who may not edit contacts (403 on every write): no rotation, and one
    # read past the cache tells that, however many contacts the key is refused for.
    for _ in range(5):
        erasure_stack.seed("main-clinic")
    erasure_stack.cliniko.server.app.add_key(erasure_stack.cliniko.api_key, read_only=True)
    rereads: list[str] = []
    real = cliniko_accounts.reread_secret

    def counted(name: str, **kwargs: Any) -> str:
        rereads.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(cliniko_accounts, "reread_secret", counted)

    outcome = eraser().submit(
        ask(request_id="ro", email=EMAIL, account="main-clinic", erase_all_matches=True), CALLER
    )

    assert outcome.status == "failed"
    assert [c.error for c in outcome.contacts] == ["cliniko_Forbidden"] * 5
    assert "lacks the permission" in outcome.message  # not taken for a rotation
    assert rereads == [erasure_stack.key_secret]


def test_a_key_refused_for_every_contact_is_told_to_the_operator_once_per_request(
    erasure_stack,
):
    # The API reports what it hears as one Misconfigured count (ErasureMisconfigurationAlarm):
    # once per account and request, not once per contact its user may not write.
    for _ in range(5):
        erasure_stack.seed("main-clinic")
    erasure_stack.cliniko.server.app.add_key(erasure_stack.cliniko.api_key, read_only=True)
    heard: list[tuple[str, str, str]] = []

    def key_refused(account: str, secret: str, error: Exception) -> None:
        heard.append((account, secret, type(error).__name__))

    outcome = build_eraser(ErasureSettings.from_env(), on_key_refused=key_refused).submit(
        ask(request_id="ro", email=EMAIL, account="main-clinic", erase_all_matches=True), CALLER
    )

    assert [c.error for c in outcome.contacts] == ["cliniko_Forbidden"] * 5
    assert heard == [("main-clinic", erasure_stack.key_secret, "Forbidden")]


def test_a_lookup_failing_in_one_account_names_that_account(erasure_stack, monkeypatch):
    main = erasure_stack.seed("main-clinic")
    erasure_stack.cliniko.allow_invalid_requests()
    real = erasure_stack.cliniko.server.app._answer

    def answer(method, *args):
        # north-clinic's shard answers 503 for as long as the test runs.
        return injected_error(503) if args[1] == "uk1" else real(method, *args)

    monkeypatch.setattr(erasure_stack.cliniko.server.app, "_answer", answer)
    erase = eraser()

    outcome = erase.submit(ask(request_id="one-down", email=EMAIL), CALLER)

    # Before, "did not finish (cliniko_ServerError)": no word of which clinic's Cliniko.
    assert outcome.status == "failed"
    assert "searching Cliniko account north-clinic; no contact was changed" in outcome.message
    assert erase.status("one-down").message == outcome.message
    assert erasure_stack.contact(main, "main-clinic")["archived_at"] is None


def test_an_account_whose_key_cannot_be_read_fails_the_call_before_anything_is_recorded(
    erasure_stack,
):
    boto3.client("secretsmanager").delete_secret(
        SecretId=erasure_stack.other_key_secret, ForceDeleteWithoutRecovery=True
    )
    erase = eraser()
    with pytest.raises(SecretUnavailable):
        erase.submit(ask(request_id="no-key", email=EMAIL), CALLER)
    assert erasure_stack.audit_items() == []
    # A request for the default account's contact needs no other key.
    contact_id = erasure_stack.seed("main-clinic")
    assert erase.submit(ask(request_id="by-id", contact_id=contact_id), CALLER).result == "erased"


def test_a_default_key_no_account_lists_is_searched_as_the_default_account(
    erasure_stack, monkeypatch
):
    # A stack deployed when the erasure used ClinikoApiKeySecretName's key alone, naming a
    # secret cliniko_accounts.yaml does not list: that account is searched too, not passed over.
    key = f"MS0xlegacy{secrets.token_hex(8)}-uk2"
    erasure_stack.cliniko.control.add_key(key)
    boto3.client("secretsmanager").create_secret(Name="cliniko/erasure-only", SecretString=key)
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", "cliniko/erasure-only")
    contact_id = str(erasure_stack.cliniko.client(api_key=key).create_contact(PERSONAL).id)
    erase = eraser()

    by_id = erase.submit(ask(request_id="by-id", contact_id=contact_id), CALLER)
    assert by_id.result == "erased" and by_id.accounts == {"default": [contact_id]}
    nobody = erase.submit(ask(request_id="by-email", email="nobody@example.org"), CALLER)
    assert "in Cliniko accounts main-clinic, north-clinic, default." in nobody.message


@pytest.mark.parametrize(
    ("accounts", "default"),
    [
        ({"main-clinic": "key", "north-clinic": "other"}, "main-clinic"),
        # main-clinic renamed to the clinic's own name: the first account by name.
        ({"north-clinic": "other", "harbour-physio": "key"}, "harbour-physio"),
    ],
)
def test_with_no_default_key_named_the_default_account_is_one_of_the_file(
    erasure_stack, monkeypatch, tmp_path, accounts, default
):
    # ClinikoApiKeySecretName left empty once named main-clinic's key under the prefix: with
    # that account renamed, every request searched an account whose secret was never made,
    # and failed (503) for good.
    secret = {"key": erasure_stack.key_secret, "other": erasure_stack.other_key_secret}
    named = {name: secret[which] for name, which in accounts.items()}
    monkeypatch.setenv(
        "CLINIKO_ACCOUNTS_FILE", str(stack.write_accounts(tmp_path / "renamed.yaml", named))
    )
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", "")
    contact_id = erasure_stack.seed()
    erase = eraser()

    by_id = erase.submit(ask(request_id="by-id", contact_id=contact_id), CALLER)
    assert by_id.result == "erased" and by_id.accounts == {default: [contact_id]}
    nobody = erase.submit(ask(request_id="by-email", email="nobody@example.org"), CALLER)
    assert nobody.result == "no_record_found"
    assert f"in Cliniko accounts {', '.join(sorted(accounts))}." in nobody.message


def north_holds_main_s_key(erasure_stack) -> None:
    """north-clinic's secret holds main-clinic's key: one Cliniko account under two names,
    whose changes the change feed publishes under each."""
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.other_key_secret, SecretString=erasure_stack.cliniko.api_key
    )


@pytest.mark.parametrize(
    "target", [{}, {"account": "north-clinic"}], ids=["the-default", "named-north"]
)
def test_a_name_sharing_the_key_is_answered_whichever_name_the_request_reaches(
    erasure_stack, target
):
    north_holds_main_s_key(erasure_stack)
    contact_id = erasure_stack.seed("main-clinic")
    request = {**target, "contact_id": contact_id}

    outcome = eraser().submit(ask(request_id="by-id", **request), CALLER)

    assert outcome.result == "erased"
    assert [(c.account, c.contact_id) for c in outcome.contacts] == [("main-clinic", contact_id)]
    assert outcome.accounts == {"main-clinic": [contact_id], "north-clinic": [contact_id]}
    assert DynamoAuditLog(erasure_stack.table_name).erased_contacts() == {
        ("main-clinic", contact_id),
        ("north-clinic", contact_id),
    }


def test_several_matches_are_counted_once_when_two_names_share_the_key(erasure_stack):
    north_holds_main_s_key(erasure_stack)
    erasure_stack.seed("main-clinic")
    erasure_stack.seed("main-clinic")
    with pytest.raises(SeveralMatches) as several:
        eraser().submit(ask(request_id="twice", email=EMAIL), CALLER)
    assert str(several.value).startswith("2 contacts match (2 in main-clinic);")


def test_a_request_filed_before_accounts_with_the_default_key_unlisted_is_finished(
    erasure_stack, monkeypatch
):
    # ClinikoApiKeySecretName names a secret the file does not list that holds main-clinic's
    # key: the account `default` is main-clinic, where the request left its contact half done.
    boto3.client("secretsmanager").create_secret(
        Name="cliniko/erasure-only", SecretString=erasure_stack.cliniko.api_key
    )
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", "cliniko/erasure-only")
    main = erasure_stack.seed("main-clinic", email="")
    north = erasure_stack.seed("north-clinic")
    request = ask(request_id="before", email=EMAIL)
    file_before_accounts(erasure_stack, request, {"result": "found", "contact_ids": [main]})

    retried = eraser().submit(request, CALLER)

    assert (retried.status, retried.result) == ("completed", "erased")
    assert retried.accounts == {"main-clinic": [main], "default": [main]}
    assert erasure_stack.contact(main, "main-clinic")["archived_at"]
    assert not erasure_stack.contact(north, "north-clinic")["archived_at"]


def test_a_lookup_recorded_before_accounts_is_the_default_account_s():
    legacy = [{"sk": "001#lookup", "record": "lookup", "result": "found", "contact_ids": ["7"]}]
    assert matched_before(legacy, "main-clinic") == {"main-clinic": ["7"]}
    # Without a default, an id alone names no contact: none is retried by id.
    assert matched_before(legacy, None) == {}
    keyed = [{**legacy[0], "accounts": {"north-clinic": ["7"], "main-clinic": []}}]
    assert matched_before(keyed, "main-clinic") == {"north-clinic": ["7"], "main-clinic": []}


def test_a_request_id_sent_again_for_another_account_is_a_conflict(erasure_stack):
    contact_id = erasure_stack.seed("main-clinic")
    erase = eraser()
    done = erase.submit(ask(request_id="twice", contact_id=contact_id), CALLER)
    assert done.result == "erased"
    # Within the idempotency record's 30 days too: the same id in another account is another
    # person, never the first one's stored outcome.
    for account in ("north-clinic", "main-clinic"):
        with pytest.raises(RequestIdConflict):
            erase.submit(ask(request_id="twice", contact_id=contact_id, account=account), CALLER)
    # A request naming no account is checked as before the erasure covered several.
    without = request_identity(ask(request_id="r", contact_id="12"), PEPPER)
    assert jmespath.search(IDENTITY, without) == ["12", None, False]


def file_before_accounts(erasure_stack, request: ErasureRequest, lookup: dict) -> None:
    """The trail of `request` as the erasure wrote it when it searched the default account
    alone: its lookup keeps ids alone; its first attempt ended there."""
    identity = request_identity(request, PEPPER)
    received = {
        "record": "received",
        "received_at": "2026-12-01T10:00:00Z",
        "due_at": "2027-01-01T23:59:59Z",
        "caller": CALLER,
        "email_hmac": identity["email_hmac"],
        "reason": "GDPR art. 17",
        "dry_run": False,
        "erase_all_matches": False,
        "fingerprint": fingerprint(identity),
        "status": "open",
    }
    audit = DynamoAuditLog(erasure_stack.table_name)
    head = (0, GENESIS_HASH)
    records = [(RECEIVED_SK, received), ("001#lookup", {"record": "lookup", **lookup})]
    if lookup["result"] == "found":
        records.append(("001#failed", {"record": "failed", "error": "cliniko_ServerError"}))
    for sk, record in records:
        linked = chained(request.request_id, sk, record, head)
        audit.append(request.request_id, sk, linked)
        head = (head[0] + 1, linked["hash"])


def test_a_request_left_half_done_before_accounts_is_finished_in_the_default_account(
    erasure_stack,
):
    # Half done (scrubbed, not archived) when only the default account was searched. The
    # person is in north-clinic too, since.
    main = erasure_stack.seed("main-clinic", email="")
    north = erasure_stack.seed("north-clinic")
    request = ask(request_id="before", email=EMAIL)
    file_before_accounts(erasure_stack, request, {"result": "found", "contact_ids": [main]})
    assert DynamoAuditLog(erasure_stack.table_name).erased_contacts() == {(None, main)}

    retried = eraser().submit(request, CALLER)

    assert (retried.status, retried.result) == ("completed", "erased")
    assert retried.accounts == {"main-clinic": [main]}
    assert erasure_stack.contact(main, "main-clinic")["archived_at"]
    assert not erasure_stack.contact(north, "north-clinic")["archived_at"]


def test_a_confirmation_of_a_request_filed_before_accounts_erases_what_its_409_listed(
    erasure_stack,
):
    listed = sorted([erasure_stack.seed("main-clinic"), erasure_stack.seed("main-clinic")])
    north = erasure_stack.seed("north-clinic")
    request = ask(request_id="asked-before", email=EMAIL)
    lookup = {"result": "awaiting_confirmation", "contact_ids": listed}
    file_before_accounts(erasure_stack, request, lookup)

    confirmed = eraser().submit(
        ask(request_id="asked-before", email=EMAIL, erase_all_matches=True), CALLER
    )

    assert confirmed.result == "erased" and sorted(confirmed.contact_ids) == listed
    assert not erasure_stack.contact(north, "north-clinic")["archived_at"]


def test_two_names_of_one_key_are_searched_once_and_answered_for_both(erasure_stack):
    north_holds_main_s_key(erasure_stack)
    contact_id = erasure_stack.seed("main-clinic")

    outcome = eraser().submit(ask(request_id="one-key", email=EMAIL), CALLER)

    assert outcome.result == "erased"
    assert [(c.account, c.contact_id) for c in outcome.contacts] == [("main-clinic", contact_id)]
    assert outcome.accounts == {"main-clinic": [contact_id], "north-clinic": [contact_id]}
    nobody = eraser().submit(ask(request_id="nobody", email="nobody@example.org"), CALLER)
    assert "in Cliniko accounts main-clinic, north-clinic." in nobody.message
    # The webhook replay refuses the contact's letters under either name.
    assert DynamoAuditLog(erasure_stack.table_name).erased_contacts() == {
        ("main-clinic", contact_id),
        ("north-clinic", contact_id),
    }
