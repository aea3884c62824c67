"""How a client is configured: shard from the key, auth header, User-Agent, base URL.

Pure functions, no I/O, so the rules are unit-tested without any server. Error messages never
quote the API key (not even its suffix when the suffix is malformed: it could be most of it).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from .errors import ConfigurationError

DEFAULT_BASE_URL = "https://api.{shard}.cliniko.com/v1"
DEFAULT_SHARD = "au1"

# New shards appear over time (au5, us1), so the suffix is checked by shape, not by a list.
SHARD_PATTERN = re.compile(r"[a-z]{2}[0-9]{1,2}")
# "Name (email)": a name without parentheses, one space, an email in parentheses. Loose on
# the email like Cliniko's own check, strict on the shape so a bare name is refused. Printable
# ASCII only: a header value must encode as ASCII, and control characters would split it.
_NAME_CHAR = r"[\x20-\x27\x2a-\x7e]"
_NAME_EDGE = r"[\x21-\x27\x2a-\x7e]"
_EMAIL_CHAR = r"[\x21-\x27\x2a-\x3f\x41-\x7e]"
USER_AGENT_PATTERN = re.compile(
    rf"(?P<name>{_NAME_EDGE}(?:{_NAME_CHAR}*{_NAME_EDGE})?) "
    rf"\((?P<email>{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+)\)"
)
# Keys are printable ASCII; anything else is a copy-paste accident (a newline in a secret).
_KEY_FORBIDDEN = re.compile(r"[^\x21-\x7e]")


def shard_for_key(api_key: str) -> str:
    """The shard a key lives on: the suffix after the last `-`, or au1 when there is none.

    A key that has a `-` but whose suffix is not shaped like a shard (`au2`, `uk1`, `ca1`)
    is refused: defaulting to au1 would send the key to the wrong region and get a bare 401.
    """
    check_api_key(api_key)
    if "-" not in api_key:
        return DEFAULT_SHARD
    suffix = api_key.rsplit("-", 1)[1]
    if not SHARD_PATTERN.fullmatch(suffix):
        raise ConfigurationError(
            "the API key's suffix after the last '-' is not a shard name like 'au1' or 'uk2' "
            "(two lower-case letters and one or two digits); check the key was copied whole"
        )
    return suffix


def check_api_key(api_key: object) -> None:
    if not isinstance(api_key, str) or not api_key:
        raise ConfigurationError("the Cliniko API key is empty or not a string")
    if _KEY_FORBIDDEN.search(api_key):
        raise ConfigurationError(
            "the Cliniko API key contains whitespace, control or non-ASCII characters; "
            "check the secret holds the key alone"
        )


def basic_auth_header(api_key: str) -> str:
    """`Basic base64(key + ":")`: the key is the user name, the password is empty."""
    check_api_key(api_key)
    token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
    return f"Basic {token}"


def check_user_agent(user_agent: object) -> str:
    """The User-Agent if it reads `Name (email)`; Cliniko may block anything else."""
    if not isinstance(user_agent, str) or not USER_AGENT_PATTERN.fullmatch(user_agent):
        raise ConfigurationError(
            "the User-Agent must read 'Name (email)', e.g. 'Acme Clinic Intake (it@acme.example)'"
        )
    return user_agent


def resolve_base_url(shard: str, base_url: str | None = None) -> str:
    """The API root for a shard: Cliniko's by default, or an override (may hold `{shard}`)."""
    template = DEFAULT_BASE_URL if base_url is None else base_url
    if not isinstance(template, str) or not template.strip():
        raise ConfigurationError("the Cliniko base URL is empty")
    template = template.strip()
    unknown = set(re.findall(r"\{([^{}]*)\}", template)) - {"shard"}
    if unknown:
        raise ConfigurationError("the Cliniko base URL may contain only the {shard} placeholder")
    url = template.replace("{shard}", shard).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError("the Cliniko base URL must be an absolute http(s) URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            "the Cliniko base URL must not carry a query, a fragment or credentials"
        )
    return url
