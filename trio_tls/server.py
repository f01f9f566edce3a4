"""serve(): accept TCP connections and run a handler on each, inside one trio nursery.

Each connection is its own task: TLS handshake under a deadline, then the handler, then
`aclose()` in a `finally` — shielded and bounded, so even a cancelled connection says goodbye
and frees its socket. A handler's exception is logged with its peer and stays in its task: one
bad connection never takes the server down. A capacity limiter holds one token per open
connection; at the cap the accept loop waits, and the kernel's backlog queues new clients.

Shutdown, when `shutdown` is set: stop accepting, close the listeners, give running connections
`shutdown_grace` seconds, then cancel what is left. One INFO log line per connection: peer,
cipher suite, outcome (the alert, the timeout, or the handler's error).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from .config import ServerConfig
from .errors import TLSError
from .events import Observer
from .plugins import Handler
from .stream import TLSStream

log = logging.getLogger("trio_tls")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4433


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _describe_failure(exc: BaseException) -> str:
    """Name the alert behind a broken stream when there is one."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TLSError):
            alert = cause.alert.name if cause.alert is not None else "no alert"
            return f"{alert} ({cause})"
        cause = cause.__cause__
    return str(exc) or type(exc).__name__


async def _serve_connection(
    transport: trio.SocketStream,
    handler: Handler,
    config: ServerConfig,
    handshake_timeout: float,
    observer: Observer | None,
) -> None:
    peer = _peer_name(transport)
    stream = TLSStream(transport, config, observer=observer, peer=peer)
    outcome = "closed"
    try:
        # Only the handshake's own deadline counts as a timeout: a handler's TooSlowError is
        # the handler's error.
        with trio.move_on_after(handshake_timeout) as deadline:
            await stream.do_handshake()
        if deadline.cancelled_caught:
            outcome = "handshake timeout"
        else:
            await handler(stream)
    except trio.BrokenResourceError as exc:
        outcome = f"failed: {_describe_failure(exc)}"
    except Exception:
        log.exception("handler error for %s", peer)
        outcome = "handler error"
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await stream.aclose()
        suite = stream.info.cipher_suite if stream.handshake_done else "-"
        log.info("%s %s %s", peer, suite, outcome)


async def _accept_loop(
    listener: trio.SocketListener,
    connections: trio.Nursery,
    limiter: trio.CapacityLimiter,
    handler: Handler,
    config: ServerConfig,
    handshake_timeout: float,
    observer: Observer | None,
) -> None:
    while True:
        token = object()
        await limiter.acquire_on_behalf_of(token)
        try:
            transport = await listener.accept()
        except BaseException:
            limiter.release_on_behalf_of(token)
            raise

        async def run(transport: trio.SocketStream = transport, token: object = token) -> None:
            try:
                await _serve_connection(transport, handler, config, handshake_timeout, observer)
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
                        handshake_timeout,
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
