"""erasure.py in remote mode with a region AWS has no such name for: a Unicode hyphen pasted
from a document (`eu‐west‐1`) or a line end captured with it. The region goes into the SigV4
Authorization header, so the first was a UnicodeEncodeError traceback from httpx and the
second an h11 error quoting the whole header (the access key id and the signature). README
"Operating": a mistake of the environment is one line naming it; bad arguments exit 2."""

from __future__ import annotations

import os

import pytest

from tests.e2e.test_erasure_cli import SCRIPT, load_cli
from tests.integration.terminal.hostile import assert_one_line_failure, run_tool


@pytest.fixture(scope="module")
def cli():
    return load_cli()


@pytest.mark.parametrize("region", ["eu\u2010west\u20101", "eu-west-1\n"])
def test_a_region_that_is_no_region_is_one_line(cli, capsys, silent_api_url, region):
    try:
        code = cli.main(["--api-url", silent_api_url, "--region", region, "status", "x"])
        err = capsys.readouterr().err
    except SystemExit as exit_:  # argparse's exit 2, or the tool's one line
        code = exit_.code if isinstance(exit_.code, int) else 1
        err = capsys.readouterr().err + ("" if isinstance(exit_.code, int) else exit_.code)
    assert code in (1, 2)
    assert err.strip().count("\n") == 0, err
    assert "region" in err
    assert "Credential=" not in err and "Signature=" not in err


def test_a_region_from_the_environment_is_checked_too():
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu\u2010west\u20101"}
    env.pop("AWS_REGION", None)
    result = run_tool([str(SCRIPT), "--api-url", "http://127.0.0.1:9", "status", "x"], env)
    assert_one_line_failure(result)
    assert "region" in result.stderr
