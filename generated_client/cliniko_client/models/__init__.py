"""Contains all the data models used in inputs/outputs"""

from .contact import Contact
from .contact_links import ContactLinks
from .contact_list import ContactList
from .contact_list_links import ContactListLinks
from .contact_type import ContactType
from .contact_write import ContactWrite
from .doctor_type import DoctorType
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
    "ErrorMessage",
    "PhoneNumber",
    "PhoneNumberWrite",
    "PhoneType",
    "TypeCode",
    "ValidationError",
    "ValidationErrorErrors",
)
