import dataclasses

import pytest
from cliniko_automations.cliniko import rules
from cliniko_automations.cliniko.rules import (
    BLANK,
    INVALID,
    NOT_IN_LIST,
    TOO_LONG,
    country_code_for,
    country_name,
    validate_contact_fields,
)
from cliniko_client.models.contact_write import ContactWrite
from cliniko_client.models.doctor_type import DoctorType
from cliniko_client.models.doctor_type_write import DoctorTypeWrite
from cliniko_client.models.phone_type import PhoneType
from cliniko_client.models.type_code import TypeCode


def test_the_written_out_lists_are_the_generated_models():
    # rules.py spells these out so the intake API need not load the generated models at a cold
    # start; the generated client (regenerated from openapi.yaml in CI) is what they must equal.
    generated = tuple(
        f.name for f in dataclasses.fields(ContactWrite) if f.name != "additional_properties"
    )
    assert generated == rules.WRITABLE_FIELD_NAMES
    assert tuple(kind.value for kind in DoctorType if kind.value) == rules.DOCTOR_TYPES
    assert "" in {kind.value for kind in DoctorType}
    assert tuple(kind.value for kind in DoctorTypeWrite) == rules.DOCTOR_TYPES
    assert tuple(kind.value for kind in PhoneType) == rules.PHONE_TYPES
    assert rules.TYPE_NAMES.keys() == {kind.value for kind in TypeCode}


def test_country_names_come_from_iso_3166():
    assert country_name("AU") == "Australia"
    assert country_name("ee") == "Estonia"
    assert country_name("XX") is None
    assert country_name("AUS") is None
    # U+212A KELVIN SIGN: pycountry folds it to "k", but it is no ISO code.
    assert country_name("\u212aE") is None
    assert validate_contact_fields({"country_code": "\u212aE"}, creating=False)
    assert country_code_for("\u212aE") == "KE"  # as a name is read: the code is ASCII


def test_country_code_for_accepts_codes_and_names():
    assert country_code_for("au") == "AU"
    assert country_code_for("Australia") == "AU"
    assert country_code_for("NZL") == "NZ"
    assert country_code_for("Atlantis") is None
    assert country_code_for("  ") is None
    # "&" folds to "and" for "Trinidad & Tobago": alone, it is not Andorra's code AND.
    assert country_code_for("&") is None
    assert country_code_for(" & ") is None
    assert country_code_for("AND") == "AD"
    # Longer than any country's name is none, not a costly read ("the" is left out of names).
    assert country_code_for("the " * 47 + "Australia") == "AU"
    assert country_code_for("the " * 48 + "Australia") is None


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("UK", "GB"),
        ("U.K.", "GB"),
        ("the UK", "GB"),
        ("England", "GB"),
        ("Scotland", "GB"),
        ("Wales", "GB"),
        ("Northern Ireland", "GB"),
        ("Great Britain", "GB"),
        ("Russia", "RU"),
        ("Turkey", "TR"),
        ("Holland", "NL"),
        ("The Netherlands", "NL"),
        ("Ivory Coast", "CI"),
        ("U.S.A.", "US"),
        ("The USA", "US"),
        ("the U.S.", "US"),
        ("Trinidad & Tobago", "TT"),
        ("St Lucia", "LC"),
        ("The Gambia", "GM"),
        # pycountry's own common names, for the record: no alias needed.
        ("South Korea", "KR"),
        ("Vietnam", "VN"),
        ("Czech Republic", "CZ"),
        # Namibia's code, whatever else "NA" is typed for.
        ("NA", "NA"),
    ],
)
def test_country_code_for_reads_the_names_people_type(typed, code):
    assert country_code_for(typed) == code


# Gravity Forms' address field posts the country as the name its dropdown shows
# (GF_Field_Address::get_default_countries): ISO's names without their parenthesised part,
# or with "the" and the comma moved. Each was a 422, the whole submission lost.
@pytest.mark.parametrize(
    ("listed", "code"),
    [
        ("Cocos Islands", "CC"),
        ("Congo, Democratic Republic of the", "CD"),
        ("Falkland Islands", "FK"),
        ("Holy See", "VA"),
        ("Saint Martin", "MF"),
        ("Sint Maarten", "SX"),
        ("Syria Arab Republic", "SY"),
        ("Tanzania, the United Republic of", "TZ"),
        ("US Minor Outlying Islands", "UM"),
        # and as people type them
        ("Saint-Barthelemy", "BL"),
        ("Sao Tomé and Príncipe", "ST"),
        ("U.S. Virgin Islands", "VI"),
        ("Pitcairn Islands", "PN"),
        # WPForms' address field: ISO's comma as brackets
        ("Congo (Democratic Republic of the)", "CD"),
        ("Korea (Republic of)", "KR"),
        ("Korea (Democratic People's Republic of)", "KP"),
        ("Virgin Islands (British)", "VG"),
        ("Virgin Islands (U.S.)", "VI"),
        ("Micronesia (Federated States of)", "FM"),
        ("Palestine (State of)", "PS"),
        ("Vatican City State", "VA"),
        ("Taiwan, Republic of China", "TW"),
        ("Bonaire, Saint Eustatius and Saba", "BQ"),
        ("Ireland (Republic of)", "IE"),
        ("Eswatini (Kingdom of)", "SZ"),
    ],
)
def test_country_code_for_reads_the_names_form_builders_list(listed, code):
    assert country_code_for(listed) == code


def test_loose_country_names_stay_unambiguous():
    # Read without accents, hyphens, commas, brackets (or what is in them) and "the", no two
    # countries' ISO names become one.
    import pycountry

    seen: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            if name := getattr(country, attribute, None):
                for without_brackets in (False, True):
                    key = rules.loose_country_key(name, without_brackets=without_brackets)
                    assert seen.setdefault(key, country.alpha_2) == country.alpha_2, name


@pytest.mark.parametrize("typed", ["Congo (Kinshasa)", "Korea (South)", "Guinea (Conakry)"])
def test_what_is_in_brackets_of_a_typed_country_is_never_dropped(typed):
    # "Congo (Kinshasa)" is the Democratic Republic: read as "Congo" it was the other one.
    assert country_code_for(typed) is None


@pytest.mark.parametrize("alias", sorted(rules.COUNTRY_ALIASES))
def test_each_country_alias_is_one_iso_3166_does_not_know(alias):
    # The table stays small: a name pycountry reads needs no alias.
    import pycountry

    with pytest.raises(LookupError):
        pycountry.countries.lookup(alias)
    assert country_name(rules.COUNTRY_ALIASES[alias]) is not None


def test_a_valid_body_has_no_errors():
    body = {
        "first_name": "John",
        "email": "a+b@example.com",
        "country_code": "AU",
        "doctor_type": "specialist",
        "type_code": 1,
        "phone_numbers": [{"number": "0400 000 000", "phone_type": "Mobile"}],
    }
    assert validate_contact_fields(body, creating=True) == {}


def test_errors_use_clinikos_messages():
    body = {
        "first_name": "",
        "email": "not an email",
        "last_name": "x" * 256,
        "country_code": "ZZ",
        "doctor_type": "surgeon",
        "type_code": 7,
        "phone_numbers": [{"number": "1", "phone_type": "Pager"}],
    }
    assert validate_contact_fields(body, creating=True) == {
        "first_name": BLANK,
        "email": INVALID,
        "last_name": TOO_LONG,
        "country_code": NOT_IN_LIST,
        "doctor_type": NOT_IN_LIST,
        "type_code": NOT_IN_LIST,
        "phone_numbers": "phone_type " + NOT_IN_LIST,
    }


def test_a_blank_doctor_type_is_no_value_to_write():
    # Cliniko documents null to clear it; "" is only in what it returns (spec: DoctorTypeWrite).
    assert validate_contact_fields({"doctor_type": ""}, creating=False) == {
        "doctor_type": NOT_IN_LIST
    }
    assert validate_contact_fields({"doctor_type": None}, creating=False) == {}


def test_an_update_need_not_carry_a_first_name():
    assert validate_contact_fields({"last_name": "Snow"}, creating=False) == {}
    assert validate_contact_fields({"last_name": "Snow"}, creating=True) == {"first_name": BLANK}


def test_wrong_json_types_are_errors_not_exceptions():
    body = {
        "first_name": ["x"],
        "email": 5,
        "type_code": {},
        "doctor_type": [],
        "country_code": 61,
        "phone_numbers": "0400",
    }
    assert validate_contact_fields(body, creating=True) == {
        "first_name": INVALID,
        "email": INVALID,
        "type_code": NOT_IN_LIST,
        "doctor_type": NOT_IN_LIST,
        "country_code": NOT_IN_LIST,
        "phone_numbers": INVALID,
    }
    assert validate_contact_fields({"type_code": True}, creating=False) == {
        "type_code": NOT_IN_LIST
    }
