"""Per-operation deadlines on a TCP connection: the idle timeout and the write timeout.

A server that only bounds the handshake can be filled by clients that then say nothing, or that
send requests and never read the answers. serve() wraps every accepted socket in a
DeadlineStream, so these limits hold for every handler without the handler doing anything:

- idle timeout: a receive that gets no bytes for that long fails;
- write timeout: a send that makes no progress for that long fails. Progress is counted per
  `socket.send()`, as nginx's send_timeout does, so a slow reader that keeps reading is never
  cut off however large the response, while one that stops reading is.

Both failures are `trio.BrokenResourceError` whose cause is an IdleTimeout or a WriteTimeout,
so TLSStream and serve() can tell them from a peer that vanished. A receive is cancelled
atomically by trio, so after an idle timeout the TLS state is intact and a close_notify may
still be sent; after a write timeout the peer may hold half a record, and the stream is done.
"""

from __future__ import annotations

import math

import trio


class StreamTimeout(Exception):
    """A deadline on the peer passed; `str()` says which and how long."""


class IdleTimeout(StreamTimeout):
    """Nothing arrived from the peer within the idle timeout."""


class WriteTimeout(StreamTimeout):
    """The peer accepted no bytes within the write timeout."""


class DeadlineStream(trio.abc.HalfCloseableStream):
    """A SocketStream whose receives and sends carry the idle and write deadlines."""

    def __init__(
        self,
        transport: trio.SocketStream,
        *,
        idle_timeout: float = math.inf,
        write_timeout: float = math.inf,
    ) -> None:
        self.transport = transport
        self.socket = transport.socket
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.bytes_received = 0  # for the connection's log line
        self.bytes_sent = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        with trio.move_on_after(self.idle_timeout):
            data = await self.transport.receive_some(max_bytes)
            self.bytes_received += len(data)
            return data
        raise trio.BrokenResourceError("idle timeout") from IdleTimeout(
            f"no data from the peer for {self.idle_timeout:g} s"
        )

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.write_timeout == math.inf:
            await self.transport.send_all(data)
            self.bytes_sent += len(data)
            return
        with memoryview(data) as view:
            if not view:
                await self.transport.send_all(b"")
                return
            start = 0
            while start < len(view):
                with trio.move_on_after(self.write_timeout) as stalled:
                    sent = await self._send_some(view[start:])
                    start += sent
                    self.bytes_sent += sent
                if stalled.cancelled_caught:
                    raise trio.BrokenResourceError("write timeout") from WriteTimeout(
                        f"the peer took no data for {self.write_timeout:g} s"
                    )

    async def _send_some(self, view: memoryview) -> int:
        """One socket send, with SocketStream's mapping of socket errors to stream errors."""
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            return await self.socket.send(view)
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket send failed: {exc}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.transport.send_eof()

    async def aclose(self) -> None:
        await self.transport.aclose()
