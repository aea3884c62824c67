"""A clinic's website for the local run: the embeddable HTML form, a thank-you and a problem page,
plus the local run's console (fire a scheduled function, see the contacts).

The website has its own origin (not the API's), as a clinic's site would: the API allows it
through the template's AllowedOrigins and the html form source's allowed_origins.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# What a clinic pastes into its website (README shows the same). `website` is the honeypot:
# hidden from people, filled in by bots; a filled one is answered like a success and dropped.
FORM_SNIPPET = """\
<form action="{action}" method="post">
  <label>Name <input name="name" autocomplete="name" required></label>
  <label>Email <input name="email" type="email" autocomplete="email" required></label>
  <label>Phone <input name="phone" type="tel" autocomplete="tel"></label>
  <label>Organisation <input name="organisation" autocomplete="organization"></label>
  <label>Message <textarea name="message"></textarea></label>
  <div style="position:absolute;left:-10000px" aria-hidden="true">
    <label>Website <input name="website" tabindex="-1" autocomplete="off"></label>
  </div>
  <!-- Optional Cloudflare Turnstile (set html.captcha in form_sources.yaml):
  <div class="cf-turnstile" data-sitekey="YOUR-SITE-KEY"></div>
  <script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer></script>
  -->
  <button type="submit">Send</button>
</form>"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40rem;margin:2rem auto}}
label{{display:block;margin:.5rem 0}}input,textarea{{display:block;width:100%}}</style>
</head><body><h1>{title}</h1>{content}</body></html>"""


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
                content = "<p>Your details could not be sent. Please check them and try again.</p>"
                self._send(200, PAGE.format(title="Something went wrong", content=content))
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
                except KeyError:
                    self._send(404, json.dumps({"message": f"no scheduled function {name}"}))
                    return
                self._send(200, json.dumps({"function": name, "result": result}, default=str))
                return
            self._send(404, json.dumps({"message": "Not Found"}), "application/json")

    return Handler
