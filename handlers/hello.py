"""The `hello` handler: answer every HTTP/1.1 GET with a fixed plain-text 200.

The HTTP itself (keep-alive, HEAD, 405 for other methods, 400 for malformed requests, the
request limit, the access log) is the shared loop in http11.py; this module only says what the
page is. A client that authenticated with a certificate is told whom the server sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs
import trio

from trio_tls.server.handler import Handler

from .http11 import (
    DEFAULT_MAX_REQUESTS,
    DEFAULT_REQUEST_TIMEOUT,
    Response,
    client_subject,
    parse_max_requests,
    parse_request_timeout,
    serve_http,
)

DEFAULT_BODY = "Hello from Python TLS!\n"  # a line, as a terminal (curl) wants it
_OPTIONS = frozenset({"body", "max-requests", "request-timeout"})


@attrs.frozen
class Hello:
    """The handler; it speaks HTTP/1.1 only, and says so in ALPN (RFC 7301)."""

    body: bytes
    max_requests: int = DEFAULT_MAX_REQUESTS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    alpn_protocols: ClassVar[tuple[str, ...]] = ("http/1.1",)

    async def __call__(self, stream: trio.abc.Stream) -> None:
        body = self.body
        subject = client_subject(stream)
        if subject is not None:  # say whom we are talking to, when the client said so
            separator = "" if body.endswith(b"\n") else "\n"
            body += f"{separator}Client certificate: {subject}\n".encode()
        page = Response(200, "text/plain; charset=utf-8", body)
        await serve_http(stream, lambda request: page, self.max_requests, self.request_timeout)


def make_handler(options: Mapping[str, str]) -> Handler:
    """Build the responder; `body=TEXT` replaces the greeting, `max-requests=N` (default 100)
    bounds the requests served on one connection, and `request-timeout=SECONDS` (default 10)
    the time a request may take to arrive from its first byte."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        known = ", ".join(sorted(_OPTIONS))
        raise ValueError(f"hello: unknown option {unknown[0]!r} (options: {known})")
    max_requests = parse_max_requests(
        "hello", options.get("max-requests", str(DEFAULT_MAX_REQUESTS))
    )
    request_timeout = parse_request_timeout(
        "hello", options.get("request-timeout", str(DEFAULT_REQUEST_TIMEOUT))
    )
    return Hello(options.get("body", DEFAULT_BODY).encode(), max_requests, request_timeout)
