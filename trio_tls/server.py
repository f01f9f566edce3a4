"""serve(): accept TCP connections and run a handler on each, inside one trio nursery.

Each connection is its own task: TLS handshake under a deadline, then the handler, then a
goodbye in a `finally` — shielded and bounded, so even a cancelled connection frees its socket.
The goodbye is honest (RFC 5246 §7.2.1): close_notify when the handler returned, a fatal
internal_error when it raised or was cancelled, so a client never takes a cut-short response
for a whole one. A handler's exception is logged with its peer and stays in its task: one bad
connection never takes the server down.

Every socket carries deadlines (deadlines.py) that no handler has to know about: an idle
timeout on receives and a write timeout on sends that make no progress, plus TCP keepalive for
peers that vanish without a FIN. A capacity limiter holds one token per open connection; at the
cap the accept loop waits, and the kernel's backlog queues new clients. Running out of file
descriptors (or kernel memory) is not fatal: accept() is retried after a pause, as
trio.serve_listeners does, and logged at most every few seconds.

Shutdown, when `shutdown` is set: stop accepting, close the listeners, give running connections
`shutdown_grace` seconds, then cancel what is left. One INFO log line per connection: peer,
cipher suite, outcome (the alert, the timeout, or the handler's error).
"""

from __future__ import annotations

import errno
import logging
import math
import resource
import socket
from collections.abc import Sequence

import trio

from .config import ServerConfig
from .deadlines import DeadlineStream, IdleTimeout, StreamTimeout
from .errors import TLSError
from .events import Observer
from .plugins import Handler
from .stream import TLSStream

log = logging.getLogger("trio_tls")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4433
# accept() failures that mean "out of descriptors or memory for now", not "the listener broke".
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_DELAY = 0.1
ACCEPT_ERROR_LOG_INTERVAL = 10.0
# Descriptors beyond one per connection: listeners, log and key files, worker pipes.
RESERVED_DESCRIPTORS = 64
# TCP keepalive: probe after 60 s of silence, every 10 s, give up after 6 unanswered probes.
_KEEPALIVE_OPTIONS = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe_failure(exc: BaseException) -> str:
    """Name the alert or the deadline behind a broken stream when there is one."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TLSError):
            alert = cause.alert.name if cause.alert is not None else "no alert"
            return f"failed: {alert} ({cause})"
        if isinstance(cause, StreamTimeout):
            kind = "idle" if isinstance(cause, IdleTimeout) else "write"
            return f"{kind} timeout ({cause})"
        cause = cause.__cause__
    return f"failed: {exc or type(exc).__name__}"


def _keep_alive(transport: trio.SocketStream) -> None:
    """TCP keepalive, so a peer that vanished without a FIN is noticed (Linux options)."""
    transport.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE_OPTIONS:
        option = getattr(socket, name, None)
        if option is not None:
            transport.setsockopt(socket.IPPROTO_TCP, option, value)


async def _serve_connection(
    transport: trio.SocketStream,
    handler: Handler,
    config: ServerConfig,
    limits: _Limits,
    observer: Observer | None,
) -> None:
    peer = _peer_name(transport)
    _keep_alive(transport)
    guarded = DeadlineStream(
        transport, idle_timeout=limits.idle_timeout, write_timeout=limits.write_timeout
    )
    stream = TLSStream(guarded, config, observer=observer, peer=peer)
    outcome = "closed"
    clean = False
    try:
        # Only the handshake's own deadline counts as a timeout: a handler's TooSlowError is
        # the handler's error.
        with trio.move_on_after(limits.handshake_timeout) as deadline:
            await stream.do_handshake()
        if deadline.cancelled_caught:
            outcome = "handshake timeout"
        else:
            await handler(stream)
        clean = True
    except trio.BrokenResourceError as exc:
        outcome = _describe_failure(exc)
        clean = True  # the stream itself failed: nothing left to say but what it already said
    except Exception:
        log.exception("handler error for %s", peer)
        outcome = "handler error"
    finally:
        if not clean and outcome == "closed":
            outcome = "cancelled"
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await (stream.aclose() if clean else stream.abort())
        suite = stream.info.cipher_suite if stream.handshake_done else "-"
        log.info("%s %s %s", peer, suite, outcome)


class _Limits:
    """The per-connection deadlines serve() applies."""

    __slots__ = ("handshake_timeout", "idle_timeout", "write_timeout")

    def __init__(self, handshake_timeout: float, idle_timeout: float, write_timeout: float):
        for name, value in (
            ("handshake_timeout", handshake_timeout),
            ("idle_timeout", idle_timeout),
            ("write_timeout", write_timeout),
        ):
            if not (value > 0 and not math.isnan(value)):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout


async def _accept(listener: trio.SocketListener, errors: _AcceptErrors) -> trio.SocketStream:
    """The next connection; out of descriptors or memory, wait and try again."""
    while True:
        try:
            return await listener.accept()
        except OSError as exc:
            if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            errors.report(exc)
            await trio.sleep(ACCEPT_RETRY_DELAY)


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
    config: ServerConfig,
    limits: _Limits,
    observer: Observer | None,
) -> None:
    errors = _AcceptErrors()
    while True:
        token = object()
        await limiter.acquire_on_behalf_of(token)
        try:
            transport = await _accept(listener, errors)
        except BaseException:
            limiter.release_on_behalf_of(token)
            raise

        async def run(transport: trio.SocketStream = transport, token: object = token) -> None:
            try:
                await _serve_connection(transport, handler, config, limits, observer)
            finally:
                limiter.release_on_behalf_of(token)

        connections.start_soon(run)


async def serve(
    handler: Handler,
    config: ServerConfig,
    host: str | None = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    handshake_timeout: float = 10.0,
    idle_timeout: float = 60.0,
    write_timeout: float = 30.0,
    max_connections: int = 1000,
    shutdown: trio.Event | None = None,
    shutdown_grace: float = 5.0,
    observer: Observer | None = None,
    listeners: Sequence[trio.SocketListener] | None = None,
    task_status: trio.TaskStatus[Sequence[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve TLS on host:port until cancelled, or until `shutdown` is set and drained.

    `task_status.started()` reports the listeners, so `await nursery.start(serve, ...)` with
    port 0 learns the bound port from `listeners[0].socket.getsockname()`. Ready-made
    `listeners` (a socket inherited from a supervisor, say) replace host and port.
    """
    limits = _Limits(handshake_timeout, idle_timeout, write_timeout)
    if listeners is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    limiter = trio.CapacityLimiter(max_connections)
    for listener in listeners:
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
                        config,
                        limits,
                        observer,
                    )
                if shutdown is not None:
                    await shutdown.wait()
                    acceptors.cancel_scope.cancel()
            await _close_listeners(listeners)
            log.info("shutting down: %d connection(s) open", limiter.borrowed_tokens)
            connections.cancel_scope.deadline = trio.current_time() + shutdown_grace
    finally:
        await _close_listeners(listeners)


async def _close_listeners(listeners: Sequence[trio.SocketListener]) -> None:
    with trio.CancelScope(shield=True):
        for listener in listeners:
            await listener.aclose()
