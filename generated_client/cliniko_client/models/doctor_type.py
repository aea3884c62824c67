from enum import StrEnum


class DoctorType(StrEnum):
    BLANK = ""
    GENERAL_PRACTITIONER = "general_practitioner"
    SPECIALIST = "specialist"

    def __str__(self) -> str:
        return str(self.value)
