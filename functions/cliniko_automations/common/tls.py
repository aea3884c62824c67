"""The process's TLS context for outgoing HTTPS (Cliniko, captcha services): one per process.

Loading certifi's bundle (`cafile`) makes OpenSSL decode all of its ~120 roots before the first
request: about 200 M instructions, a seventh of a minimal handler's whole cold start. The build
(scripts/build.py) ships the same roots as an OpenSSL hashed directory beside this module, one
file per root named by its subject hash, from which OpenSSL reads only the roots a handshake
asks for (`capath`). Run from the source tree (tests, the local run) there is no directory and
the bundle is loaded as before. SSL_CERT_FILE or SSL_CERT_DIR, when set, win, as they do for
httpx: an operator behind an intercepting proxy keeps that way to trust its CA.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

CA_DIRECTORY_NAME = "ca_certificates"
CA_DIRECTORY = Path(__file__).with_name(CA_DIRECTORY_NAME)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Certificate and host name checked; safe to share between threads once made."""
    chosen = os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")
    if not chosen and CA_DIRECTORY.is_dir():
        return ssl.create_default_context(capath=str(CA_DIRECTORY))
    import httpx  # its callers have loaded it already

    return httpx.create_ssl_context()
