"""Serverless automations for Cliniko third-party contacts."""

from cliniko_automations.common.dataclass_code import use_shipped_code
from cliniko_automations.common.import_collector import pause_for_import

# First, before a handler's imports: inside a Lambda, no collections until its import ends
# (common/import_collector.py says why; each handler module ends with `import_finished`);
# the dataclasses it makes run the code the build compiled (common/dataclass_code.py).
pause_for_import()
use_shipped_code()
