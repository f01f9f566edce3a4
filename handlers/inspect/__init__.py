"""The `inspect` handler: an HTTPS page showing the visitor this connection's own handshake.

`GET /` is one self-contained HTML page (page.py), `GET /json` the same report as JSON
for curl and scripts (report.py); anything else is 404. The handler declares
`records_handshake = True`, so serve() records the handshake's observations for it on
`stream.handshake_record` (secrets removed); with `stream.info` that is all the report needs.
The HTTP is the loop hello uses too (http11.py). Responses are never cached (each connection
has its own handshake) and carry a Content-Security-Policy that allows nothing but the page's
inline style, which also proves the page needs nothing from elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

import attrs
import h11
import trio

from trio_tls.engine.events import ConnectionInfo
from trio_tls.server.handler import Handler

from ..http11 import DEFAULT_MAX_REQUESTS, Response, parse_max_requests, serve_http
from .page import render
from .report import build_report

_OPTIONS = frozenset({"max-requests"})
NOT_FOUND = b"404 Not Found: the page is / and its JSON /json\n"
HEADERS = (
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
)


@attrs.frozen
class Inspect:
    """The handler; HTTP/1.1 only, said in ALPN (RFC 7301)."""

    max_requests: int = DEFAULT_MAX_REQUESTS
    alpn_protocols: ClassVar[tuple[str, ...]] = ("http/1.1",)
    records_handshake: ClassVar[bool] = True

    async def __call__(self, stream: trio.abc.Stream) -> None:
        info = getattr(stream, "info", None)
        record = getattr(stream, "handshake_record", None)

        def respond(request: h11.Request) -> Response:
            # The record may still grow (the first application record each way), so the
            # report is made per request.
            path = request.target.split(b"?", 1)[0]
            if path not in (b"/", b"/json"):
                return Response(404, "text/plain; charset=utf-8", NOT_FOUND)
            report = build_report(info if isinstance(info, ConnectionInfo) else None, record)
            if path == b"/json":
                body = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
                return Response(200, "application/json", body.encode(), HEADERS)
            return Response(200, "text/html; charset=utf-8", render(report).encode(), HEADERS)

        await serve_http(stream, respond, self.max_requests)


def make_handler(options: Mapping[str, str]) -> Handler:
    """Build the page; `max-requests=N` (default 100) bounds the requests on one connection."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"inspect: unknown option {unknown[0]!r} (options: max-requests)")
    text = options.get("max-requests", str(DEFAULT_MAX_REQUESTS))
    return Inspect(parse_max_requests("inspect", text))
