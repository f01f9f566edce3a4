"""The baseline: trio_tls.serve() rebuilt on trio.SSLStream, i.e. on the stdlib `ssl` module.

This is what a trio user would write without trio-tls, and it is kept deliberately shaped like
`trio_tls.serve` — `trio.open_tcp_listeners`, a capacity limiter, one nursery task per
connection, the handshake under `trio.fail_after`, the handler, then a shielded and bounded
`aclose()` and one log call — so that the benchmark compares the TLS implementations and not two
different server loops. Only the TLS object differs: `trio.SSLStream(transport, ctx,
server_side=True)` where trio-tls has `TLSStream(transport, config)`. Graceful shutdown is left
out because the benchmark ends its servers with SIGTERM.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence

import trio

log = logging.getLogger("bench.stdlib_server")

StreamHandler = Callable[[trio.abc.Stream], Awaitable[None]]


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


async def _serve_connection(
    transport: trio.SocketStream,
    handler: StreamHandler,
    context: ssl.SSLContext,
    handshake_timeout: float,
) -> None:
    peer = _peer_name(transport)
    stream = trio.SSLStream(transport, context, server_side=True)
    outcome = "closed"
    try:
        with trio.fail_after(handshake_timeout):
            await stream.do_handshake()
        await handler(stream)
    except trio.TooSlowError:
        outcome = "handshake timeout"
    except trio.BrokenResourceError as exc:
        outcome = f"failed: {exc.__cause__ or exc}"
    except Exception:
        log.exception("handler error for %s", peer)
        outcome = "handler error"
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await stream.aclose()
        log.info("%s %s", peer, outcome)


async def _accept_loop(
    listener: trio.SocketListener,
    connections: trio.Nursery,
    limiter: trio.CapacityLimiter,
    handler: StreamHandler,
    context: ssl.SSLContext,
    handshake_timeout: float,
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
                await _serve_connection(transport, handler, context, handshake_timeout)
            finally:
                limiter.release_on_behalf_of(token)

        connections.start_soon(run)


async def serve(
    handler: StreamHandler,
    context: ssl.SSLContext,
    host: str,
    port: int,
    *,
    handshake_timeout: float = 10.0,
    max_connections: int = 1000,
    task_status: trio.TaskStatus[Sequence[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve TLS through trio.SSLStream on host:port until cancelled."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    limiter = trio.CapacityLimiter(max_connections)
    task_status.started(listeners)
    try:
        async with trio.open_nursery() as connections:
            for listener in listeners:
                connections.start_soon(
                    _accept_loop,
                    listener,
                    connections,
                    limiter,
                    handler,
                    context,
                    handshake_timeout,
                )
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()
