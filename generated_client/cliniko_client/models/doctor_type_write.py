from enum import StrEnum


class DoctorTypeWrite(StrEnum):
    GENERAL_PRACTITIONER = "general_practitioner"
    SPECIALIST = "specialist"

    def __str__(self) -> str:
        return str(self.value)
