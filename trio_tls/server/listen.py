"""serve(): accept TCP connections and run a handler on each, inside one trio nursery.

Each connection is its own task, whose life is lifecycle.py's. Every socket gets TCP keepalive
for peers that vanish without a FIN, set once on the listener. A capacity limiter holds one token
per open connection; at the cap the accept loop waits, and the kernel's backlog queues new
clients. Running out of file descriptors (or kernel memory) is not fatal: accept() is retried
after a pause, as trio.serve_listeners does, and logged at most every few seconds.

Shutdown, when `shutdown` is set: stop accepting, close the listeners, tell the handlers (each
stream's `shutdown` event is this one), give running connections `shutdown_grace` seconds, then
cancel what is left.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import socket
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress

import trio

from ..engine.config import ServerConfig
from ..engine.events import Observer
from .addresses import CURRENT, format_address
from .handler import Handler, HandlerTraits
from .lifecycle import Accepted, ConnectionPolicy, Counted, Observers, serve_connection
from .peerlimit import PerAddressLimit, default_limit
from .proxy_protocol import Version

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
# TCP keepalive: probe after 60 s of silence, every 10 s, give up after 6 unanswered probes.
_KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


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


def _listening_on(listener: trio.SocketListener) -> tuple[str, int] | None:
    host, port = listener.socket.getsockname()[:2]
    return None if ipaddress.ip_address(host).is_unspecified else (host, port)


async def _accept(
    listener: trio.SocketListener, listening_on: tuple[str, int] | None, errors: _AcceptErrors
) -> Accepted:
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
            return Accepted(sock, address[:2], listening_on)


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


async def _accept_loop(
    listener: trio.SocketListener,
    connections: trio.Nursery,
    limiter: trio.CapacityLimiter,
    handler: Handler,
    config: Callable[[], ServerConfig],
    policy: ConnectionPolicy,
    observers: Observers,
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

        async def run(accepted: Accepted = accepted, token: object = token) -> None:
            counted = Counted()
            try:
                await serve_connection(
                    accepted, handler, config, policy, observers, shutdown, counted
                )
            except Exception:
                # The last line of defence: whatever escaped the connection's own handling
                # (its log line, an observer, its goodbye) ends this connection, never the
                # nursery and with it the server. The peer is the PROXY header's, once known.
                accepted.socket.close()  # a no-op unless the goodbye failed before closing
                addresses = CURRENT.get()
                peer = format_address(addresses.source if addresses else accepted.peer)
                log.exception("connection from %s ended by an internal error", peer)
            finally:
                policy.per_address.give_back(counted.key)
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
    (proxy_protocol.py) whose addresses then stand for the connection's.

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
    policy = ConnectionPolicy(
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
    records_handshake = HandlerTraits.of(handler).records_handshake
    observers = Observers(observer, connection_observer, records_handshake)
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
                        policy,
                        observers,
                        shutting_down,
                    )
                await shutting_down.wait()
                acceptors.cancel_scope.cancel()
            await _close_listeners(listeners)
            log.info("shutting down: %d connection(s) open", limiter.borrowed_tokens)
            connections.cancel_scope.deadline = trio.current_time() + shutdown_grace
    finally:
        await _close_listeners(listeners)


def _constant(config: ServerConfig) -> Callable[[], ServerConfig]:
    return lambda: config


async def _close_listeners(listeners: Sequence[trio.SocketListener]) -> None:
    with trio.CancelScope(shield=True):
        for listener in listeners:
            await listener.aclose()
