from enum import StrEnum


class PhoneType(StrEnum):
    FAX = "Fax"
    HOME = "Home"
    MOBILE = "Mobile"
    OTHER = "Other"
    WORK = "Work"

    def __str__(self) -> str:
        return str(self.value)
