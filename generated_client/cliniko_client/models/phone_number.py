from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass as _dataclass
from dataclasses import field as _dataclass_field
from typing import Any, TypeVar, cast

from ..models.phone_type import PhoneType
from ..types import UNSET, Unset

T = TypeVar("T", bound="PhoneNumber")


@_dataclass
class PhoneNumber:
    """A phone number as Cliniko returns it.

    Attributes:
        number (str): The number as entered.
        phone_type (None | PhoneType | Unset):
        normalized_number (None | str | Unset): Cliniko's normalised form of the number.
    """

    number: str
    phone_type: None | PhoneType | Unset = UNSET
    normalized_number: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _dataclass_field(init=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        number = self.number

        phone_type: None | str | Unset
        if isinstance(self.phone_type, Unset):
            phone_type = UNSET
        elif isinstance(self.phone_type, PhoneType):
            phone_type = self.phone_type.value
        else:
            phone_type = self.phone_type

        normalized_number: None | str | Unset
        if isinstance(self.normalized_number, Unset):
            normalized_number = UNSET
        else:
            normalized_number = self.normalized_number

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "number": number,
            }
        )
        if phone_type is not UNSET:
            field_dict["phone_type"] = phone_type
        if normalized_number is not UNSET:
            field_dict["normalized_number"] = normalized_number

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        number = d.pop("number")

        def _parse_phone_type(data: object) -> None | PhoneType | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                phone_type_type_0 = PhoneType(data)

                return phone_type_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PhoneType | Unset, data)

        phone_type = _parse_phone_type(d.pop("phone_type", UNSET))

        def _parse_normalized_number(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        normalized_number = _parse_normalized_number(d.pop("normalized_number", UNSET))

        phone_number = cls(
            number=number,
            phone_type=phone_type,
            normalized_number=normalized_number,
        )

        phone_number.additional_properties = d
        return phone_number

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
