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
The idle timeout restarts with every receive, so alone it bounds nothing for a peer that sends a
byte now and then: TLSStream adds the record timeout (RecordTimeout), and the HTTP handlers a
deadline for a whole request.
"""

from __future__ import annotations

import errno
import math

import trio

# What one receive asks for when the caller names no size (trio.SocketStream's default).
DEFAULT_RECEIVE_SIZE = 65536


class StreamTimeout(Exception):
    """A deadline on the peer passed; `str()` says which and how long."""

    kind = "stream"  # for the connection's log line: "idle timeout (...)"


class IdleTimeout(StreamTimeout):
    """Nothing arrived from the peer within the idle timeout."""

    kind = "idle"


class WriteTimeout(StreamTimeout):
    """The peer accepted no bytes within the write timeout."""

    kind = "write"


class RecordTimeout(StreamTimeout):
    """The peer began a TLS record and did not finish it within the record timeout.

    TLSStream raises it, since only it knows where records begin and end (see there)."""

    kind = "record"


class DeadlineStream(trio.abc.HalfCloseableStream):
    """A TCP socket as a stream whose receives and sends carry the idle and write deadlines.

    It wraps the trio socket itself rather than a trio.SocketStream: a SocketStream would set
    TCP_NODELAY and TCP_NOTSENT_LOWAT on every accepted socket (two system calls per
    connection that the listener's inherited options make needless) and add a layer of context
    managers to every receive and send. Socket errors map to trio's stream errors as
    SocketStream maps them: a closed socket is ClosedResourceError, anything else
    BrokenResourceError. TLSStream above keeps one task per direction.
    """

    def __init__(
        self,
        sock: trio.socket.SocketType,
        *,
        idle_timeout: float = math.inf,
        write_timeout: float = math.inf,
    ) -> None:
        self.socket = sock
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.bytes_received = 0  # for the connection's log line
        self.bytes_sent = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        size = DEFAULT_RECEIVE_SIZE if max_bytes is None else max_bytes
        if size < 1:
            raise ValueError("max_bytes must be >= 1")
        with trio.CancelScope(deadline=trio.current_time() + self.idle_timeout):
            try:
                data = await self.socket.recv(size)
            except OSError as exc:
                raise _stream_error(exc, "receive") from exc
            self.bytes_received += len(data)
            return data
        raise trio.BrokenResourceError("idle timeout") from IdleTimeout(
            f"no data from the peer for {self.idle_timeout:g} s"
        )

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view:
            if not view:
                if self.socket.fileno() == -1:
                    raise trio.ClosedResourceError("the socket was closed")
                await trio.lowlevel.checkpoint()
                return
            start = 0
            while start < len(view):
                with trio.CancelScope(deadline=trio.current_time() + self.write_timeout) as stalled:
                    sent = await self._send_some(view[start:])
                    start += sent
                    self.bytes_sent += sent
                if stalled.cancelled_caught:
                    raise trio.BrokenResourceError("write timeout") from WriteTimeout(
                        f"the peer took no data for {self.write_timeout:g} s"
                    )

    async def _send_some(self, view: memoryview) -> int:
        """One socket send: progress, for the write timeout."""
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            return await self.socket.send(view)
        except OSError as exc:
            raise _stream_error(exc, "send") from exc

    async def wait_send_all_might_not_block(self) -> None:
        if self.socket.fileno() == -1:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            await self.socket.wait_writable()
        except OSError as exc:
            raise _stream_error(exc, "wait") from exc

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        if not self.socket.did_shutdown_SHUT_WR:  # idempotent, as SocketStream's
            try:
                self.socket.shutdown(trio.socket.SHUT_WR)
            except OSError as exc:
                raise _stream_error(exc, "shutdown") from exc

    async def aclose(self) -> None:
        self.socket.close()
        await trio.lowlevel.checkpoint()


def _stream_error(exc: OSError, what: str) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if exc.errno == errno.EBADF:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"socket {what} failed: {exc}")
