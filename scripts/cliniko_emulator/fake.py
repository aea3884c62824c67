"""Realistic fake third-party contacts for seeding (deterministic for a given RNG)."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

FIRST_NAMES = (
    "Olivia", "Jack", "Charlotte", "William", "Amelia", "Noah", "Isla", "Oliver", "Mia",
    "Thomas", "Grace", "James", "Chloe", "Lucas", "Zoe", "Henry", "Ava", "Leo", "Ruby",
    "Ethan", "Sophie", "Mason", "Matilda", "Liam", "Harper", "Aarav", "Mei", "Siobhan",
    "José", "Zoë", "Ngaio", "Priya", "Kai", "Fatima", "Darrell", "Anh",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson", "Martin",
    "White", "Anderson", "Walker", "Thompson", "Harris", "Lee", "Ryan", "Robinson", "Kelly",
    "King", "Davis", "O'Brien", "McDonald", "Singh", "Patel", "Chen", "Bode", "García",
    "Te Whare", "van der Berg", "Müller",
)  # fmt: skip
OCCUPATIONS = (
    "General Practitioner", "Cardiologist", "Physiotherapist", "Orthopaedic Surgeon",
    "Claims Officer", "Case Manager", "Podiatrist", "Psychologist", "Radiologist", "",
)  # fmt: skip
COMPANIES = (
    "Harbourside Medical Centre", "Northside Family Practice", "Allianz Workers Comp",
    "Medibank", "Bupa", "City Orthopaedics", "Riverbank Imaging", "", "", "",
)  # fmt: skip
CITIES = (
    ("Sydney", "NSW", "2000", "AU"), ("Melbourne", "VIC", "3000", "AU"),
    ("Brisbane", "QLD", "4000", "AU"), ("Perth", "WA", "6000", "AU"),
    ("Auckland", "Auckland", "1010", "NZ"), ("London", "", "SW1A 1AA", "GB"),
    ("Toronto", "ON", "M5H 2N2", "CA"), ("Dublin", "", "D02 X285", "IE"),
)  # fmt: skip
STREETS = ("George St", "Collins St", "Queen St", "King St", "Main Rd", "Station St")
DOMAINS = ("example.com", "example.net", "example.org", "clinic.example")
PHONE_TYPES = ("Mobile", "Work", "Home", "Fax", "Other")


def contact(rng: random.Random) -> dict[str, Any]:
    """A ContactWrite body that Cliniko would accept."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    type_code = rng.choice((0, 1, 1, 1, 2))
    city, state, post_code, country = rng.choice(CITIES)
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    # Cliniko's email rule takes ASCII alone: "josé.garcía" is written "jose.garcia".
    local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode("ascii")
    email = f"{local}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
    if rng.random() < 0.2:
        email = email.capitalize()  # Cliniko keeps the case it was given
    phones = [
        {"number": f"04{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
         "phone_type": rng.choice(PHONE_TYPES)}
        for _ in range(rng.randint(0, 2))
    ]  # fmt: skip
    return {
        "title": rng.choice(("Dr", "Mr", "Ms", "Mrs", "")),
        "first_name": first,
        "last_name": last,
        "preferred_name": "",
        "company_name": rng.choice(COMPANIES) if type_code != 1 else "",
        "occupation": rng.choice(OCCUPATIONS),
        "provider_number": f"{rng.randint(100000, 999999)}{rng.choice('ABCDEFGHJK')}"
        if type_code == 1
        else "",
        "email": email if rng.random() < 0.9 else "",
        "address_1": f"{rng.randint(1, 400)} {rng.choice(STREETS)}",
        "address_2": rng.choice(("", "", f"Suite {rng.randint(1, 30)}")),
        "address_3": "",
        "city": city,
        "state": state,
        "post_code": post_code,
        "country_code": country,
        "notes": "",
        "doctor_type": rng.choice(("general_practitioner", "specialist"))
        if type_code == 1
        else None,
        "type_code": type_code,
        "phone_numbers": phones,
    }
