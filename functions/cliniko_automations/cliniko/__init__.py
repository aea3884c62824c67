"""The Cliniko contacts client runtime: the generated `cliniko_client`, wrapped.

from cliniko_automations.cliniko import ClinikoClient, errors
from cliniko_automations.cliniko.filters import StringFilter, NumericFilter, DateTimeFilter
"""

from cliniko_client.models import Contact, ContactWrite

from . import errors
from .client import ClinikoClient
from .transport import RetryPolicy

__all__ = ["ClinikoClient", "Contact", "ContactWrite", "RetryPolicy", "errors"]
