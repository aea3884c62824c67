"""An update under `update_policy: overwrite` must not lose what the clinic has and the
submission does not speak to: a phone number of another kind, a type the form never asked."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.apigw import form_post_event
from tests.integration.intake_worker.e2e_world import IntakePath, build_intake_path
from tests.unit.intake_api import samples

# What staff keep for an insurer's claims officer (insurer-formspree: overwrite, defaults
# type_code 2): a work phone and the claims desk's fax.
STAFF = {
    "first_name": "Jane",
    "last_name": "Smith",
    "email": "jane.smith@insurer.example",
    "company_name": "Blue Shield Health",
    "type_code": 2,
    "phone_numbers": [
        {"number": "02 9999 9999", "phone_type": "Work"},
        {"number": "02 9999 0000", "phone_type": "Fax"},
    ],
}


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    return build_intake_path(cliniko, monkeypatch, tmp_path)


def post_formspree(path: IntakePath, submission: dict) -> None:
    body = json.dumps({"form": "xyzzyabc", "submission": submission}).encode()
    headers = {
        "Content-Type": "application/json",
        "Formspree-Signature": samples.t_v1_signature(body),
    }
    answer = path.post(form_post_event("insurer-formspree", body, headers))
    assert answer["statusCode"] == 202, answer
    assert path.work() == 1


def test_the_same_details_sent_again_keep_the_fax_staff_added(path, cliniko) -> None:
    cliniko.control.seed(contacts=[STAFF])
    post_formspree(
        path,
        {
            "contact_name": "Jane Smith",
            "email": "jane.smith@insurer.example",
            "phone": "02 9999 9999",  # the work number Cliniko already has
            "insurer": "Blue Shield Health",
        },
    )
    [contact] = cliniko.control.contacts()
    kept = {(p["phone_type"], p["number"]) for p in contact["phone_numbers"]}
    assert ("Fax", "02 9999 0000") in kept, contact["phone_numbers"]


def test_a_default_does_not_overwrite_the_type_staff_chose(path, cliniko) -> None:
    # Staff know this person as a doctor (type 1) who also handles claims; the form asks
    # nothing about the type, its source's default (2) is for the contacts it creates.
    cliniko.control.seed(contacts=[dict(STAFF, type_code=1)])
    post_formspree(
        path,
        {
            "contact_name": "Jane Smith",
            "email": "jane.smith@insurer.example",
            "phone": "02 9999 9999",
            "insurer": "Blue Shield Health",
        },
    )
    [contact] = cliniko.control.contacts()
    assert contact["type_code"] == 1


def test_a_blank_answer_does_not_replace_staff_notes_with_the_templates_text(
    aws, cliniko, monkeypatch, tmp_path
) -> None:
    # The shipped website-webflow source, set to overwrite (a choice form_sources.yaml offers).
    import yaml
    from cliniko_automations.intake.config import DEFAULT_PATH

    from tests.integration.intake_worker import e2e_world

    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["sources"]["website-webflow"]["update_policy"] = "overwrite"
    shipped = tmp_path / "shipped" / "form_sources.yaml"
    shipped.parent.mkdir()
    shipped.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setattr(e2e_world, "DEFAULT_PATH", shipped)
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    cliniko.control.seed(
        contacts=[
            {
                "first_name": samples.FIRST,
                "last_name": samples.LAST,
                "email": samples.EMAIL,
                "notes": "Prefers email. Referred 3 patients in 2025.",
            }
        ]
    )
    body = json.loads(samples.webflow_body())
    body["payload"]["data"]["Message"] = ""  # the person left the message box empty
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **samples.webflow_headers(raw)}
    answer = path.post(form_post_event("website-webflow", raw, headers))
    assert answer["statusCode"] == 202, answer
    assert path.work() == 1
    [contact] = cliniko.control.contacts()
    assert contact["notes"] == "Prefers email. Referred 3 patients in 2025."


def test_a_name_sent_in_another_unicode_composition_keeps_the_one_staff_typed(
    path, cliniko
) -> None:
    # "José Núñez" from a keyboard is composed (NFC); pasted from some apps or typed on some
    # keyboards it is "e" and a combining accent (NFD). The same name to a person, but
    # overwritten, staff's contact held the NFD bytes, which their search for the "José" they
    # type (and the next submission's lookup without an email) does not find.
    staff = {**STAFF, "first_name": "Jos\u00e9", "last_name": "N\u00fa\u00f1ez"}
    cliniko.control.seed(contacts=[staff])
    cliniko.control.clear_requests()
    post_formspree(
        path,
        {
            "contact_name": "Jose\u0301 Nu\u0301n\u0303ez",
            "email": staff["email"],
            "phone": "02 9999 9999",
            "insurer": "Blue Shield Health",
        },
    )
    [contact] = cliniko.control.contacts()
    assert (contact["first_name"], contact["last_name"]) == ("Jos\u00e9", "N\u00fa\u00f1ez")
    assert [r["method"] for r in cliniko.control.requests()] == ["GET"]  # nothing to write
