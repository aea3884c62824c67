"""The Cliniko contacts client runtime: the generated `cliniko_client`, wrapped.

from cliniko_automations.cliniko import ClinikoClient, errors
from cliniko_automations.cliniko.filters import StringFilter, NumericFilter, DateTimeFilter

The names below load on first use (PEP 562), so a function that needs only `rules` (the
intake endpoint) does not pay for httpx and the generated client on its cold start.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "ClinikoClient": ("client", "ClinikoClient"),
    "RetryPolicy": ("transport", "RetryPolicy"),
    "Contact": ("cliniko_client.models", "Contact"),
    "ContactWrite": ("cliniko_client.models", "ContactWrite"),
    "errors": ("errors", None),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = import_module(module_name if "." in module_name else f"{__name__}.{module_name}")
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
