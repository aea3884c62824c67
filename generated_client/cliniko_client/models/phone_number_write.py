from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass as _dataclass
from dataclasses import field as _dataclass_field
from typing import Any, TypeVar

from ..models.phone_type import PhoneType

T = TypeVar("T", bound="PhoneNumberWrite")


@_dataclass
class PhoneNumberWrite:
    """A phone number to store; the list sent replaces the contact's list.

    Attributes:
        number (str): The number as written; a blank one gets a 422.
        phone_type (PhoneType):
    """

    number: str
    phone_type: PhoneType
    additional_properties: dict[str, Any] = _dataclass_field(init=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        number = self.number

        phone_type = self.phone_type.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "number": number,
                "phone_type": phone_type,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        number = d.pop("number")

        phone_type = PhoneType(d.pop("phone_type"))

        phone_number_write = cls(
            number=number,
            phone_type=phone_type,
        )

        phone_number_write.additional_properties = d
        return phone_number_write

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
