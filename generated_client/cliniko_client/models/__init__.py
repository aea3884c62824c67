"""Contains all the data models used in inputs/outputs"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .contact import Contact
    from .contact_links import ContactLinks
    from .contact_list import ContactList
    from .contact_list_links import ContactListLinks
    from .contact_type import ContactType
    from .contact_write import ContactWrite
    from .doctor_type import DoctorType
    from .doctor_type_write import DoctorTypeWrite
    from .error_message import ErrorMessage
    from .phone_number import PhoneNumber
    from .phone_number_write import PhoneNumberWrite
    from .phone_type import PhoneType
    from .type_code import TypeCode
    from .validation_error import ValidationError
    from .validation_error_errors import ValidationErrorErrors

__all__ = (
    "Contact",
    "ContactLinks",
    "ContactList",
    "ContactListLinks",
    "ContactType",
    "ContactWrite",
    "DoctorType",
    "DoctorTypeWrite",
    "ErrorMessage",
    "PhoneNumber",
    "PhoneNumberWrite",
    "PhoneType",
    "TypeCode",
    "ValidationError",
    "ValidationErrorErrors",
)

# Where each model lives. A model loads on first use (scripts/client_templates): a function
# that reads three models (the intake API's field rules) does not load every one at a cold start.
_MODULES = {
    "Contact": ".contact",
    "ContactLinks": ".contact_links",
    "ContactList": ".contact_list",
    "ContactListLinks": ".contact_list_links",
    "ContactType": ".contact_type",
    "ContactWrite": ".contact_write",
    "DoctorType": ".doctor_type",
    "DoctorTypeWrite": ".doctor_type_write",
    "ErrorMessage": ".error_message",
    "PhoneNumber": ".phone_number",
    "PhoneNumberWrite": ".phone_number_write",
    "PhoneType": ".phone_type",
    "TypeCode": ".type_code",
    "ValidationError": ".validation_error",
    "ValidationErrorErrors": ".validation_error_errors",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
