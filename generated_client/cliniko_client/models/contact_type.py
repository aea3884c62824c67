from enum import StrEnum


class ContactType(StrEnum):
    DOCTOR = "Doctor"
    STANDARD = "Standard"
    THIRD_PARTY_PAYER = "3rd Party Payer"

    def __str__(self) -> str:
        return str(self.value)
