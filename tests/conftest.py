"""Fixtures shared by every test. Feature fixtures live in tests/fixtures/ as plugins."""

import os

import pytest
from hypothesis import HealthCheck, settings

# No test may reach real AWS: moto answers, and these credentials are fake on purpose.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SECURITY_TOKEN"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ClinikoAutomationsTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "tests")

# Fixture plugins, one module per concern.
pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.emulator",
]

# Property-based runs (the fuzz suite in tests/fuzz, and any test without its own
# max_examples): "quick" in the default run, "long" on demand with --hypothesis-profile=long.
_FUZZ_HEALTH = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
]
settings.register_profile(
    "quick", max_examples=25, deadline=None, suppress_health_check=_FUZZ_HEALTH
)
settings.register_profile(
    "long", max_examples=400, deadline=None, suppress_health_check=_FUZZ_HEALTH
)
settings.load_profile("quick")


# First: pytest-xdist reads the groups in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (scripts/test runs several workers), the tests of the built artifact
    share one worker: `scripts/build.py` writes one build directory, which two builds at once
    would corrupt."""
    for item in items:
        if "built" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("built-artifact"))
