"""A client library for accessing Cliniko contacts API"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import AuthenticatedClient, Client

__all__ = (
    "AuthenticatedClient",
    "Client",
)


def __getattr__(name: str) -> Any:
    # The clients, and httpx with them, load on first use (scripts/client_templates): a function
    # that only reads the models (the intake API's field rules) skips httpx at a cold start.
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
