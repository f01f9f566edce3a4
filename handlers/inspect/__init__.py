"""The `inspect` handler: an HTTPS page showing the visitor this connection's own handshake.

`GET /` is one self-contained HTML page (page.py), `GET /json` the same report as JSON
for curl and scripts (report.py); anything else is 404. The handler declares
`records_handshake = True`, so serve() records the handshake's observations for it on
`stream.handshake_record` (secrets removed); with `stream.info` that is all the report needs.
The report is built at the first request and each form rendered once per connection, with
at most MAX_ENTRIES of each of the ClientHello's lists. The HTTP is the loop hello uses too
(http11.py). Responses are never cached (each connection has its own handshake) and carry a
Content-Security-Policy that allows nothing but the page's inline style, which also proves the
page needs nothing from elsewhere.
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
from .report import HandshakeReport, build_report

_OPTIONS = frozenset({"max-requests"})
# The entries of each ClientHello list described: far more than any real client sends (a
# browser offers about 16 suites and 18 extensions), far fewer than a hostile hello's 16,383.
MAX_ENTRIES = 128
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
        reports: list[HandshakeReport] = []
        bodies: dict[bytes, bytes] = {}

        def respond(request: h11.Request) -> Response:
            path = request.target.split(b"?", 1)[0]
            if path not in (b"/", b"/json"):
                return Response(404, "text/plain; charset=utf-8", NOT_FOUND)
            if not reports:
                # Once per connection, with the record as it is at the first request (the
                # first application record received is in it, the first sent is not yet): a
                # client repeating requests must not repeat the work.
                connection = info if isinstance(info, ConnectionInfo) else None
                reports.append(build_report(connection, record, MAX_ENTRIES))
            if path not in bodies:
                bodies[path] = _body(reports[0], json_form=path == b"/json")
            if path == b"/json":
                return Response(200, "application/json", bodies[path], HEADERS)
            return Response(200, "text/html; charset=utf-8", bodies[path], HEADERS)

        await serve_http(stream, respond, self.max_requests)


def _body(report: HandshakeReport, *, json_form: bool) -> bytes:
    if json_form:
        return (json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n").encode()
    return render(report).encode()


def make_handler(options: Mapping[str, str]) -> Handler:
    """Build the page; `max-requests=N` (default 100) bounds the requests on one connection."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(f"inspect: unknown option {unknown[0]!r} (options: max-requests)")
    text = options.get("max-requests", str(DEFAULT_MAX_REQUESTS))
    return Inspect(parse_max_requests("inspect", text))
