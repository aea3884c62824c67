"""Two stacks of the template in one AWS account and region (production and staging, or two
clinics), each deployed under its own name: every resource one creates is its own. A name
fixed in the template (a secret, the event bus, a table) would stop the second deploy on
"already exists", or give both stacks one resource. The local run's provisioner creates the
template's queues, tables, secrets and bus in moto by the names CloudFormation would give
them; the names the template sets are checked for every type in test_template.py."""

from __future__ import annotations

from local_run import defaults
from local_run.resources import Provisioner
from local_run.template import SamApp, load

from tests.infrastructure.template.conftest import ROOT

TEMPLATE = load(ROOT / "template.yaml")
APP = SamApp(TEMPLATE)


def _provision(aws: str, stack: str, prefix: str) -> dict[str, set[str]]:
    """The stack's resources side by side with whatever the account holds: logical id ->
    its physical name and ARNs."""
    parameters = APP.parameters(
        {"ClinikoUserAgent": "Clinic (it@example.com)", "SecretsPrefix": prefix}
    )
    provisioner = Provisioner(
        APP,
        parameters,
        endpoint=aws,
        stack=stack,
        region=defaults.REGION,
        account=defaults.ACCOUNT_ID,
        secret_value=defaults.secret_value,
    )
    physical = provisioner.provision()
    return {
        name: {resource.ref, *map(str, resource.attributes.values())}
        for name, resource in physical.items()
    }


def test_two_stacks_in_one_account_and_region_provision_side_by_side(aws):
    production = _provision(aws, "cliniko-automations", "cliniko-automations/")
    staging = _provision(aws, "cliniko-automations-dev", "cliniko-automations-dev/")

    assert production.keys() == staging.keys()
    # The secrets the stack names itself, the bus, the queues and the tables among them.
    assert {"PepperSecret", "ChangeFeedHashKeySecret", "ContactEventBus"} <= production.keys()
    shared = {
        name: production[name] & staging[name]
        for name in production
        if production[name] & staging[name]
    }
    assert shared == {}
