"""A clinic's website for the local run: the embeddable HTML form, a thank-you and a problem page,
plus the local run's console (fire a scheduled function, see the contacts).

The website has its own origin (not the API's), as a clinic's site would: the API allows it
through the template's AllowedOrigins and the html form source's allowed_origins.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .template import UnknownSchedule

# What a clinic pastes into its website (README shows the same). Each field has its own label;
# required ones carry `required` (announced by screen readers) and a visible marker.
# `website` is the honeypot: hidden from people, filled in by bots; a filled one is answered like
# a success and dropped.
FORM_SNIPPET = """\
<form action="{action}" method="post">
  <p>Required fields are marked with an asterisk (*).</p>
  <label for="contact-name">Name <span aria-hidden="true">*</span></label>
  <input id="contact-name" name="name" autocomplete="name" required>
  <label for="contact-email">Email <span aria-hidden="true">*</span></label>
  <input id="contact-email" name="email" type="email" autocomplete="email" required>
  <label for="contact-phone">Phone</label>
  <input id="contact-phone" name="phone" type="tel" autocomplete="tel">
  <label for="contact-organisation">Organisation</label>
  <input id="contact-organisation" name="organisation" autocomplete="organization">
  <label for="contact-message">Message</label>
  <textarea id="contact-message" name="message" rows="4"></textarea>
  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <label>Website <input name="website" tabindex="-1" autocomplete="off"></label>
  </div>
  <!-- Optional Cloudflare Turnstile (set html.captcha in form_sources.yaml):
  <div class="cf-turnstile" data-sitekey="YOUR-SITE-KEY"></div>
  <script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script>
  -->
  <button type="submit">Send</button>
</form>"""

# The form's input names and what the page calls them (the problem page names fields by these).
FIELD_LABELS = {
    "name": "Name",
    "email": "Email",
    "phone": "Phone",
    "organisation": "Organisation",
    "message": "Message",
}

# Responsive down to a phone (390 px and less): the viewport follows the device, nothing is
# wider than the screen, inputs use 16 px text (so phones do not zoom in on focus).
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
*,*::before,*::after{{box-sizing:border-box}}
body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:0 auto;padding:1rem;color:#1a1a1a}}
h1{{font-size:1.6rem;line-height:1.25}}
label{{display:block;margin:.9rem 0 .25rem;font-weight:600}}
label span{{color:#b00020}}
input,textarea{{display:block;width:100%;font:inherit;padding:.55rem;
  border:1px solid #6b6b6b;border-radius:4px}}
button,.button{{display:inline-block;font:inherit;margin-top:1.2rem;padding:.65rem 1.4rem;
  border:0;border-radius:4px;background:#0b5cad;color:#fff;text-decoration:none}}
.problem{{border-left:4px solid #b00020;background:#fdecee;padding:.75rem 1rem;margin:1rem 0}}
</style>
</head><body><main><h1>{title}</h1>{content}</main></body></html>"""

# The intake's fixed reasons (`error=` on the problem page's address): what a person is told.
# Anything else gets the generic text: the page never shows what the address says verbatim.
PROBLEMS = {
    "validation": "Some details need another look.",
    "captcha": (
        "We could not confirm that a person sent the form: the captcha check was missing or"
        " failed. Please complete the check again and resend."
    ),
    "too_large": "The form was too long to send. Please shorten your message.",
    "unavailable": "We could not take your details just now. Please try again in a few minutes.",
}
GENERIC_PROBLEM = "Your details could not be sent. Please check them and try again."
# A form input's name as the problem page may show it (after escaping): letters, digits, _-.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def problem_page(query: str) -> str:
    """The problem page for the intake's redirect: `error` (a reason) picks a fixed message,
    `fields` (comma-separated input names) is shown by their labels. Both are whitelisted and
    escaped: nothing from the address reaches the page as markup."""
    params = dict(parse_qsl(query))
    reason = params.get("error", "")
    lines = [f'<div class="problem" role="alert"><p>{PROBLEMS.get(reason, GENERIC_PROBLEM)}</p>']
    names = [n for n in params.get("fields", "").split(",") if _SAFE_NAME.fullmatch(n)]
    if names:
        lines.append("<p>Please check:</p><ul>")
        lines += [f"<li>{html.escape(FIELD_LABELS.get(n, n))}</li>" for n in dict.fromkeys(names)]
        lines.append("</ul>")
    lines.append("</div>")
    lines.append(
        "<p>Your browser's Back button returns to the form with what you typed.</p>"
        '<a class="button" href="/">Back to the form</a>'
    )
    return PAGE.format(title="Your details were not sent", content="".join(lines))


# The Turnstile widget puts its token in this field; the widget's script is on the internet,
# so the local page fills in Cloudflare's test token itself.
CAPTCHA_STAND_IN = (
    '  <input type="hidden" name="{field}" value="{token}">'
    "  <!-- local stand-in for the Turnstile widget -->\n"
)


def form_page(action: str, captcha_field: str | None = None, token: str = "") -> str:
    snippet = FORM_SNIPPET.format(action=html.escape(action, quote=True))
    if captcha_field:
        marker = '  <button type="submit">'
        snippet = snippet.replace(
            marker, CAPTCHA_STAND_IN.format(field=captcha_field, token=token) + marker
        )
    return PAGE.format(
        title="Contact the clinic",
        content="<p>Referrers and partners: leave your details and we will add you.</p>" + snippet,
    )


class Site:
    def __init__(
        self,
        form_action: Callable[[], str],
        fire: Callable[[str], Any],
        status: Callable[[], dict[str, Any]],
        *,
        captcha_field: Callable[[], str | None] = lambda: None,
        captcha_token: str = "",
        events: Callable[[], dict[str, Any]] = dict,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.form_action = form_action
        self.fire = fire
        self.status = status
        self.events = events
        self.captcha_field = captcha_field
        self.captcha_token = captcha_token
        # Secrets the siteverify stand-in accepts (the local values of the captcha secrets).
        self.captcha_secrets: set[str] = set()
        self.captcha_checks = 0
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Site:
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str, content_type: str = "text/html") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path in ("/", "/contact"):
                page = form_page(site.form_action(), site.captcha_field(), site.captcha_token)
                self._send(200, page)
            elif path == "/thanks":
                self._send(200, PAGE.format(title="Thank you", content="<p>We got it.</p>"))
            elif path == "/problem":
                self._send(200, problem_page(urlsplit(self.path).query))
            elif path == "/_local/status":
                self._send(200, json.dumps(site.status(), indent=2), "application/json")
            elif path == "/_local/events":
                self._send(200, json.dumps(site.events(), indent=2), "application/json")
            else:
                self._send(404, PAGE.format(title="Not found", content=""))

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if path == "/_local/siteverify":
                # Answers as Turnstile's siteverify does with test keys: the test token and
                # the right secret pass, anything else fails.
                form = dict(parse_qsl(body.decode("utf-8", "replace")))
                site.captcha_checks += 1
                success = (
                    form.get("response") == site.captcha_token
                    and form.get("secret") in site.captcha_secrets
                )
                answer = {"success": success}
                if not success:
                    answer["error-codes"] = ["invalid-input-response"]
                self._send(200, json.dumps(answer), "application/json")
                return
            prefix = "/_local/schedules/"
            if path.startswith(prefix):
                name = path[len(prefix) :]
                try:
                    result = site.fire(name)
                except UnknownSchedule:
                    known = ", ".join(site.status().get("schedules", []))
                    message = f"no scheduled function {name}: fire one of {known}"
                    self._send(404, json.dumps({"message": message}))
                    return
                except Exception as error:
                    # The function failed, as a Lambda invocation does: its error's kind (its
                    # message may quote a value), where the connection was dropped, a traceback
                    # in the local run's terminal and `fire` told "Server disconnected".
                    failed = {"function": name, "error": type(error).__name__}
                    self._send(500, json.dumps(failed), "application/json")
                    return
                self._send(200, json.dumps({"function": name, "result": result}, default=str))
                return
            self._send(404, json.dumps({"message": "Not Found"}), "application/json")

    return Handler
