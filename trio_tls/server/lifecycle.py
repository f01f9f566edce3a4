"""One connection's life, from the first byte to the log line.

Each connection is its own task (listen.py starts it): the PROXY header when one is expected, the
TLS handshake under a deadline, then the handler, then a goodbye in a `finally` — shielded and
bounded, so even a cancelled connection frees its socket. The goodbye is honest (RFC 5246
§7.2.1): close_notify when the handler returned, a fatal internal_error when it raised or was
cancelled, so a client never takes a cut-short response for a whole one. A handler's exception
is logged with its peer and stays in its task: one bad connection never takes the server down.

Every socket carries deadlines (deadlines.py) that no handler has to know about: an idle
timeout on receives, a record timeout for a TLS record begun and not finished (stream.py), and
a write timeout on sends that make no progress. After a fatal alert the close lingers
(stream.py), so a client still sending reads it. A client over its address's share of the
connections (peerlimit.py) is refused once its address is known. One INFO log line per
connection (connection_log.py): peer, what was negotiated, bytes each way, duration, and the
outcome (the alert, the timeout, or the handler's error). Plain HTTP sent to the TLS port gets a
plain-text 400, as nginx answers, instead of an alert the person at the browser would never see.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection

import attrs
import trio

from ..engine.config import ServerConfig
from ..engine.events import Observer
from ..observe.recorder import HandshakeRecorder, combine
from .addresses import CURRENT, ConnectionAddresses, format_address
from .connection_log import connection_line, describe_failure, handshake_line
from .deadlines import DeadlineStream
from .handler import AbortConnection, Handler
from .peerlimit import PerAddressLimit, TooManyConnections
from .proxy_protocol import ProxyHeader, ProxyProtocolError, Version, header_size, parse_header
from .stream import TLSStream

log = logging.getLogger("trio_tls")

FIRST_READ = 64 * 1024
# After a fatal alert, read what the client still sends for this long before closing, so that
# its next write does not meet a reset that destroys the alert (stream.py: lingering close).
LINGER = 1.0
_PLAIN_HTTP_BODY = b"The plain HTTP request was sent to an HTTPS port.\n"
PLAIN_HTTP_REPLY = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)


class ConnectionPolicy:
    """The per-connection deadlines serve() applies, the PROXY header versions it expects, the
    threads that sign for every connection, and the count of connections per address."""

    __slots__ = (
        "crypto_limiter",
        "handshake_timeout",
        "idle_timeout",
        "per_address",
        "proxy_protocol",
        "record_timeout",
        "write_timeout",
    )

    def __init__(
        self,
        handshake_timeout: float,
        idle_timeout: float,
        write_timeout: float,
        proxy_protocol: Collection[Version],
        crypto_threads: int,
        record_timeout: float,
        per_address: PerAddressLimit,
    ):
        for name, value in (
            ("handshake_timeout", handshake_timeout),
            ("idle_timeout", idle_timeout),
            ("write_timeout", write_timeout),
            ("record_timeout", record_timeout),
        ):
            if not (value > 0 and not math.isnan(value)):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.record_timeout = record_timeout
        self.per_address = per_address
        self.proxy_protocol = proxy_protocol
        if crypto_threads < 0:
            raise ValueError(f"crypto_threads must be 0 or more, not {crypto_threads}")
        self.crypto_limiter = trio.CapacityLimiter(crypto_threads) if crypto_threads else None


@attrs.frozen
class Accepted:
    """A new connection, with the client's address that accept() returned, and the address it
    reached when the listener's own address says it (None for a wildcard listener)."""

    socket: trio.socket.SocketType
    peer: tuple[str, int]
    listening_on: tuple[str, int] | None


@attrs.frozen
class Observers:
    """What watches each connection: a shared observer, a per-connection factory, and whether
    the handler wants each handshake recorded (its traits, read once for the server)."""

    shared: Observer | None
    per_connection: Callable[[str], Observer] | None
    record: bool = False

    def for_connection(self, peer: str) -> tuple[Observer | None, HandshakeRecorder | None]:
        """The connection's observer, and its handshake record if the handler wants one."""
        traced = self.per_connection(peer) if self.per_connection is not None else None
        recorder = HandshakeRecorder() if self.record else None
        return combine(self.shared, traced, recorder), recorder


class Counted:
    """What one connection counts under in the per-address limit, given back when it ends."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key: str | None = None


async def serve_connection(
    accepted: Accepted,
    handler: Handler,
    config: Callable[[], ServerConfig],
    policy: ConnectionPolicy,
    observers: Observers,
    shutdown: trio.Event,
    counted: Counted,
) -> None:
    started = trio.current_time()
    addresses = _socket_addresses(accepted)
    guarded = DeadlineStream(
        accepted.socket, idle_timeout=policy.idle_timeout, write_timeout=policy.write_timeout
    )
    stream: TLSStream | None = None  # from the first TLS byte: a failed handshake has its SNI
    peer = _peer_name(addresses)
    outcome, clean = "closed", False
    try:
        # Only the handshake's own deadline counts as a timeout: a handler's TooSlowError is
        # the handler's error.
        with trio.move_on_after(policy.handshake_timeout) as deadline:
            first, header, addresses = await _arrive(guarded, policy, addresses, counted)
            peer = _peer_name(addresses)
            CURRENT.set(addresses)
            watch = observers.for_connection(peer)
            opened = await _open_tls(
                guarded, first, header, config(), watch, peer, shutdown, policy
            )
            if isinstance(opened, TLSStream):
                stream = opened
                await stream.do_handshake()  # on failure, the transport beneath is closed below
        if deadline.cancelled_caught:
            outcome = "handshake timeout"
        elif isinstance(opened, str):
            outcome = opened
        else:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s", handshake_line(peer, opened.info, trio.current_time() - started))
            await handler(opened)
        clean = True
    except trio.BrokenResourceError as exc:
        outcome = describe_failure(exc, handshake_done=_handshake_done(stream))
        clean = True  # the stream itself failed: nothing left to say but what it already said
    except (ProxyProtocolError, TooManyConnections) as exc:
        outcome, clean = f"refused: {exc}", True
    except AbortConnection as exc:
        outcome = f"aborted: {exc}"
    except BaseExceptionGroup as group:
        outcome, clean = _group_outcome(group, peer, _handshake_done(stream))
    except Exception:
        log.exception("handler error for %s", peer)
        outcome = "handler error"
    finally:
        if not clean and outcome == "closed":
            outcome = "cancelled"
        # Shielded from the connection's cancellation, bounded by its own deadline.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 1):
            if stream is None:
                await guarded.aclose()
            else:
                await (stream.aclose() if clean else stream.abort())
        if log.isEnabledFor(logging.INFO):  # the line is not built for nobody
            _log_connection(peer, stream, guarded, trio.current_time() - started, outcome)


def _log_connection(
    peer: str, tls: TLSStream | None, guarded: DeadlineStream, seconds: float, outcome: str
) -> None:
    """The connection's INFO line; a handshake that failed still names the SNI it asked for."""
    info = tls.info if tls is not None and tls.handshake_done else None
    sni = tls.requested_sni if tls is not None else None
    received, sent = guarded.bytes_received, guarded.bytes_sent
    log.info("%s", connection_line(peer, info, received, sent, seconds, outcome, sni))


async def _arrive(
    guarded: DeadlineStream,
    policy: ConnectionPolicy,
    addresses: ConnectionAddresses | None,
    counted: Counted,
) -> tuple[bytes, ProxyHeader | None, ConnectionAddresses | None]:
    """The first bytes, the PROXY header, and the addresses that stand for the connection, once
    the client is counted in the per-address limit (TooManyConnections over it). The client is
    the socket's peer, counted before anything is read, or the one the PROXY header names."""
    if not policy.proxy_protocol:
        counted.key = policy.per_address.take(addresses)
    first, header = await _read_first(guarded, policy.proxy_protocol)
    addresses = _behind_proxy(header, addresses)
    if header is not None and header.source is not None:
        counted.key = policy.per_address.take(addresses)
    return first, header, addresses


def _socket_addresses(accepted: Accepted) -> ConnectionAddresses | None:
    """The client's address comes with accept(); ours is the listener's unless it listens on
    every address, and only then costs a getsockname()."""
    destination = accepted.listening_on
    if destination is None:
        try:
            destination = accepted.socket.getsockname()[:2]
        except OSError:  # the peer is already gone
            return None
    return ConnectionAddresses(accepted.peer, destination)


def _behind_proxy(
    header: ProxyHeader | None, addresses: ConnectionAddresses | None
) -> ConnectionAddresses | None:
    """The addresses that stand for the connection: the PROXY header's, when it names them."""
    if header is None or header.source is None or header.destination is None or addresses is None:
        return addresses
    log.debug(
        "PROXY v%d header from %s: client %s",
        header.version,
        format_address(addresses.source),
        format_address(header.source),
    )
    return ConnectionAddresses(header.source, header.destination, via=addresses.source)


def _peer_name(addresses: ConnectionAddresses | None) -> str:
    return "?" if addresses is None else format_address(addresses.source)


def _is_plain_http(first: bytes | bytearray) -> bool:
    """A TLS record starts with a content type byte (20-24); an HTTP request with a letter."""
    return bool(first) and 0x41 <= first[0] <= 0x5A  # A-Z: GET, POST, HEAD, ...


async def _read_first(
    guarded: DeadlineStream, proxy_protocol: Collection[Version]
) -> tuple[bytes, ProxyHeader | None]:
    """The first bytes of TLS (b"" if none come), and the PROXY header before them when one is
    expected (proxy_protocol.py; ProxyProtocolError if it is not there or not valid).

    They are read here, not by TLSStream, to take the header off and to tell plain HTTP from
    TLS. The caller's handshake deadline covers the header too."""
    first = bytes(await guarded.receive_some(FIRST_READ))
    if not proxy_protocol or not first:
        return first, None
    # Linear however the header comes: its size is known from its first bytes, then it is
    # read whole into a bytearray and parsed once (bounded: a header is at most 64 KiB).
    buffer = bytearray(first)
    size = header_size(buffer, proxy_protocol)
    while size is None or len(buffer) < size:
        more = await guarded.receive_some(FIRST_READ)
        if not more:
            raise ProxyProtocolError("the connection closed inside the PROXY header")
        buffer += more
        if size is None:
            size = header_size(buffer, proxy_protocol)
    first = bytes(buffer)
    parsed = parse_header(first, proxy_protocol)
    assert parsed is not None  # header_size said it is all there
    header, size = parsed
    rest = first[size:]
    if not rest:
        try:
            rest = bytes(await guarded.receive_some(FIRST_READ))
        except trio.BrokenResourceError:
            if not header.local:
                raise
            # HAProxy's health checks end with a reset (nolinger): still a health check.
    return rest, header


async def _open_tls(
    guarded: DeadlineStream,
    first: bytes,
    header: ProxyHeader | None,
    config: ServerConfig,
    watch: tuple[Observer | None, HandshakeRecorder | None],
    peer: str,
    shutdown: trio.Event,
    policy: ConnectionPolicy,
) -> TLSStream | str:
    """The TLS stream, its handshake not yet begun, or the outcome of a connection that never
    got that far.

    A load balancer's health check (PROXY LOCAL, then nothing) is closed without a word."""
    if not first:
        local = header is not None and header.local
        return "health check (PROXY LOCAL)" if local else "closed before the handshake"
    if _is_plain_http(first):
        await guarded.send_all(PLAIN_HTTP_REPLY)  # as nginx does, and no TLS alert
        return "plain HTTP on the TLS port (answered 400)"
    observer, recorder = watch
    stream = TLSStream(
        guarded,
        config,
        observer=observer,
        peer=peer,
        shutdown=shutdown,
        initial_data=first,
        crypto_limiter=policy.crypto_limiter,
        record_timeout=policy.record_timeout,
        linger=LINGER,
    )
    if recorder is not None:
        stream.handshake_record = recorder.record
    return stream


def _group_outcome(
    group: BaseExceptionGroup[BaseException], peer: str, handshake_done: bool
) -> tuple[str, bool]:
    """(outcome, clean) for a handler that raised a group (a relay's nursery, say): transport
    breaks alone are the stream's end like a bare BrokenResourceError; cancellation is passed
    on; anything else is the handler's error."""
    breaks, others = group.split(trio.BrokenResourceError)
    if others is None and breaks is not None:
        return describe_failure(_first_leaf(breaks), handshake_done=handshake_done), True
    if others is not None and others.split(Exception)[0] is None:
        raise group  # nothing but cancellation
    log.exception("handler error for %s", peer)
    return "handler error", False


def _handshake_done(stream: TLSStream | None) -> bool:
    return stream is not None and stream.handshake_done


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
