from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass as _dataclass
from dataclasses import field as _dataclass_field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..models.doctor_type_write import DoctorTypeWrite
from ..models.type_code import TypeCode
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.phone_number_write import PhoneNumberWrite


T = TypeVar("T", bound="ContactWrite")


@_dataclass
class ContactWrite:
    """The body of a create or an update: only writable fields, all optional (an update changes only what it sends; `null`
    clears a field). Cliniko ignores read-only fields such as `country`. Which fields a create requires is not
    documented (a blank `first_name` gets "can’t be blank").

        Attributes:
            title (None | str | Unset):
            first_name (None | str | Unset):
            last_name (None | str | Unset):
            preferred_name (None | str | Unset):
            company_name (None | str | Unset):
            occupation (None | str | Unset):
            provider_number (None | str | Unset):
            email (None | str | Unset): Cliniko checks the shape of a non-blank email (422 otherwise).
            address_1 (None | str | Unset):
            address_2 (None | str | Unset):
            address_3 (None | str | Unset):
            city (None | str | Unset):
            state (None | str | Unset):
            post_code (None | str | Unset):
            country_code (None | str | Unset): ISO 3166-1 alpha-2 code (`AU`): the only way to set the country; an
                unassigned code gets a 422.
            notes (None | str | Unset):
            doctor_type (DoctorTypeWrite | None | Unset): Set null to clear.
            type_code (None | TypeCode | Unset):
            phone_numbers (list[PhoneNumberWrite] | None | Unset): The whole list of phone numbers.
    """

    title: None | str | Unset = UNSET
    first_name: None | str | Unset = UNSET
    last_name: None | str | Unset = UNSET
    preferred_name: None | str | Unset = UNSET
    company_name: None | str | Unset = UNSET
    occupation: None | str | Unset = UNSET
    provider_number: None | str | Unset = UNSET
    email: None | str | Unset = UNSET
    address_1: None | str | Unset = UNSET
    address_2: None | str | Unset = UNSET
    address_3: None | str | Unset = UNSET
    city: None | str | Unset = UNSET
    state: None | str | Unset = UNSET
    post_code: None | str | Unset = UNSET
    country_code: None | str | Unset = UNSET
    notes: None | str | Unset = UNSET
    doctor_type: DoctorTypeWrite | None | Unset = UNSET
    type_code: None | TypeCode | Unset = UNSET
    phone_numbers: list[PhoneNumberWrite] | None | Unset = UNSET
    additional_properties: dict[str, Any] = _dataclass_field(init=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        title: None | str | Unset
        if isinstance(self.title, Unset):
            title = UNSET
        else:
            title = self.title

        first_name: None | str | Unset
        if isinstance(self.first_name, Unset):
            first_name = UNSET
        else:
            first_name = self.first_name

        last_name: None | str | Unset
        if isinstance(self.last_name, Unset):
            last_name = UNSET
        else:
            last_name = self.last_name

        preferred_name: None | str | Unset
        if isinstance(self.preferred_name, Unset):
            preferred_name = UNSET
        else:
            preferred_name = self.preferred_name

        company_name: None | str | Unset
        if isinstance(self.company_name, Unset):
            company_name = UNSET
        else:
            company_name = self.company_name

        occupation: None | str | Unset
        if isinstance(self.occupation, Unset):
            occupation = UNSET
        else:
            occupation = self.occupation

        provider_number: None | str | Unset
        if isinstance(self.provider_number, Unset):
            provider_number = UNSET
        else:
            provider_number = self.provider_number

        email: None | str | Unset
        if isinstance(self.email, Unset):
            email = UNSET
        else:
            email = self.email

        address_1: None | str | Unset
        if isinstance(self.address_1, Unset):
            address_1 = UNSET
        else:
            address_1 = self.address_1

        address_2: None | str | Unset
        if isinstance(self.address_2, Unset):
            address_2 = UNSET
        else:
            address_2 = self.address_2

        address_3: None | str | Unset
        if isinstance(self.address_3, Unset):
            address_3 = UNSET
        else:
            address_3 = self.address_3

        city: None | str | Unset
        if isinstance(self.city, Unset):
            city = UNSET
        else:
            city = self.city

        state: None | str | Unset
        if isinstance(self.state, Unset):
            state = UNSET
        else:
            state = self.state

        post_code: None | str | Unset
        if isinstance(self.post_code, Unset):
            post_code = UNSET
        else:
            post_code = self.post_code

        country_code: None | str | Unset
        if isinstance(self.country_code, Unset):
            country_code = UNSET
        else:
            country_code = self.country_code

        notes: None | str | Unset
        if isinstance(self.notes, Unset):
            notes = UNSET
        else:
            notes = self.notes

        doctor_type: None | str | Unset
        if isinstance(self.doctor_type, Unset):
            doctor_type = UNSET
        elif isinstance(self.doctor_type, DoctorTypeWrite):
            doctor_type = self.doctor_type.value
        else:
            doctor_type = self.doctor_type

        type_code: int | None | Unset
        if isinstance(self.type_code, Unset):
            type_code = UNSET
        elif isinstance(self.type_code, TypeCode):
            type_code = self.type_code.value
        else:
            type_code = self.type_code

        phone_numbers: list[dict[str, Any]] | None | Unset
        if isinstance(self.phone_numbers, Unset):
            phone_numbers = UNSET
        elif isinstance(self.phone_numbers, list):
            phone_numbers = []
            for phone_numbers_type_0_item_data in self.phone_numbers:
                phone_numbers_type_0_item = phone_numbers_type_0_item_data.to_dict()
                phone_numbers.append(phone_numbers_type_0_item)

        else:
            phone_numbers = self.phone_numbers

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if title is not UNSET:
            field_dict["title"] = title
        if first_name is not UNSET:
            field_dict["first_name"] = first_name
        if last_name is not UNSET:
            field_dict["last_name"] = last_name
        if preferred_name is not UNSET:
            field_dict["preferred_name"] = preferred_name
        if company_name is not UNSET:
            field_dict["company_name"] = company_name
        if occupation is not UNSET:
            field_dict["occupation"] = occupation
        if provider_number is not UNSET:
            field_dict["provider_number"] = provider_number
        if email is not UNSET:
            field_dict["email"] = email
        if address_1 is not UNSET:
            field_dict["address_1"] = address_1
        if address_2 is not UNSET:
            field_dict["address_2"] = address_2
        if address_3 is not UNSET:
            field_dict["address_3"] = address_3
        if city is not UNSET:
            field_dict["city"] = city
        if state is not UNSET:
            field_dict["state"] = state
        if post_code is not UNSET:
            field_dict["post_code"] = post_code
        if country_code is not UNSET:
            field_dict["country_code"] = country_code
        if notes is not UNSET:
            field_dict["notes"] = notes
        if doctor_type is not UNSET:
            field_dict["doctor_type"] = doctor_type
        if type_code is not UNSET:
            field_dict["type_code"] = type_code
        if phone_numbers is not UNSET:
            field_dict["phone_numbers"] = phone_numbers

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.phone_number_write import PhoneNumberWrite  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_title(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        title = _parse_title(d.pop("title", UNSET))

        def _parse_first_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        first_name = _parse_first_name(d.pop("first_name", UNSET))

        def _parse_last_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_name = _parse_last_name(d.pop("last_name", UNSET))

        def _parse_preferred_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        preferred_name = _parse_preferred_name(d.pop("preferred_name", UNSET))

        def _parse_company_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        company_name = _parse_company_name(d.pop("company_name", UNSET))

        def _parse_occupation(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        occupation = _parse_occupation(d.pop("occupation", UNSET))

        def _parse_provider_number(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        provider_number = _parse_provider_number(d.pop("provider_number", UNSET))

        def _parse_email(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        email = _parse_email(d.pop("email", UNSET))

        def _parse_address_1(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        address_1 = _parse_address_1(d.pop("address_1", UNSET))

        def _parse_address_2(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        address_2 = _parse_address_2(d.pop("address_2", UNSET))

        def _parse_address_3(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        address_3 = _parse_address_3(d.pop("address_3", UNSET))

        def _parse_city(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        city = _parse_city(d.pop("city", UNSET))

        def _parse_state(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        state = _parse_state(d.pop("state", UNSET))

        def _parse_post_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        post_code = _parse_post_code(d.pop("post_code", UNSET))

        def _parse_country_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        country_code = _parse_country_code(d.pop("country_code", UNSET))

        def _parse_notes(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        notes = _parse_notes(d.pop("notes", UNSET))

        def _parse_doctor_type(data: object) -> DoctorTypeWrite | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                doctor_type_type_0 = DoctorTypeWrite(data)

                return doctor_type_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(DoctorTypeWrite | None | Unset, data)

        doctor_type = _parse_doctor_type(d.pop("doctor_type", UNSET))

        def _parse_type_code(data: object) -> None | TypeCode | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, int):
                    raise TypeError()
                type_code_type_0 = TypeCode(data)

                return type_code_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | TypeCode | Unset, data)

        type_code = _parse_type_code(d.pop("type_code", UNSET))

        def _parse_phone_numbers(data: object) -> list[PhoneNumberWrite] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                phone_numbers_type_0 = []
                _phone_numbers_type_0 = data
                for phone_numbers_type_0_item_data in _phone_numbers_type_0:
                    phone_numbers_type_0_item = PhoneNumberWrite.from_dict(phone_numbers_type_0_item_data)

                    phone_numbers_type_0.append(phone_numbers_type_0_item)

                return phone_numbers_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[PhoneNumberWrite] | None | Unset, data)

        phone_numbers = _parse_phone_numbers(d.pop("phone_numbers", UNSET))

        contact_write = cls(
            title=title,
            first_name=first_name,
            last_name=last_name,
            preferred_name=preferred_name,
            company_name=company_name,
            occupation=occupation,
            provider_number=provider_number,
            email=email,
            address_1=address_1,
            address_2=address_2,
            address_3=address_3,
            city=city,
            state=state,
            post_code=post_code,
            country_code=country_code,
            notes=notes,
            doctor_type=doctor_type,
            type_code=type_code,
            phone_numbers=phone_numbers,
        )

        contact_write.additional_properties = d
        return contact_write

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
