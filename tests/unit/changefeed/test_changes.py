"""Classifying a listed contact against its last published state, and the field hashes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cliniko_automations.changefeed.changes import (
    ContactSnapshot,
    FieldHasher,
    classify,
)

T0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
T2 = T1 + dt.timedelta(minutes=5)
HASHER = FieldHasher(b"k" * 32)


def snapshot(updated_at=T0, archived_at=None, created_at=T0, **fields):
    values = {"first_name": "Ada", "email": "ada@example.com", **fields}
    return ContactSnapshot("1390712996921091568", created_at, updated_at, archived_at, values)


def change(current, previous=None):
    return classify("main", current, previous, HASHER.hashes(current))


def test_a_new_contact_is_created_with_its_filled_fields():
    made = change(snapshot())
    assert (made.type, made.first_seen) == ("contact.created", True)
    assert made.changed_fields == ("first_name", "email")


def test_a_contact_first_seen_after_changes_is_updated_and_says_so():
    made = change(snapshot(updated_at=T1))
    assert (made.type, made.first_seen) == ("contact.updated", True)


def test_an_update_names_exactly_the_fields_whose_values_changed():
    before = change(snapshot()).state
    made = change(snapshot(updated_at=T1, email="ada.l@example.com", city="London"), before)
    assert (made.type, made.first_seen) == ("contact.updated", False)
    assert made.changed_fields == ("email", "city")


def test_archive_and_unarchive_are_told_from_the_last_published_state():
    before = change(snapshot()).state
    archived = change(snapshot(updated_at=T1, archived_at=T1), before)
    assert (archived.type, archived.changed_fields) == ("contact.archived", ("archived_at",))
    later = T1 + dt.timedelta(seconds=1)
    restored = change(snapshot(updated_at=later), archived.state)
    assert (restored.type, restored.changed_fields) == ("contact.unarchived", ("archived_at",))


def test_the_same_state_listed_again_is_a_duplicate():
    published = change(snapshot(updated_at=T1)).state
    assert change(snapshot(updated_at=T1), published) is None


def test_a_second_change_in_the_same_second_is_not_a_duplicate():
    published = change(snapshot(updated_at=T1)).state
    again = change(snapshot(updated_at=T1, occupation="Engineer"), published)
    assert again is not None and again.changed_fields == ("occupation",)
    assert again.event_id != published.event_id


def test_a_state_come_back_within_its_second_has_an_id_of_its_own():
    # A, B, A in one second: the third is a change (back to A), not the first A again, which
    # a subscriber deduping on the id would drop, believing the contact still B.
    first = change(snapshot(updated_at=T1, occupation=None))
    second = change(snapshot(updated_at=T1, occupation="Engineer"), first.state)
    back = change(snapshot(updated_at=T1, occupation=None), second.state)
    assert back is not None
    assert len({first.event_id, second.event_id, back.event_id}) == 3
    # A retry of a change, from the same last published state, repeats its id.
    assert change(snapshot(updated_at=T1, occupation=None), second.state).event_id == back.event_id


def test_a_field_a_listing_leaves_out_is_unknown_not_changed():
    # One state of the contact (one updated_at), listed whole, then without its email or
    # phones, then whole again: nothing changed in Cliniko, and nothing is published.
    whole = change(snapshot(updated_at=T1, occupation="Engineer"))
    without = snapshot(updated_at=T1)  # no occupation shown
    assert change(without, whole.state) is None
    assert change(snapshot(updated_at=T1, occupation="Engineer"), whole.state) is None
    # A change the listing does show is published, naming that field alone.
    later = change(snapshot(updated_at=T2, email="ada@new.example"), whole.state)
    assert later.changed_fields == ("email",)
    assert later.state.hashes["occupation"] == whole.state.hashes["occupation"]


def test_a_listing_without_archived_at_says_nothing_of_the_archive():
    archived = change(snapshot(updated_at=T1, archived_at=T1))
    assert archived.type == "contact.archived"
    silent = ContactSnapshot(
        "1390712996921091568",
        T0,
        T1,
        None,
        {"first_name": "Ada", "email": "ada@example.com"},
        archive_shown=False,
    )
    assert change(silent, archived.state) is None  # not "unarchived"
    # Shown as null, it is an unarchive.
    assert change(snapshot(updated_at=T2), archived.state).type == "contact.unarchived"


def test_a_change_listed_without_archived_at_keeps_the_contact_archived():
    # Staff changed an archived contact's email, and a listing that leaves out the archive
    # shows it: an update of the email, the contact still archived (read as active, every
    # subscriber was told "unarchived", and the next full listing "archived" again).
    archived = change(snapshot(updated_at=T1, archived_at=T1))
    readdressed = ContactSnapshot(
        "1390712996921091568",
        T0,
        T2,
        None,
        {"first_name": "Ada", "email": "ada@new.example"},
        archive_shown=False,
    )
    updated = change(readdressed, archived.state)
    assert updated.type == "contact.updated"
    assert updated.changed_fields == ("email",)
    assert updated.state.archived is True


def test_an_older_state_than_the_published_one_is_dropped():
    published = change(snapshot(updated_at=T1)).state
    assert change(snapshot(updated_at=T0, occupation="x"), published) is None


def test_event_ids_are_stable_for_one_state_so_retries_repeat_them():
    assert change(snapshot(updated_at=T1)).event_id == change(snapshot(updated_at=T1)).event_id
    assert change(snapshot(updated_at=T1)).event_id.startswith("msg_")


def test_hashes_are_keyed_bound_to_the_contact_and_hold_no_value():
    hashes = HASHER.hashes(snapshot())
    other_key = FieldHasher(b"j" * 32).hashes(snapshot())
    assert hashes["email"] != other_key["email"]
    other_contact = ContactSnapshot("2", T0, T0, None, {"email": "ada@example.com"})
    assert HASHER.hashes(other_contact)["email"] != hashes["email"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in hashes.values())


def test_the_summary_carries_no_values_and_fields_only_on_request():
    made = change(snapshot(updated_at=T1))
    assert "ada@example.com" not in str(made.summary())
    assert "ada@example.com" not in repr(made.snapshot)
    assert made.with_fields()["contact"]["email"] == "ada@example.com"


def test_a_short_hash_key_is_refused():
    with pytest.raises(ValueError, match="16 bytes"):
        FieldHasher(b"short")
    with pytest.raises(ValueError, match="16 bytes"):
        FieldHasher(b"k" * 15)
    FieldHasher(b"k" * 16)


def scrubbed(**fields):
    """A contact as an erasure leaves it, as a listing shows it (no doctor_type: the
    documented list leaves it out)."""
    values = {name: None for name in ("title", "last_name", "email", "notes", "country_code")}
    return {**values, "first_name": "Erased", "phone_numbers": [], **fields}


@pytest.mark.parametrize(
    "fields",
    [
        scrubbed(),
        # The placeholders the scrub writes where Cliniko refuses a blank.
        scrubbed(email="erased@example.invalid", last_name="Erased"),
        scrubbed(title="", notes=""),
    ],
)
def test_a_contact_holding_only_what_an_erasure_writes_is_marked_erased(fields):
    archived = change(ContactSnapshot("7", T0, T1, T1, fields))
    scrub_alone = change(ContactSnapshot("7", T0, T1, None, fields))
    assert (archived.type, archived.erased) == ("contact.archived", True)
    assert (scrub_alone.type, scrub_alone.erased) == ("contact.updated", True)
    assert archived.summary()["erased"] is True


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "Ada", "email": "ada@example.com"},
        {"first_name": "Ada"},  # blank but for a name of its own
        scrubbed(city="Uppsala"),  # filled in again since
        scrubbed(phone_numbers=[{"number": "0491 570 156", "phone_type": "Mobile"}]),
        scrubbed(first_name="Ada"),
        # Read without its name (a sparse listing): nothing says an erasure wrote it.
        {"email": None},
    ],
)
def test_a_contact_holding_anything_else_is_not_marked_erased(fields):
    archived = change(ContactSnapshot("7", T0, T1, T1, fields))
    assert (archived.type, archived.erased) == ("contact.archived", False)
    assert archived.summary()["erased"] is False
