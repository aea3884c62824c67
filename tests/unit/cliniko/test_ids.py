"""Ids stay strings: the seed's integer ids and today's 19-digit string ids both end as str."""

from __future__ import annotations

import pytest
from cliniko_automations.cliniko import ClinikoClient, errors
from cliniko_automations.cliniko.client import _normalise
from cliniko_client.models import Contact

UA = "Tests (tests@example.com)"

# The seed's GET /contacts/:id example, trimmed to the fields the model requires and a few more.
SEED_CONTACT = {
    "id": 1,
    "created_at": "2016-07-25T18:52:09Z",
    "updated_at": "2016-10-28T23:43:31Z",
    "deleted_at": None,
    "doctor_type": None,
    "email": "geovany@example.net",
    "first_name": "Darrell",
    "type": "Doctor",
    "type_code": 1,
    "links": {"self": "http://api.cliniko.com/v1/contacts/1"},
}


def test_seed_integer_id_becomes_a_string() -> None:
    contact = _normalise(Contact.from_dict(SEED_CONTACT))
    assert contact.id == "1"


def test_a_19_digit_id_keeps_every_digit_whether_sent_as_number_or_string() -> None:
    as_number = _normalise(Contact.from_dict({**SEED_CONTACT, "id": 1390712996921091568}))
    as_string = _normalise(Contact.from_dict({**SEED_CONTACT, "id": "1390712996921091568"}))
    assert as_number.id == as_string.id == "1390712996921091568"


@pytest.mark.parametrize(
    "bad",
    [
        1.390712996921091568e18,
        True,
        "12ab",
        None,
        # Integers no request of ours could name again: taken, the cleanup's next request
        # refused them with a ValueError, and every retry of its run died there.
        -5,
        2**63,
        "9223372036854775808",
        "1" * 400,
    ],
)
def test_an_id_that_is_not_a_64_bit_integer_is_an_unexpected_response(bad: object) -> None:
    with pytest.raises(errors.UnexpectedResponse):
        _normalise(Contact.from_dict({**SEED_CONTACT, "id": bad}))


def test_clients_of_the_same_key_share_one_rate_budget() -> None:
    key = "MS0xbudgetsharing00000-au4"
    first = ClinikoClient(key, UA)
    second = ClinikoClient(key, UA)
    other = ClinikoClient("MS0xsomeoneelse00000-au4", UA)
    assert first.rate_budget is second.rate_budget
    assert first.rate_budget is not other.rate_budget
    assert first.rate_budget.limit == 200
