"""What an operator is told to fix when Cliniko refuses the deployment's own settings."""

from __future__ import annotations

from cliniko_automations.cliniko.errors import Forbidden, UserAgentRefused
from cliniko_automations.common.misconfiguration import diagnose


def test_a_refused_user_agent_names_the_stack_parameter_not_the_key_s_secret():
    refused = UserAgentRefused("Cliniko refused GET /contacts for its User-Agent", status_code=403)
    found = diagnose(refused, secret="cliniko-automations/accounts/main/api-key")
    assert found is not None
    assert (found.reason, found.setting) == ("cliniko_user_agent_refused", "ClinikoUserAgent")
    assert "api-key" not in found.message
    # A 403 for the key's user still names the key's secret.
    forbidden = diagnose(
        Forbidden("no permission", status_code=403),
        secret="cliniko-automations/accounts/main/api-key",
    )
    assert forbidden is not None and forbidden.reason == "cliniko_forbidden"
    assert "api-key" in forbidden.setting
