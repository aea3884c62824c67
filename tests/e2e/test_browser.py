"""The browser path, in real headless Chromium (Debian's, driven by Playwright): the clinic's
page with the embeddable form, served by the local run, posting to the local HTTP API."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cliniko_emulator import EmulatorControl
from local_run.system import LocalSystem

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is missing: scripts/bootstrap installs it in CI")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def system(aws, cliniko, tmp_path) -> Iterator[LocalSystem]:
    local = LocalSystem(
        moto_endpoint=aws, emulator_url=cliniko.url, state_dir=tmp_path, log=io.StringIO()
    ).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def contacts(system: LocalSystem) -> list[dict]:
    with EmulatorControl(system.emulator_url) as control:
        return control.contacts()


def fill_form(page, **values: str) -> None:
    for name, value in values.items():
        page.fill(f"[name={name}]", value)


def test_a_person_fills_in_the_form_and_becomes_a_contact(system, page):
    page.goto(f"{system.site.url}/")
    fill_form(
        page,
        name="Dorothy Vaughan",
        email="dorothy.vaughan@example.com",
        phone="+61 400 000 123",
        organisation="West Area Physio",
        message="Please add me as a referrer",
    )
    with page.expect_navigation(url=f"{system.site.url}/thanks**") as navigation:
        page.click("button[type=submit]")
    thanks = navigation.value
    assert thanks.status == 200
    posted = thanks.request.redirected_from
    assert posted is not None and posted.method == "POST"
    assert posted.url == f"{system.gateway.url}/forms/website-contact-html"
    assert posted.response().status == 303
    assert page.locator("h1").inner_text() == "Thank you"
    assert system.site.captcha_checks == 1  # the form's Turnstile token was verified
    assert system.drain(30)
    (contact,) = contacts(system)
    assert contact["email"] == "dorothy.vaughan@example.com"
    assert (contact["first_name"], contact["last_name"]) == ("Dorothy", "Vaughan")
    assert contact["company_name"] == "West Area Physio"


def test_a_filled_honeypot_looks_accepted_and_creates_nothing(system, page):
    page.goto(f"{system.site.url}/")
    fill_form(page, name="Spam Bot", email="bot@example.com")
    # People never see the field; bots fill in every input they find.
    page.locator("[name=website]").fill("https://spam.example", force=True)
    with page.expect_navigation(url=f"{system.site.url}/thanks**"):
        page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Thank you"
    assert system.drain(30)
    assert contacts(system) == []


FETCH = """async ([url, json]) => {
  const init = {method: "POST", redirect: "manual"};
  // The form's own fields, captcha token included, as a script on the page would send them.
  const fields = Object.fromEntries(new FormData(document.querySelector("form")));
  Object.assign(fields, {name: "Script Kiddie", email: "script@example.com"});
  if (json) {
    init.headers = {"Content-Type": "application/json"};
    init.body = JSON.stringify(fields);
  } else {
    init.body = new URLSearchParams(fields);
  }
  try { const r = await fetch(url, init); return "answered:" + r.type; }
  catch (error) { return "refused:" + error.name; }
}"""


def test_a_page_from_another_origin_is_refused_by_cors(system, page):
    api = f"{system.gateway.url}/forms/website-contact-html"
    # The same page under another host name is another origin, not in AllowedOrigins.
    other_origin = system.site.url.replace("127.0.0.1", "localhost")
    page.goto(f"{other_origin}/")
    assert page.evaluate("location.origin") == other_origin
    assert page.evaluate(FETCH, [api, False]) == "refused:TypeError"  # simple request
    assert page.evaluate(FETCH, [api, True]) == "refused:TypeError"  # preflighted
    assert system.drain(30)
    assert contacts(system) == []

    # From the allowed origin the same script call goes through.
    page.goto(f"{system.site.url}/")
    assert page.evaluate(FETCH, [api, False]).startswith("answered:")
    assert system.drain(30)
    assert [c["email"] for c in contacts(system)] == ["script@example.com"]
