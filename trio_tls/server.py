"""serve(): accept TCP connections and run a handler on each, inside one trio nursery.

Each connection is its own task: TLS handshake under a deadline, then the handler, then a
goodbye in a `finally` — shielded and bounded, so even a cancelled connection frees its socket.
The goodbye is honest (RFC 5246 §7.2.1): close_notify when the handler returned, a fatal
internal_error when it raised or was cancelled, so a client never takes a cut-short response
for a whole one. A handler's exception is logged with its peer and stays in its task: one bad
connection never takes the server down.

Every socket carries deadlines (deadlines.py) that no handler has to know about: an idle
timeout on receives, a record timeout for a TLS record begun and not finished (stream.py), and
a write timeout on sends that make no progress, plus TCP keepalive for peers that vanish without
a FIN. After a fatal alert the close lingers (stream.py), so a client still sending reads it.
A capacity limiter holds one token per open connection; at the cap the accept loop waits, and
the kernel's backlog queues new clients. Running out of file
descriptors (or kernel memory) is not fatal: accept() is retried after a pause, as
trio.serve_listeners does, and logged at most every few seconds.

Shutdown, when `shutdown` is set: stop accepting, close the listeners, tell the handlers (each
stream's `shutdown` event is this one), give running connections `shutdown_grace` seconds, then
cancel what is left. One INFO log line per connection (connlog.py): peer, what was negotiated,
bytes each way, duration, and the outcome (the alert, the timeout, or the handler's error).
Plain HTTP sent to the TLS port gets a plain-text 400, as nginx answers, instead of an alert the
person at the browser would never see.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import resource
import socket
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress

import attrs
import trio

from .addresses import CURRENT, ConnectionAddresses, format_address
from .config import ServerConfig
from .connlog import connection_line, describe_failure, handshake_line
from .deadlines import DeadlineStream
from .events import Observer
from .observe import HandshakeRecorder, combine
from .peerlimit import PerAddressLimit, TooManyConnections, default_limit
from .plugins import AbortConnection, Handler
from .proxyproto import ProxyHeader, ProxyProtocolError, Version, parse_header
from .stream import TLSStream

log = logging.getLogger("trio_tls")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4433
# accept() failures that mean "out of descriptors or memory for now", not "the listener broke".
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# accept() failures that concern only the connection being accepted (it was reset, say), as
# trio's SocketListener ignores them.
ACCEPT_IGNORED_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        *("ECONNABORTED", "EPROTO", "EPERM", "ENOSR", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN"),
        *("ENONET", "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "ESOCKTNOSUPPORT"),
        *("EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET"),
    )
    if hasattr(errno, name)
)
ACCEPT_RETRY_DELAY = 0.1
ACCEPT_ERROR_LOG_INTERVAL = 10.0
# Descriptors beyond one per connection: listeners, log and key files, worker pipes.
RESERVED_DESCRIPTORS = 64
FIRST_READ = 64 * 1024
# After a fatal alert, read what the client still sends for this long before closing, so that
# its next write does not meet a reset that destroys the alert (stream.py: lingering close).
LINGER = 1.0
_PLAIN_HTTP_BODY = b"The plain HTTP request was sent to an HTTPS port.\n"
PLAIN_HTTP_REPLY = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_PLAIN_HTTP_BODY), _PLAIN_HTTP_BODY)
)
# TCP keepalive: probe after 60 s of silence, every 10 s, give up after 6 unanswered probes.
_KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


def _socket_addresses(accepted: _Accepted) -> ConnectionAddresses | None:
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


def _set_connection_options(listener: trio.SocketListener) -> None:
    """The options every connection gets, set once on the listening socket, which accepted
    sockets inherit: six system calls fewer per connection than setting them on each.

    TCP keepalive, so a peer that vanished without a FIN is noticed (Linux options); and, as
    trio.SocketStream sets them, TCP_NODELAY (a TLS record must not wait for the next) and a
    16 KiB TCP_NOTSENT_LOWAT (the kernel holds little unsent data, so a writer's progress, and
    the write timeout, reflect the peer's reading)."""
    sock = listener.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for name, value in (*_KEEPALIVE_OPTIONS, ("TCP_NOTSENT_LOWAT", 2**14)):
        option = getattr(socket, name, None)
        if option is not None:
            with suppress(OSError):  # not every kernel has every option
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _is_plain_http(first: bytes | bytearray) -> bool:
    """A TLS record starts with a content type byte (20-24); an HTTP request with a letter."""
    return bool(first) and 0x41 <= first[0] <= 0x5A  # A-Z: GET, POST, HEAD, ...


async def _serve_connection(
    accepted: _Accepted,
    handler: Handler,
    config: Callable[[], ServerConfig],
    limits: _Limits,
    observers: _Observers,
    shutdown: trio.Event,
    counted: _Counted,
) -> None:
    started = trio.current_time()
    addresses = _socket_addresses(accepted)
    guarded = DeadlineStream(
        accepted.socket, idle_timeout=limits.idle_timeout, write_timeout=limits.write_timeout
    )
    stream: TLSStream | None = None  # from the first TLS byte: a failed handshake has its SNI
    peer = _peer_name(addresses)
    outcome, clean = "closed", False
    try:
        # Only the handshake's own deadline counts as a timeout: a handler's TooSlowError is
        # the handler's error.
        with trio.move_on_after(limits.handshake_timeout) as deadline:
            first, header, addresses = await _arrive(guarded, limits, addresses, counted)
            peer = _peer_name(addresses)
            CURRENT.set(addresses)
            watch = observers.for_connection(peer, getattr(handler, "records_handshake", False))
            opened = await _open_tls(
                guarded, first, header, config(), watch, peer, shutdown, limits
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
    limits: _Limits,
    addresses: ConnectionAddresses | None,
    counted: _Counted,
) -> tuple[bytes, ProxyHeader | None, ConnectionAddresses | None]:
    """The first bytes, the PROXY header, and the addresses that stand for the connection, once
    the client is counted in the per-address limit (TooManyConnections over it). The client is
    the socket's peer, counted before anything is read, or the one the PROXY header names."""
    if not limits.proxy_protocol:
        counted.key = limits.per_address.take(addresses)
    first, header = await _read_first(guarded, limits.proxy_protocol)
    addresses = _behind_proxy(header, addresses)
    if header is not None and header.source is not None:
        counted.key = limits.per_address.take(addresses)
    return first, header, addresses


async def _read_first(
    guarded: DeadlineStream, proxy_protocol: Collection[Version]
) -> tuple[bytes, ProxyHeader | None]:
    """The first bytes of TLS (b"" if none come), and the PROXY header before them when one is
    expected (proxyproto.py; ProxyProtocolError if it is not there or not valid).

    They are read here, not by TLSStream, to take the header off and to tell plain HTTP from
    TLS. The caller's handshake deadline covers the header too."""
    first = bytes(await guarded.receive_some(FIRST_READ))
    if not proxy_protocol or not first:
        return first, None
    while (parsed := parse_header(first, proxy_protocol)) is None:
        more = await guarded.receive_some(FIRST_READ)
        if not more:
            raise ProxyProtocolError("the connection closed inside the PROXY header")
        first += more  # bounded: parse_header refuses anything longer than a header can be
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
    limits: _Limits,
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
        crypto_limiter=limits.crypto_limiter,
        record_timeout=limits.record_timeout,
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


class _Counted:
    """What one connection counts under in the per-address limit, given back when it ends."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key: str | None = None


class _Limits:
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
class _Accepted:
    """A new connection, with the client's address that accept() returned, and the address it
    reached when the listener's own address says it (None for a wildcard listener)."""

    socket: trio.socket.SocketType
    peer: tuple[str, int]
    listening_on: tuple[str, int] | None


def _listening_on(listener: trio.SocketListener) -> tuple[str, int] | None:
    host, port = listener.socket.getsockname()[:2]
    return None if ipaddress.ip_address(host).is_unspecified else (host, port)


async def _accept(
    listener: trio.SocketListener, listening_on: tuple[str, int] | None, errors: _AcceptErrors
) -> _Accepted:
    """The next connection; out of descriptors or memory, wait and try again.

    This is SocketListener.accept() without throwing away the client's address (accept()
    returns it; getpeername() would cost a system call per connection) and without a
    SocketStream, whose options the listener already gave the socket (DeadlineStream).
    """
    while True:
        try:
            sock, address = await listener.socket.accept()
        except OSError as exc:
            if exc.errno == errno.EBADF:
                raise trio.ClosedResourceError("the listener was closed") from None
            if exc.errno in ACCEPT_CAPACITY_ERRNOS:
                errors.report(exc)
                await trio.sleep(ACCEPT_RETRY_DELAY)
            elif exc.errno not in ACCEPT_IGNORED_ERRNOS:
                raise
        else:
            return _Accepted(sock, address[:2], listening_on)


class _AcceptErrors:
    """Logs accept() failures at most once per interval, with how many it held back."""

    def __init__(self) -> None:
        self._last_logged = -math.inf
        self._held_back = 0

    def report(self, exc: OSError) -> None:
        now = trio.current_time()
        if now - self._last_logged < ACCEPT_ERROR_LOG_INTERVAL:
            self._held_back += 1
            return
        more = f" ({self._held_back} more since the last report)" if self._held_back else ""
        log.error(
            "accept() failed: %s%s; retrying every %g s (raise `ulimit -n`, or lower "
            "--max-connections)",
            exc.strerror or exc,
            more,
            ACCEPT_RETRY_DELAY,
        )
        self._last_logged = now
        self._held_back = 0


def ensure_descriptors(max_connections: int) -> str | None:
    """Make RLIMIT_NOFILE fit `max_connections`; a warning to print if it cannot.

    The soft limit is raised as far as the hard limit allows. Past that, accept() will fail
    with EMFILE under load; the server survives it, but the operator should know in advance.
    """
    needed = max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return None
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return (
        f"--max-connections {max_connections} needs about {needed} file descriptors, but the "
        f"limit is {hard} (ulimit -n): raise it, or lower --max-connections to "
        f"{max(1, hard - RESERVED_DESCRIPTORS)}"
    )


async def _accept_loop(
    listener: trio.SocketListener,
    connections: trio.Nursery,
    limiter: trio.CapacityLimiter,
    handler: Handler,
    config: Callable[[], ServerConfig],
    limits: _Limits,
    observers: _Observers,
    shutdown: trio.Event,
) -> None:
    errors = _AcceptErrors()
    listening_on = _listening_on(listener)
    while True:
        token = object()
        await limiter.acquire_on_behalf_of(token)
        try:
            accepted = await _accept(listener, listening_on, errors)
        except BaseException:
            limiter.release_on_behalf_of(token)
            raise

        async def run(accepted: _Accepted = accepted, token: object = token) -> None:
            counted = _Counted()
            try:
                await _serve_connection(
                    accepted, handler, config, limits, observers, shutdown, counted
                )
            finally:
                limits.per_address.give_back(counted.key)
                limiter.release_on_behalf_of(token)

        connections.start_soon(run)


async def serve(
    handler: Handler,
    config: ServerConfig | Callable[[], ServerConfig],
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    handshake_timeout: float = 10.0,
    idle_timeout: float = 60.0,
    write_timeout: float = 30.0,
    record_timeout: float = 10.0,
    max_connections: int = 1000,
    max_connections_per_ip: int | None = None,
    crypto_threads: int = 0,
    shutdown: trio.Event | None = None,
    shutdown_grace: float = 5.0,
    observer: Observer | None = None,
    connection_observer: Callable[[str], Observer] | None = None,
    listeners: Sequence[trio.SocketListener] | None = None,
    proxy_protocol: Collection[Version] = (),
    task_status: trio.TaskStatus[Sequence[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve TLS on host:port until cancelled, or until `shutdown` is set and drained.

    `task_status.started()` reports the listeners, so `await nursery.start(serve, ...)` with
    port 0 learns the bound port from `listeners[0].socket.getsockname()`. Ready-made
    `listeners` (a socket inherited from a supervisor, say) replace host and port.

    `config` may be a callable returning the current configuration (reload.ConfigHolder): each
    handshake takes the one current when the connection arrives, and keeps it. With
    `proxy_protocol` (versions 1, 2 or both) each connection must start with a PROXY header
    (proxyproto.py) whose addresses then stand for the connection's.

    `observer` sees every connection's observations (a key log); `connection_observer`, called
    with each connection's peer, gives one observer per connection (a trace, trace.py).

    With `crypto_threads` > 0, each full handshake's signature is made on one of that many
    worker threads (`cryptography` releases the GIL while it signs), so a second core can sign
    while the event loop serves other connections.

    `record_timeout` bounds the time a client may take to finish a TLS record once it has
    begun one (stream.py): the idle timeout restarts with every byte, so alone it would let a
    client hold its connection by sending a byte now and then.

    `max_connections_per_ip` caps the connections one client address holds open (peerlimit.py;
    0 for no cap, None for the default, a tenth of `max_connections` and at least 16); a
    connection over it is closed at once and logged as refused.
    """
    limits = _Limits(
        handshake_timeout,
        idle_timeout,
        write_timeout,
        proxy_protocol,
        crypto_threads,
        record_timeout,
        PerAddressLimit(
            default_limit(max_connections)
            if max_connections_per_ip is None
            else max_connections_per_ip
        ),
    )
    current_config = _constant(config) if isinstance(config, ServerConfig) else config
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    # Handed to every stream as `stream.shutdown`, so handlers can wind down at a clean point.
    shutting_down = trio.Event() if shutdown is None else shutdown
    if listeners is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    limiter = trio.CapacityLimiter(max_connections)
    for listener in listeners:
        _set_connection_options(listener)
        sockname = listener.socket.getsockname()
        log.info("listening on %s port %s", sockname[0], sockname[1])
    task_status.started(listeners)
    try:
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as acceptors:
                for listener in listeners:
                    acceptors.start_soon(
                        _accept_loop,
                        listener,
                        connections,
                        limiter,
                        handler,
                        current_config,
                        limits,
                        _Observers(observer, connection_observer),
                        shutting_down,
                    )
                await shutting_down.wait()
                acceptors.cancel_scope.cancel()
            await _close_listeners(listeners)
            log.info("shutting down: %d connection(s) open", limiter.borrowed_tokens)
            connections.cancel_scope.deadline = trio.current_time() + shutdown_grace
    finally:
        await _close_listeners(listeners)


@attrs.frozen
class _Observers:
    """What watches each connection: a shared observer and a per-connection factory."""

    shared: Observer | None
    per_connection: Callable[[str], Observer] | None

    def for_connection(
        self, peer: str, record: bool
    ) -> tuple[Observer | None, HandshakeRecorder | None]:
        """The connection's observer, and its handshake record if the handler wants one."""
        traced = self.per_connection(peer) if self.per_connection is not None else None
        recorder = HandshakeRecorder() if record else None
        return combine(self.shared, traced, recorder), recorder


def _constant(config: ServerConfig) -> Callable[[], ServerConfig]:
    return lambda: config


async def _close_listeners(listeners: Sequence[trio.SocketListener]) -> None:
    with trio.CancelScope(shield=True):
        for listener in listeners:
            await listener.aclose()
