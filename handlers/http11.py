"""The HTTP/1.1 server loop the built-in web handlers share (hello, inspect), on h11.

h11 does all the HTTP: it parses requests, frames our responses, and decides keep-alive. The
loop only moves bytes between the stream and the h11 Connection and answers each Request as
soon as it is parsed, with what the handler's `respond(request)` returns; any request body is
read and dropped, and once both sides finish a cycle `start_next_cycle()` readies the
connection for the next request. A malformed request gets a 400 (or h11's more precise status
hint, e.g. 431 for oversized headers) and the connection ends. GET and HEAD are served; any
other method (CONNECT, POST, ...) gets 405 with `Allow` (RFC 9110 §15.5.6). A keep-alive
connection serves at most `max_requests` requests, the last one with `Connection: close`; how
long it may sit idle between them is serve()'s idle timeout, and once the server begins shutting
down (`stream.shutdown`) an idle connection ends at once, cleanly, instead of waiting to be
cancelled.

A request must arrive whole within `request_timeout` seconds of its first byte: nginx's
client_header_timeout, HAProxy's `timeout http-request`. The idle timeout restarts with every
byte, so without it a client sending one byte (one TLS record) every few seconds holds its
connection for ever. The deadline covers the head and any body, since these handlers read no
body and it deserves no more time. On expiry the connection is closed without a response, as
nginx does (it logs 408 and sends nothing: the client is not reading a response it has not
finished asking for); the access log says 408.

Each response is logged to the `trio_tls.access` logger, in the spirit of a web server's access
log, so operators can route it on its own; what the client sent is escaped in it (printable.py),
whatever h11 may one day let through in a request line.
"""

from __future__ import annotations

import http
import logging
import math
from collections.abc import Callable

import attrs
import h11
import trio

from trio_tls.engine.wire.printable import printable

access_log = logging.getLogger("trio_tls.access")

CHUNK = 65536
# A request head bigger than this is refused rather than buffered without bound.
MAX_HEADER_SIZE = 16 * 1024
DEFAULT_MAX_REQUESTS = 100
# HAProxy's recommended `timeout http-request`; a browser sends a request head in one packet.
DEFAULT_REQUEST_TIMEOUT = 10.0
ALLOWED_METHODS = (b"GET", b"HEAD")


@attrs.frozen
class Response:
    """What a handler answers a GET with; for HEAD the loop sends the same head, no body."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Respond = Callable[[h11.Request], Response]


def parse_max_requests(handler: str, text: str) -> int:
    """The `max-requests` option: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise ValueError(
            f"{handler}: max-requests must be a whole number of at least 1, not {text!r}"
        )
    return int(text)


def parse_request_timeout(handler: str, text: str) -> float:
    """The `request-timeout` option: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(
            f"{handler}: request-timeout must be a positive number of seconds, not {text!r}"
        )
    return seconds


async def serve_http(
    stream: trio.abc.Stream,
    respond: Respond,
    max_requests: int,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Answer HTTP/1.1 requests on `stream` until the client or the limits end it."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_SIZE)
    peer = _peer(stream)
    shutdown: trio.Event | None = getattr(stream, "shutdown", None)
    served = 0
    peer_closed = False
    began: float | None = None  # when the first byte of the request being read arrived
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            # After the client hung up mid-request there is nobody to read a 400.
            if not peer_closed and conn.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                answer = _status_response(exc.error_status_hint)
                response = _response(conn, answer, head=False, close=True)
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
                deadline = math.inf if began is None else began + request_timeout
                data = await _receive_before(stream, deadline)
                if data is None:
                    access_log.info('%s "-" 408 0', peer)  # as nginx: logged, never sent
                    return
            if began is None:
                began = trio.current_time()
            peer_closed = not data
            conn.receive_data(data)  # b"" tells h11 about EOF
            continue
        if isinstance(event, h11.ConnectionClosed):
            return
        if isinstance(event, h11.Request):
            served += 1
            last = served >= max_requests
            if event.method in ALLOWED_METHODS:
                answer = respond(event)
            else:
                allow = ", ".join(method.decode() for method in ALLOWED_METHODS)
                answer = _status_response(405, (("Allow", allow),))
            head = event.method == b"HEAD"
            response = _response(conn, answer, head=head, close=last)
            await stream.send_all(response)
            access_log.info(
                '%s "%s %s HTTP/%s" %d %d',
                peer,
                printable(event.method),
                printable(event.target),
                printable(event.http_version),
                answer.status,
                len(response),
            )
        if conn.our_state is h11.MUST_CLOSE:
            return
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            # A pipelined request's first bytes are here already: its time starts now.
            began = trio.current_time() if conn.trailing_data[0] else None


def _peer(stream: trio.abc.Stream) -> str:
    """The client for the access log: its address, and its certificate's subject if any."""
    info = getattr(stream, "info", None)
    peer = getattr(info, "peer", None)
    subject = client_subject(stream)
    address = peer if isinstance(peer, str) else "-"
    return f"{address} [{subject}]" if subject else address


def client_subject(stream: trio.abc.Stream) -> str | None:
    """The subject of the client's certificate, when it sent one (mutual TLS), in the form that
    is safe to show (ConnectionInfo.client_subject)."""
    subject = getattr(getattr(stream, "info", None), "client_subject", None)
    return subject if isinstance(subject, str) else None


async def _receive_before(stream: trio.abc.Stream, deadline: float) -> bytes | None:
    """The next bytes from the client, or None if the deadline passes first (the receive is
    cancel-safe, as below)."""
    with trio.move_on_at(deadline):
        return bytes(await stream.receive_some(CHUNK))
    return None


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


def _response(conn: h11.Connection, answer: Response, *, head: bool, close: bool) -> bytes:
    """The whole response as one buffer, so it goes out in one send_all (one TLS write)."""
    headers = [
        ("Content-Type", answer.content_type),
        ("Content-Length", str(len(answer.body))),
        *answer.headers,
    ]
    if close:
        headers.append(("Connection", "close"))
    # h11 sends no reason phrase unless given one; clients and people expect it.
    reason = http.HTTPStatus(answer.status).phrase.encode()
    events: list[h11.Event] = [
        h11.Response(status_code=answer.status, headers=headers, reason=reason)
    ]
    # For HEAD, h11 keeps the GET headers (Content-Length included) and we omit the body.
    if not head:
        events.append(h11.Data(data=answer.body))
    events.append(h11.EndOfMessage())
    return b"".join(conn.send(event) or b"" for event in events)


def _status_response(status: int, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A response that is only its status: `405 Method Not Allowed`, as a line of text."""
    text = f"{status} {http.HTTPStatus(status).phrase}\n"
    return Response(status, "text/plain; charset=utf-8", text.encode(), headers)
