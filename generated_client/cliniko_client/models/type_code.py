from enum import IntEnum


class TypeCode(IntEnum):
    STANDARD = 0
    DOCTOR = 1
    THIRD_PARTY_PAYER = 2

    def __str__(self) -> str:
        return str(self.value)
