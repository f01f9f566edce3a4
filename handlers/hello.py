"""The `hello` handler: answer every HTTP/1.1 request with a fixed plain-text 200.

h11 does all the HTTP: it parses requests, frames our responses, and decides keep-alive. The
loop only moves bytes between the stream and the h11 Connection and answers each Request as
soon as it is parsed; any request body is read and dropped, and once both sides finish a cycle
`start_next_cycle()` readies the connection for the next request. A malformed request gets a
400 (or h11's more precise status hint, e.g. 431 for oversized headers) and the connection ends.
GET and HEAD are served; any other method (CONNECT, POST, ...) gets 405 with `Allow`
(RFC 9110 §15.5.6). A keep-alive connection serves at most `max-requests` requests, the last
one with `Connection: close`; how long it may sit idle between them is serve()'s idle timeout,
and once the server begins shutting down (`stream.shutdown`) an idle connection ends at once,
cleanly, instead of waiting to be cancelled. Each response is logged to the `trio_tls.access`
logger, in the spirit of a web server's access log, so operators can route it on its own.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from typing import ClassVar

import attrs
import h11
import trio

from trio_tls.plugins import Handler

access_log = logging.getLogger("trio_tls.access")

CHUNK = 65536
# A request head bigger than this is refused rather than buffered without bound.
MAX_HEADER_SIZE = 16 * 1024
DEFAULT_BODY = "Hello from Python TLS!"
DEFAULT_MAX_REQUESTS = 100
ALLOWED_METHODS = (b"GET", b"HEAD")
_OPTIONS = frozenset({"body", "max-requests"})


@attrs.frozen
class Hello:
    """The handler; it speaks HTTP/1.1 only, and says so in ALPN (RFC 7301)."""

    body: bytes
    max_requests: int = DEFAULT_MAX_REQUESTS
    alpn_protocols: ClassVar[tuple[str, ...]] = ("http/1.1",)

    async def __call__(self, stream: trio.abc.Stream) -> None:
        await _serve(stream, self.body, self.max_requests)


def make_handler(options: Mapping[str, str]) -> Handler:
    """Build the responder; `body=TEXT` replaces the greeting, `max-requests=N` (default 100)
    bounds the requests served on one connection."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        known = ", ".join(sorted(_OPTIONS))
        raise ValueError(f"hello: unknown option {unknown[0]!r} (options: {known})")
    text = options.get("max-requests", str(DEFAULT_MAX_REQUESTS))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"hello: max-requests must be a whole number of at least 1, not {text!r}")
    return Hello(options.get("body", DEFAULT_BODY).encode(), int(text))


async def _serve(stream: trio.abc.Stream, body: bytes, max_requests: int) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_SIZE)
    peer = _peer(stream)
    subject = _client_subject(stream)
    if subject is not None:  # say whom we are talking to, when the client said so
        body += f"\nClient certificate: {subject}\n".encode()
    shutdown: trio.Event | None = getattr(stream, "shutdown", None)
    served = 0
    peer_closed = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            # After the client hung up mid-request there is nobody to read a 400.
            if not peer_closed and conn.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                response = _error_response(conn, exc.error_status_hint)
                await stream.send_all(response)
                access_log.info('%s "-" %d %d', peer, exc.error_status_hint, len(response))
            return
        if event is h11.NEED_DATA:
            # Idle keep-alive: a request served, the next not begun. (A new connection is
            # about to send its first request, so like nginx we let that one come.)
            idle = served > 0 and conn.their_state is h11.IDLE and not conn.trailing_data[0]
            if idle and shutdown is not None:
                data = await _receive_unless(stream, shutdown)
                if data is None:
                    return  # the server is stopping: end this idle connection cleanly
            else:
                data = bytes(await stream.receive_some(CHUNK))
            peer_closed = not data
            conn.receive_data(data)  # b"" tells h11 about EOF
            continue
        if isinstance(event, h11.ConnectionClosed):
            return
        if isinstance(event, h11.Request):
            served += 1
            last = served >= max_requests
            if event.method in ALLOWED_METHODS:
                status, response = 200, _response(conn, event, body, last=last)
            else:
                status, response = 405, _not_allowed(conn, last=last)
            await stream.send_all(response)
            access_log.info(
                '%s "%s %s HTTP/%s" %d %d',
                peer,
                event.method.decode("ascii", "replace"),
                event.target.decode("ascii", "replace"),
                event.http_version.decode("ascii", "replace"),
                status,
                len(response),
            )
        if conn.our_state is h11.MUST_CLOSE:
            return
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()


def _peer(stream: trio.abc.Stream) -> str:
    """The client for the access log: its address, and its certificate's subject if any."""
    info = getattr(stream, "info", None)
    peer = getattr(info, "peer", None)
    subject = _client_subject(stream)
    address = peer if isinstance(peer, str) else "-"
    return f"{address} [{subject}]" if subject else address


def _client_subject(stream: trio.abc.Stream) -> str | None:
    chain = getattr(getattr(stream, "info", None), "client_certificate", None)
    return chain[0].subject.rfc4514_string() if chain else None


async def _receive_unless(stream: trio.abc.Stream, shutdown: trio.Event) -> bytes | None:
    """The next bytes from the client, or None if `shutdown` is set first.

    TLSStream's receive is cancel-safe, so giving up on it loses nothing.
    """
    received: bytes | None = None
    async with trio.open_nursery() as nursery:

        async def stop_at_shutdown() -> None:
            await shutdown.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_at_shutdown)
        received = bytes(await stream.receive_some(CHUNK))
        nursery.cancel_scope.cancel()
    return received


def _response(conn: h11.Connection, request: h11.Request, body: bytes, *, last: bool) -> bytes:
    """The whole response as one buffer, so it goes out in one send_all (one TLS write)."""
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    if last:
        headers.append(("Connection", "close"))
    # For HEAD, h11 keeps the GET headers (Content-Length included) and we omit the body.
    events: list[h11.Event] = [h11.Response(status_code=200, headers=headers, reason=b"OK")]
    if request.method != b"HEAD":
        events.append(h11.Data(data=body))
    events.append(h11.EndOfMessage())
    return _bytes_for(conn, events)


def _not_allowed(conn: h11.Connection, *, last: bool) -> bytes:
    allow = ", ".join(method.decode() for method in ALLOWED_METHODS)
    return _status_response(conn, 405, [("Allow", allow)], close=last)


def _error_response(conn: h11.Connection, status: int) -> bytes:
    return _status_response(conn, status, [], close=True)


def _status_response(
    conn: h11.Connection, status: int, extra: list[tuple[str, str]], *, close: bool
) -> bytes:
    reason = http.HTTPStatus(status).phrase
    body = f"{status} {reason}\n".encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        *extra,
    ]
    if close:
        headers.append(("Connection", "close"))
    events: list[h11.Event] = [
        # h11 sends no reason phrase unless given one; clients and people expect it.
        h11.Response(status_code=status, headers=headers, reason=reason.encode()),
        h11.Data(data=body),
        h11.EndOfMessage(),
    ]
    return _bytes_for(conn, events)


def _bytes_for(conn: h11.Connection, events: list[h11.Event]) -> bytes:
    return b"".join(conn.send(event) or b"" for event in events)
