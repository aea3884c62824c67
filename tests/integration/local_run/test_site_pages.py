"""The sample website's pages as HTML: the problem page reads `error` and `fields` through
whitelists, so nothing from its address reaches the page as markup."""

from __future__ import annotations

from local_run.site import FORM_SNIPPET, form_page, problem_page


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
