"""The erasure core against a Cliniko that refuses some blanks in the scrub: which fields it
requires on an update is not documented (its one documented 422 is a blank first_name), and a
Rails validation refuses the whole write. Whatever it refuses, every other personal value still
goes, and the answer never says "erased" while a value remains."""

from __future__ import annotations

from typing import Any

import pytest
from cliniko_automations.cliniko.errors import NotFound, ServerError, ValidationFailed
from cliniko_automations.cliniko.rules import is_archived
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.scrub import SCRUBBED_VALUES

from tests.integration.erasure import stack
from tests.integration.erasure.test_core_against_emulator import CALLER, make_eraser

erasure_stack = stack.erasure_stack  # the fixture

BLANK = "can\u2019t be blank"


class RequiringCliniko:
    """One contact; an update blanking a field of `required` is refused whole (422, with a
    null beside the message as Cliniko's errors may carry); `refused` fields are refused
    whatever their value (a rule no placeholder meets)."""

    def __init__(self, required: tuple[str, ...] = (), refused: tuple[str, ...] = ()) -> None:
        self.contact: dict[str, Any] = {
            "id": "1390712996921091568",
            "archived_at": None,
            **{k: v for k, v in stack.PERSONAL.items()},
        }
        self.required, self.refused = required, refused
        # Fields an update answers 200 for and leaves as they were.
        self.ignored: tuple[str, ...] = ()
        # Fields a list leaves out (the seed's items carry no doctor_type; its by-id read does).
        self.unlisted: tuple[str, ...] = ()
        self.writes: list[str] = []
        self.archive_failures = 0
        # How an update of an archived contact is refused: None (it is not), or the error.
        self.archived_update: Exception | None = None
        # Whether a 422 names only the first field it refuses (in name order), as a Cliniko
        # that stops at its first failed check would, not every one at once.
        self.one_error_at_a_time = False

    def expect_requests(self, count: int) -> None:
        pass

    def list_contacts(self, filters: Any = (), sort: Any = None) -> list[dict[str, Any]]:
        # Found by its id, or by its email as Cliniko compares it (lower-cased).
        wanted = [f.to_query() for f in filters if f.to_query().startswith("email:=")]
        if any(q.removeprefix("email:=") != self.contact["email"].lower() for q in wanted):
            return []
        return [{k: v for k, v in self.contact.items() if k not in self.unlisted}]

    def get_contact(self, contact_id: str, *, include_archived: bool = False) -> dict[str, Any]:
        return dict(self.contact)

    def update_contact(self, contact_id: str, body: Any, *, include_archived: bool = False):
        self.writes.append("update")
        if self.contact["archived_at"] and self.archived_update is not None:
            raise self.archived_update
        errors: dict[str, str | None] = {
            name: BLANK for name in self.required if name in body and body[name] in ("", None)
        }
        errors.update({name: "is invalid" for name in self.refused if name in body})
        if errors and self.one_error_at_a_time:
            errors = {min(errors): errors[min(errors)]}
        if errors:
            raise ValidationFailed("Validation Failed", {**errors, "title": None}, status_code=422)
        self.contact.update({k: v for k, v in body.items() if k not in self.ignored})
        return dict(self.contact)

    def archive_contact(self, contact_id: str) -> None:
        self.writes.append("archive")
        if self.archive_failures:
            self.archive_failures -= 1
            raise ServerError("Cliniko failed POST /contacts/{id}/archive (502)", status_code=502)
        self.contact["archived_at"] = "2026-01-01T00:00:00Z"


def ask(**values: Any) -> ErasureRequest:
    return ErasureRequest.parse({"reason": "GDPR art. 17", **values})


def left_in(contact: dict[str, Any]) -> list[str]:
    """The personal values the contact still holds (by field name)."""
    return sorted(
        name
        for name in SCRUBBED_VALUES
        if contact.get(name) not in ("", None, [])
        and str(contact.get(name)) in str(stack.PERSONAL.get(name))
    )


@pytest.mark.parametrize(
    "required",
    [("last_name",), ("first_name", "last_name"), ("email",), ("last_name", "email")],
    ids=["last_name", "both_names", "email", "last_name_and_email"],
)
def test_a_field_cliniko_will_not_have_blank_takes_a_placeholder(erasure_stack, required):
    cliniko = RequiringCliniko(required=required)
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-blank", email=stack.PERSONAL["email"]), CALLER)

    assert outcome.result == "erased", (outcome.message, outcome.contacts)
    assert left_in(cliniko.contact) == []
    assert is_archived(cliniko.contact)
    # Sent again (or another request for the person): done already, nothing written.
    again = eraser.submit(ask(request_id="req-again", contact_id=cliniko.contact["id"]), CALLER)
    assert again.contacts[0].action == "already_scrubbed_and_archived", again.contacts


def test_a_field_refused_whatever_is_sent_leaves_the_rest_erased_and_is_reported(erasure_stack):
    cliniko = RequiringCliniko(refused=("notes",))
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-refused", email=stack.PERSONAL["email"]), CALLER)

    assert (outcome.status, outcome.result) == ("failed", "failed")
    [contact] = outcome.contacts
    assert contact.action == "failed" and contact.verified is False
    assert contact.error is not None and "notes" in contact.error
    # Every other personal value is gone, and the contact is archived out of Cliniko's lists.
    assert left_in(cliniko.contact) == ["notes"]
    assert is_archived(cliniko.contact)


def test_a_cliniko_naming_one_refused_field_a_time_is_met_field_by_field(erasure_stack):
    # A blank last name refused, then the notes whatever is sent, each told in its own 422:
    # the scrub's fourth write is the one that takes every other value away.
    cliniko = RequiringCliniko(required=("last_name",), refused=("notes",))
    cliniko.one_error_at_a_time = True
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-one-a-time", email=stack.PERSONAL["email"]), CALLER)

    assert cliniko.writes == ["update"] * 4 + ["archive"]
    [contact] = outcome.contacts
    assert (outcome.status, contact.action) == ("failed", "failed")
    assert contact.error is not None and "notes" in contact.error
    assert left_in(cliniko.contact) == ["notes"]
    assert is_archived(cliniko.contact)


@pytest.mark.parametrize("kept", ["specialist", None], ids=["holding_a_value", "blank"])
def test_a_refused_field_the_list_does_not_show_is_read_by_id(erasure_stack, kept):
    # A Doctor contact whose doctor_type Cliniko will not have cleared, in the seed's shapes:
    # the read back (a list) shows no doctor_type, which is no doctor_type seen blank.
    cliniko = RequiringCliniko(refused=("doctor_type",))
    cliniko.contact["doctor_type"] = kept
    cliniko.unlisted = ("doctor_type",)
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-unlisted", email=stack.PERSONAL["email"]), CALLER)

    [contact] = outcome.contacts
    assert is_archived(cliniko.contact) and cliniko.contact["doctor_type"] == kept
    if kept:
        assert (outcome.result, contact.action, contact.verified) == ("failed", "failed", False)
        assert contact.error == "cliniko_refused: doctor_type"
    else:  # blank before the scrub: nothing of the person is left
        assert (outcome.result, contact.action) == ("erased", "scrubbed_and_archived")


def test_a_retry_finishes_a_contact_scrubbed_with_the_placeholder_email(erasure_stack):
    # The scrub wrote the placeholder email, then the archive failed: the retry no longer
    # finds the contact by the request's email, and must still finish it by its id.
    cliniko = RequiringCliniko(required=("email",))
    cliniko.archive_failures = 1
    eraser = make_eraser(erasure_stack, cliniko)
    request = ask(request_id="req-retry", email=stack.PERSONAL["email"])
    assert eraser.submit(request, CALLER).status == "failed"

    outcome = eraser.submit(request, CALLER)

    assert outcome.result == "erased", (outcome.message, outcome.contacts)
    assert outcome.contact_ids == [cliniko.contact["id"]]
    assert left_in(cliniko.contact) == [] and is_archived(cliniko.contact)


@pytest.mark.parametrize(
    "refusal",
    [
        NotFound("Cliniko has no such resource: PATCH /contacts/{id} (404)", status_code=404),
        ValidationFailed("Validation Failed", {"base": "is archived"}, status_code=422),
    ],
    ids=["404", "422"],
)
def test_an_archived_contact_cliniko_will_not_update_is_reported_with_what_to_do(
    erasure_stack, refusal
):
    # Archived by staff or the cleanup before the request, details and all; whether Cliniko
    # updates an archived contact is not documented. Sending the request again cannot help.
    cliniko = RequiringCliniko()
    cliniko.contact["archived_at"] = "2025-01-01T00:00:00Z"
    cliniko.archived_update = refusal
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-arch", email=stack.PERSONAL["email"]), CALLER)

    assert (outcome.status, outcome.result) == ("failed", "failed")
    assert outcome.contacts[0].action == "failed"
    assert "archived" in outcome.message and "fail the same way" in outcome.message
    assert "send it again with the same request id to retry" not in outcome.message


def test_a_field_cliniko_ignores_is_named_by_the_read_back(erasure_stack):
    # 200 to the scrub, the notes as they were: the staff who must blank them by hand are told
    # which field, not only that the read back disagreed.
    cliniko = RequiringCliniko()
    cliniko.ignored = ("notes",)
    eraser = make_eraser(erasure_stack, cliniko)

    outcome = eraser.submit(ask(request_id="req-ignored", email=stack.PERSONAL["email"]), CALLER)

    assert (outcome.status, outcome.result) == ("failed", "failed")
    [contact] = outcome.contacts
    assert (contact.action, contact.verified) == ("failed", False)
    assert contact.error == "verification_failed: notes"
