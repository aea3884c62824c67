"""The `cliniko` fixture itself: a spec mismatch must fail the test that caused it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

INNER = textwrap.dedent(
    """
    import httpx

    def _http(cliniko):
        return httpx.Client(
            base_url=cliniko.base_url(),
            auth=(cliniko.api_key, ""),
            headers={"User-Agent": "Tests (tests@example.com)"},
        )

    def test_valid(cliniko):
        with _http(cliniko) as http:
            assert http.post("/contacts", json={"first_name": "A"}).status_code == 201

    def test_invalid_request(cliniko):
        with _http(cliniko) as http:
            assert http.get("/contacts", params={"per_page": 500}).status_code == 400

    def test_invalid_request_allowed(cliniko):
        cliniko.allow_invalid_requests()
        with _http(cliniko) as http:
            assert http.get("/contacts", params={"per_page": 500}).status_code == 400

    def test_client_helper(cliniko):
        client = cliniko.client()
        assert client.list_contacts() == []
    """
)


def test_fixture_fails_tests_that_break_the_spec(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(  # noqa: S603 - pytest on a file written above
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.fixtures.emulator",
         "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path),
         str(tmp_path / "test_inner.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    out = result.stdout
    assert "4 passed, 1 error" in out, out  # the error is the teardown
    assert "ERROR test_inner.py::test_invalid_request" in out, out
    assert "requests that break openapi.yaml" in out and "per_page" in out, out
    assert '"status": 400' in out, out
