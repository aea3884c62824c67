"""scripts/build.py's --secrets-prefix: a value the template's SecretsPrefix would refuse at
deploy (it must end in "/") stops the build, instead of passing every check."""

from __future__ import annotations

import pytest

from .conftest import build_script


@pytest.mark.parametrize("prefix", ["cliniko-automations", "clinic prefix/", ""])
def test_a_secrets_prefix_the_template_refuses_stops_the_build(prefix: str, tmp_path) -> None:
    with pytest.raises(SystemExit, match="SecretsPrefix"):
        build_script().stage(tmp_path / "staged", secrets_prefix=prefix)
    assert not (tmp_path / "staged").exists()


def test_a_secrets_prefix_the_template_takes_passes() -> None:
    build_script().check_parameter("SecretsPrefix", "clinic-a/cliniko/")
