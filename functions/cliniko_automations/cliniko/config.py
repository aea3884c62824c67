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
PER_PAGE = 100  # Cliniko's largest page: 1,000 contacts cost 10 requests.

# New shards appear over time (au5, us1), so the suffix is checked by shape, not by a list.
SHARD_PATTERN = re.compile(r"[a-z]{2}[0-9]{1,2}")
# The User-Agent rule, stated once: template.yaml's ClinikoUserAgent AllowedPattern is this very
# string (a test keeps them equal), so CloudFormation refuses at deploy what the runtime would.
# "Name (email)": a name of printable-ASCII words without parentheses, one space between words,
# then one space and an e-mail in parentheses whose domain has a dot (Cliniko wants a contact
# address, "it@localhost" is none). ASCII only: an HTTP header value must encode as ASCII, and
# control characters would split it. The syntax is common to Python and Java (CloudFormation).
USER_AGENT_RULE = (
    r"^[\x21-\x27\x2a-\x7e]+( [\x21-\x27\x2a-\x7e]+)*"
    r" \([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\)$"
)
USER_AGENT_PATTERN = re.compile(USER_AGENT_RULE)
# Said wherever a User-Agent is refused, and in the parameter's ConstraintDescription.
USER_AGENT_RULE_TEXT = (
    "must read 'Name (email)': ASCII only (HTTP headers are ASCII, so no accented letters), "
    "single spaces, an e-mail whose domain has a dot, e.g. 'Acme Clinic Intake (it@acme.example)'"
)
# Keys are printable ASCII; anything else is a copy-paste accident (a newline in a secret).
_KEY_FORBIDDEN = re.compile(r"[^\x21-\x7e]")
# Cliniko's keys are under 100 characters. A secret holding far more is a paste accident (a whole
# file, a key pasted twice), and sent it becomes a header Cliniko answers with 431, which reads as
# an outage rather than a secret to fix.
API_KEY_MAX_LENGTH = 500


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
            "(two lower-case letters and one or two digits); check the key was copied whole",
            setting="api_key",
        )
    return suffix


def check_api_key(api_key: object) -> None:
    if not isinstance(api_key, str) or not api_key:
        raise ConfigurationError("the Cliniko API key is empty or not a string", setting="api_key")
    if _KEY_FORBIDDEN.search(api_key):
        raise ConfigurationError(
            "the Cliniko API key contains whitespace, control or non-ASCII characters; "
            "check the secret holds the key alone",
            setting="api_key",
        )
    if len(api_key) > API_KEY_MAX_LENGTH:
        raise ConfigurationError(
            f"the Cliniko API key is {len(api_key)} characters long, and Cliniko's are under 100; "
            "check the secret holds the key alone",
            setting="api_key",
        )


def basic_auth_header(api_key: str) -> str:
    """`Basic base64(key + ":")`: the key is the user name, the password is empty."""
    check_api_key(api_key)
    token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
    return f"Basic {token}"


def check_user_agent(user_agent: object) -> str:
    """The User-Agent if it reads `Name (email)`; Cliniko may block anything else."""
    if not isinstance(user_agent, str) or not USER_AGENT_PATTERN.fullmatch(user_agent):
        raise ConfigurationError(f"the User-Agent {USER_AGENT_RULE_TEXT}", setting="user_agent")
    return user_agent


def resolve_base_url(shard: str, base_url: str | None = None) -> str:
    """The API root for a shard: Cliniko's by default, or an override (may hold `{shard}`)."""
    template = DEFAULT_BASE_URL if base_url is None else base_url
    if not isinstance(template, str) or not template.strip():
        raise ConfigurationError("the Cliniko base URL is empty", setting="base_url")
    template = template.strip()
    unknown = set(re.findall(r"\{([^{}]*)\}", template)) - {"shard"}
    if unknown:
        raise ConfigurationError(
            "the Cliniko base URL may contain only the {shard} placeholder", setting="base_url"
        )
    url = template.replace("{shard}", shard).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            "the Cliniko base URL must be an absolute http(s) URL", setting="base_url"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(
            "the Cliniko base URL must not carry a query, a fragment or credentials",
            setting="base_url",
        )
    return url
