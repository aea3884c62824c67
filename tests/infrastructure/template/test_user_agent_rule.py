"""One User-Agent rule: template.yaml's AllowedPattern (what CloudFormation lets deploy) and the
client runtime's check (what the functions accept) agree on every example, and the parameter's
ConstraintDescription says the rule the runtime says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cliniko_automations.cliniko.config import (
    USER_AGENT_RULE,
    USER_AGENT_RULE_TEXT,
    check_user_agent,
)
from cliniko_automations.cliniko.errors import ConfigurationError
from local_run.template import load

ROOT = Path(__file__).resolve().parents[3]
PARAMETER = load(ROOT / "template.yaml")["Parameters"]["ClinikoUserAgent"]
# CloudFormation matches the whole value against AllowedPattern.
TEMPLATE_PATTERN = re.compile(PARAMETER["AllowedPattern"])

EXAMPLES = {
    "Clinic automations (it@example.com)": True,
    "Clinic automations dev (it@example.com)": True,
    "Acme (it+cliniko@acme.example)": True,
    "St. Mary's Physio & Rehab v2 (ops@st-marys.co.uk)": True,
    "A (a@b.co)": True,
    "Clinique \u00c9lan (it@clinique.fr)": False,  # not ASCII: cannot be a header value
    "Clinique Elan (it@clinique.fr)": True,
    "Clinic (it@localhost)": False,  # no dotted domain
    "Clinic (it@.com)": False,
    "Clinic  automations (it@example.com)": False,  # double space between words
    "Clinic automations  (it@example.com)": False,  # double space before the e-mail
    " Clinic (it@example.com)": False,
    "Clinic (it@example.com) ": False,
    "Clinic (it@example.com)\n": False,
    "Clinic (it@example.com)\r\nX-Evil: 1": False,
    "Clinic\tautomations (it@example.com)": False,
    "Clinic automations it@example.com": False,
    "Clinic(it@example.com)": False,
    "(it@example.com)": False,
    "Clinic ( it@example.com)": False,
    "Clinic (it@@example.com)": False,
    "Clinic (it @example.com)": False,
    "Clinic (Name) (it@example.com)": False,
    "Clinic automations": False,
    "Clinic": False,  # what SAM passes for an unquoted override
    "": False,
}


def _runtime_accepts(user_agent: str) -> bool:
    try:
        check_user_agent(user_agent)
    except ConfigurationError:
        return False
    return True


@pytest.mark.parametrize(("user_agent", "valid"), EXAMPLES.items())
def test_template_and_runtime_agree(user_agent: str, valid: bool):
    assert bool(TEMPLATE_PATTERN.fullmatch(user_agent)) is valid
    assert _runtime_accepts(user_agent) is valid


def test_the_rule_is_stated_once():
    assert PARAMETER["AllowedPattern"] == USER_AGENT_RULE
    assert PARAMETER["ConstraintDescription"] == USER_AGENT_RULE_TEXT
    assert "ASCII" in PARAMETER["ConstraintDescription"]


def test_a_refusal_states_the_rule():
    with pytest.raises(ConfigurationError) as refused:
        check_user_agent("Clinique \u00c9lan (it@clinique.fr)")
    assert USER_AGENT_RULE_TEXT in refused.value.message
