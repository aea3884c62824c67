"""The browser path, in real headless Chromium (Debian's, driven by Playwright): the clinic's
page with the embeddable form, served by the local run, posting to the local HTTP API.

Screenshots of the pages at a phone's width go to test-artifacts/browser/ (git ignores it)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cliniko_emulator import EmulatorControl
from local_run.system import LocalSystem
from local_run.template import ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
PHONE = {"width": 390, "height": 844}  # a current phone's viewport in CSS pixels

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


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True)
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


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def fits_the_phone(page) -> None:
    """Nothing wider than the screen, and text kept off its edges."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in ("h1", "p", "label", "input[name=email]", "button, .button", "li"):
        for element in page.locator(selector).all():
            if element.evaluate("e => !!e.closest('[aria-hidden=true]')"):
                continue  # the honeypot: off screen on purpose
            box = element.bounding_box()
            assert box["x"] >= 8 and box["x"] + box["width"] <= PHONE["width"] - 8, selector


def test_the_form_on_a_phone_has_labels_and_required_markers(system, phone):
    phone.goto(f"{system.site.url}/")
    viewport = phone.locator("meta[name=viewport]").get_attribute("content")
    assert "width=device-width" in viewport
    for label, required in [("Name", True), ("Email", True), ("Phone", False), ("Message", False)]:
        field = phone.get_by_label(label, exact=False).first
        assert field.evaluate("e => e.required") is required, label
        marker = phone.locator(f"label[for='{field.get_attribute('id')}']").inner_text()
        assert marker.strip().endswith("*") is required, label
    fits_the_phone(phone)
    assert screenshot(phone, "form-390px").stat().st_size > 0


def send_without_browser_checks(page, **values: str) -> None:
    """Submit as a browser would once its own checks are passed (the server checks again)."""
    page.evaluate("document.querySelector('form').noValidate = true")
    fill_form(page, **values)
    page.click("button[type=submit]")


def test_the_problem_page_names_the_fields_to_check(system, phone):
    phone.goto(f"{system.site.url}/")
    with phone.expect_navigation(url=f"{system.site.url}/problem**"):
        send_without_browser_checks(phone, name="Dorothy Vaughan", email="not-an-email")
    assert "error=validation" in phone.url and "fields=email" in phone.url
    alert = phone.get_by_role("alert")
    assert "Some details need another look" in alert.inner_text()
    assert alert.locator("li").all_inner_texts() == ["Email"]
    fits_the_phone(phone)
    assert screenshot(phone, "problem-fields-390px").stat().st_size > 0
    phone.get_by_role("link", name="Back to the form").click()
    assert phone.locator("h1").inner_text() == "Contact the clinic"
    assert system.drain(30)
    assert contacts(system) == []


def test_the_problem_page_says_the_captcha_failed(system, phone):
    phone.goto(f"{system.site.url}/")
    # As if the Turnstile widget had not run: no token in the form.
    phone.evaluate(f"document.querySelector('[name={system.captcha_field}]').remove()")
    with phone.expect_navigation(url=f"{system.site.url}/problem**"):
        send_without_browser_checks(phone, name="Dorothy Vaughan", email="dv@example.com")
    assert "error=captcha" in phone.url
    assert "captcha check was missing or failed" in phone.get_by_role("alert").inner_text()
    fits_the_phone(phone)
    assert screenshot(phone, "problem-captcha-390px").stat().st_size > 0


def test_the_problem_page_shows_nothing_of_a_crafted_address(system, phone):
    crafted = "error=%3Cimg%20src%3Dx%3E&fields=email,%3Cscript%3Ealert(1)%3C/script%3E,phone"
    phone.goto(f"{system.site.url}/problem?{crafted}")
    alert = phone.get_by_role("alert")
    assert "could not be sent" in alert.inner_text()
    assert alert.locator("li").all_inner_texts() == ["Email", "Phone"]
    assert phone.locator("img, script").count() == 0
