"""The sample website's pages as HTML: the problem page reads `error` and `fields` through
whitelists, so nothing from its address reaches the page as markup. And its console's fire."""

from __future__ import annotations

import httpx
from local_run.site import FORM_SNIPPET, Site, form_page, problem_page
from local_run.template import UnknownSchedule


def test_the_problem_page_names_the_fields_by_their_labels():
    page = problem_page("error=validation&fields=email,organisation")
    assert "Some details need another look." in page
    assert "<li>Email</li><li>Organisation</li>" in page
    assert 'role="alert"' in page


def test_the_problem_page_says_when_the_captcha_failed():
    page = problem_page("error=captcha")
    assert "the captcha check was missing or failed" in page
    assert "<li>" not in page


def test_the_problem_page_never_reflects_the_address():
    page = problem_page(
        "error=%3Cscript%3Ealert(1)%3C/script%3E"
        "&fields=%3Cimg%20src=x%20onerror=alert(1)%3E,a%22onmouseover%3D%22x,custom_field"
    )
    assert "<script" not in page and "<img" not in page and "onmouseover" not in page
    assert "alert(1)" not in page
    assert "Your details could not be sent." in page
    # An input name the page does not know is shown as it is, when it is a plain name.
    assert "<li>custom_field</li>" in page


def test_the_pages_fit_a_phone_and_mark_required_fields():
    page = form_page("https://api.example/forms/x")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    for name, label in (("name", "Name"), ("email", "Email")):
        assert f'<label for="contact-{name}">{label} <span aria-hidden="true">*</span>' in page
        assert f'id="contact-{name}" name="{name}"' in page
    assert FORM_SNIPPET.count(" required>") == 2


def test_firing_tells_an_unknown_schedule_from_a_function_failing_with_a_key_error():
    # The console's fire goes to the local run's `fire`: an unknown name is a 404 naming the
    # schedules, and a KeyError the fired function raises is its failure (500), not a 404.
    def fire(name: str) -> object:
        if name == "Failing":
            raise KeyError("SOME_SETTING")
        raise UnknownSchedule(name)

    site = Site(lambda: "", fire, lambda: {"schedules": ["Failing"]}).start()
    try:
        unknown = httpx.post(f"{site.url}/_local/schedules/Nope")
        failing = httpx.post(f"{site.url}/_local/schedules/Failing")
    finally:
        site.stop()
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "no scheduled function Nope: fire one of Failing"}
    assert failing.status_code == 500
    assert failing.json() == {"function": "Failing", "error": "KeyError"}
