"""TLSStream: a trio.abc.Stream that speaks TLS 1.2 (server side) over another stream.

Theory of operation, after trio's SSLStream: all protocol state lives in a sans-IO
ServerConnection; this class only moves bytes between it and the transport and maps failures to
trio's vocabulary. Any protocol error or transport failure breaks the stream for good
(`trio.BrokenResourceError`, cause chained); use after `aclose()` is `trio.ClosedResourceError`;
two tasks sending at once (or receiving at once) is `trio.BusyResourceError`.

The handshake runs once, on the first call that needs it (or `do_handshake()`); concurrent
callers wait for it. Every transport write goes through one lock and takes the connection's
pending bytes *inside* it, so records reach the wire in sequence-number order even when the
receive side has to send (an alert) while a send is in flight. Cancellation during a write or
during the handshake leaves the stream broken, since the peer may have seen half a record. We
never renegotiate, so unlike SSLStream there is no retry loop.

How a connection ends, and what the peer sees (RFC 5246 §7.2.1):
- `aclose()`: close_notify, then the transport closes: a clean end, nothing was truncated.
- `abort()`: a fatal internal_error, then the transport closes: our side failed, so whatever
  the peer received may be incomplete, and it must not mistake it for the whole.
- The peer's close_notify: answered at once with ours; `receive_some` returns b"" and sends are
  refused (BrokenResourceError), since TLS 1.2 has no half-close.
- A broken stream (protocol error, transport failure, write or record timeout) sends its fatal
  alert if it has one and never a close_notify. An idle timeout (deadlines.IdleTimeout) breaks the
  stream but leaves the TLS state intact, so `aclose()` still says close_notify: an idle
  keep-alive connection ends cleanly.

The record timeout (deadlines.RecordTimeout): once a record has begun to arrive, the time spent
waiting for its rest is bounded, whatever trickles in meanwhile. The idle timeout restarts with
every byte, so without this a peer that sends one byte of a record now and then would hold its
connection for ever. Only the time spent waiting in a receive counts, so a record that waited in
the kernel while we were busy sending (back-pressure) is not held against the peer. A record is
at most 18 KiB, so this is also a minimum rate where it matters (a 10 s timeout asks ~1.8 KB/s
of a full record, and of a 30-byte one next to nothing), without a rate's measuring window or
its penalty on pauses between records, which the idle timeout governs.

Lingering close: after a fatal alert (ours, for a protocol error or `abort()`), with `linger`
> 0, the transport is half-closed and what the peer still sends is read and dropped, for at
most `linger` seconds and LINGER_BYTES, before it is closed. A peer that was still writing (a
client's Finished right after its bad CertificateVerify) would otherwise meet a closed socket,
whose reset can destroy the alert before the peer reads it (nginx's lingering_close, Apache's
lingering close, for the same reason).
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable
from contextlib import suppress

import attrs
import trio

from ..engine.config import ServerConfig
from ..engine.connection import ServerConnection
from ..engine.events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    Event,
    HandshakeComplete,
    NeedData,
    Observation,
    Observer,
    SignatureNeeded,
)
from ..engine.wire.enums import AlertLevel
from ..engine.wire.errors import TLSError
from .deadlines import IdleTimeout, RecordTimeout

DEFAULT_RECEIVE_SIZE = 256 * 1024
# What a lingering close reads and drops at most, as a bound on what it costs.
LINGER_BYTES = 64 * 1024
# The peer may already be gone when we say goodbye: that is not an error.
_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


class _State(enum.Enum):
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


class _ConflictDetector:
    """Raise BusyResourceError when two tasks use the same direction at once."""

    __slots__ = ("_held", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(self, *exc_info: object) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held


class PeerClosed(ConnectionError):
    """The peer closed the transport without close_notify.

    Before the handshake ends that is a failed connection; after it, most clients (browsers,
    Python's ssl) close this way, so it is normal unless the protocol on top was mid-message.
    """


class PeerAlert(ConnectionError):
    """The peer ended the connection with a fatal alert."""

    def __init__(self, alert: AlertReceived) -> None:
        super().__init__(f"the peer sent a fatal {alert.name} alert")
        self.alert = alert


class TLSStream(trio.abc.Stream):
    """The server side of a TLS 1.2 connection over `transport_stream`.

    `shutdown` is set when the server begins a graceful shutdown: a handler that may wait long
    for its peer (between keep-alive requests, say) can watch it and end the connection at the
    next clean point, rather than be cancelled when the grace period runs out. `initial_data`
    is what was already read from the transport (the server peeks at the first bytes).
    """

    def __init__(
        self,
        transport_stream: trio.abc.Stream,
        config: ServerConfig,
        *,
        observer: Observer | None = None,
        https_compatible: bool = False,
        peer: str | None = None,
        receive_size: int = DEFAULT_RECEIVE_SIZE,
        shutdown: trio.Event | None = None,
        initial_data: bytes = b"",
        crypto_limiter: trio.CapacityLimiter | None = None,
        record_timeout: float = math.inf,
        linger: float = 0.0,
    ) -> None:
        self.transport_stream = transport_stream
        self.shutdown = trio.Event() if shutdown is None else shutdown
        # The handshake as observed, for a handler that declares `records_handshake = True`
        # (serve() fills it; observe/recorder.py): (seconds since the connection began,
        # observation).
        self.handshake_record: list[tuple[float, Observation]] | None = None
        # With a limiter, the handshake's signature runs on a worker thread (at most as many
        # at once as the limiter allows) while the event loop serves other connections.
        self._crypto_limiter = crypto_limiter
        self._connection = ServerConnection(
            config, observer, defer_signatures=crypto_limiter is not None
        )
        if initial_data:
            self._connection.receive_data(initial_data)
        self._https_compatible = https_compatible
        self._peer = peer
        self._receive_size = receive_size
        self._record_timeout = record_timeout
        self._record_waited = 0.0  # seconds spent waiting for the rest of the current record
        self._same_record = 0  # what record_bytes_buffered will be if it is still that record
        self._linger = linger
        self._state = _State.OK
        self._info: ConnectionInfo | None = None
        self._handshake_lock = trio.Lock()
        self._write_lock = trio.StrictFIFOLock()
        self._send_conflict = _ConflictDetector("another task is sending on this TLSStream")
        self._receive_conflict = _ConflictDetector("another task is receiving on this TLSStream")
        self._idle_expired = False  # broken by an idle timeout: the TLS state is still whole
        self._received = bytearray()  # decrypted bytes not yet returned by receive_some
        self._transport_reads = 0
        # An event or error met while gathering data; delivered by the next call.
        self._deferred: Event | TLSError | None = None

    @property
    def handshake_done(self) -> bool:
        return self._info is not None

    @property
    def info(self) -> ConnectionInfo:
        """What was negotiated; available once the handshake is complete."""
        if self._info is None:
            raise trio.BrokenResourceError("the TLS handshake has not completed")
        return self._info

    @property
    def requested_sni(self) -> str | None:
        """The host name the client asked for, once its ClientHello is read (even if the
        handshake then fails); `info.sni` is the one negotiated."""
        return self._connection.requested_sni

    # -- internals ----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._state is _State.CLOSED:
            raise trio.ClosedResourceError("this TLSStream is closed")
        if self._state is _State.BROKEN:
            raise trio.BrokenResourceError("this TLSStream is broken")

    async def _flush(self) -> None:
        """Write what the connection has queued, in order, as one transport write."""
        await _acquire(self._write_lock)
        try:
            data = self._connection.data_to_send()
            if data:
                await self.transport_stream.send_all(data)
            else:
                await trio.lowlevel.checkpoint()
        finally:
            self._write_lock.release()

    async def _fail(
        self, exc: BaseException
    ) -> trio.BrokenResourceError | trio.ClosedResourceError:
        """Break the stream; if a protocol error left an alert queued, try to deliver it."""
        if self._state is _State.CLOSED:  # aclose() ran while this task was blocked
            return trio.ClosedResourceError("this TLSStream was closed")
        self._state = _State.BROKEN
        if isinstance(exc, TLSError) and not self._write_lock.locked():
            with trio.move_on_after(1), suppress(*_TRANSPORT_ERRORS):
                await self._flush()
            if exc.alert is not None:
                await self._linger_after_alert()
        broken = trio.BrokenResourceError(str(exc) or type(exc).__name__)
        broken.__cause__ = exc  # even where the caller raises it without `from`
        return broken

    async def _next_event(self) -> Event | NeedData:
        """The connection's next event, reading from the transport when it needs data."""
        while True:
            try:
                if self._deferred is not None:
                    deferred, self._deferred = self._deferred, None
                    if isinstance(deferred, TLSError):
                        raise deferred
                    return deferred
                event = self._connection.next_event()
            except TLSError as exc:
                raise await self._fail(exc) from exc
            if event is not NEED_DATA:
                return event
            try:
                if self._connection.has_data_to_send():
                    await self._flush()
                self._transport_reads += 1
                partial = self._connection.record_bytes_buffered
                if partial != self._same_record:  # none begun, or a new one since the last read
                    self._record_waited = 0.0
                if partial:
                    data = await self._receive_rest_of_record()
                else:
                    data = await self.transport_stream.receive_some(self._receive_size)
            except _TRANSPORT_ERRORS as exc:
                self._idle_expired = isinstance(exc.__cause__, IdleTimeout)
                raise await self._fail(exc) from exc
            self._connection.receive_data(data)
            # What the buffer will hold if these bytes finish no record: still the same one.
            self._same_record = partial + len(data)

    async def _receive_rest_of_record(self) -> bytes | bytearray:
        """A receive while a record is half here, under what is left of the record timeout."""
        started = trio.current_time()
        left = self._record_timeout - self._record_waited
        with trio.move_on_at(started + left):
            try:
                return await self.transport_stream.receive_some(self._receive_size)
            finally:
                self._record_waited += trio.current_time() - started
        raise trio.BrokenResourceError("record timeout") from RecordTimeout(
            f"a record begun by the peer was not finished within {self._record_timeout:g} s"
        )

    # -- trio.abc.Stream ----------------------------------------------------------------------

    async def do_handshake(self) -> None:
        """Run the handshake if nobody has yet; wait for it if another task is running it."""
        self._check_usable()
        if self._info is not None:
            await trio.lowlevel.checkpoint()
            return
        await _acquire(self._handshake_lock)
        try:
            if self._info is None:  # else another task finished it while we waited
                self._check_usable()
                await self._run_handshake()
        finally:
            self._handshake_lock.release()

    async def _run_handshake(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, HandshakeComplete):
                    if self._connection.has_data_to_send():  # our Finished, unless resumed
                        await self._flush()
                    self._info = attrs.evolve(event.info, peer=self._peer)
                    return
                if isinstance(event, SignatureNeeded):
                    signature = await trio.to_thread.run_sync(
                        event.sign, limiter=self._crypto_limiter
                    )
                    self._connection.complete_signature(signature)
                elif isinstance(event, ConnectionClosed):
                    raise await self._fail(
                        PeerClosed("the peer closed the connection during the handshake")
                    )
                elif isinstance(event, AlertReceived) and event.level == AlertLevel.fatal:
                    raise await self._fail(PeerAlert(event))
        except trio.Cancelled:
            self._state = _State.BROKEN
            raise
        except _TRANSPORT_ERRORS as exc:
            if self._state is _State.OK:
                raise await self._fail(exc) from exc
            raise

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._receive_conflict:
            if max_bytes is not None and operator.index(max_bytes) < 1:
                raise ValueError("max_bytes must be >= 1")
            if self._info is None:
                await self.do_handshake()
            self._check_usable()
            # Every receive is a checkpoint, as trio requires; when the data was already
            # buffered, cancellation is checked *before* taking it (so none is lost) and the
            # yield after it is shielded. `reads` tells whether the transport was awaited.
            await trio.lowlevel.checkpoint_if_cancelled()
            reads = self._transport_reads
            while not self._received:
                event = await self._next_event()
                if isinstance(event, ApplicationData):
                    data = self._take_buffered(event.data, max_bytes)
                    if data is not None:
                        if reads == self._transport_reads:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                        return data
                elif isinstance(event, ConnectionClosed):
                    if event.close_notify:
                        with suppress(*_TRANSPORT_ERRORS):
                            await self._flush()  # our close_notify in reply
                        return b""
                    if self._https_compatible:
                        return b""
                    raise await self._fail(
                        PeerClosed("the peer closed the connection without close_notify")
                    )
                elif isinstance(event, AlertReceived) and event.level == AlertLevel.fatal:
                    raise await self._fail(PeerAlert(event))
            if reads == self._transport_reads:
                await trio.lowlevel.cancel_shielded_checkpoint()
            size = len(self._received) if max_bytes is None else max_bytes
            chunk = bytes(self._received[:size])
            del self._received[:size]
            return chunk

    def _take_buffered(self, first: bytes, max_bytes: int | None) -> bytes | None:
        """Join `first` with the records already decrypted behind it, up to `max_bytes`.

        One transport read usually holds several records; handing them out together means
        one trip through the caller (and, for a relay, one send) per read instead of per
        record. Anything that is not data, or an error, waits for the next call. Returns None
        when what is left over went to the buffer instead.
        """
        limit = self._receive_size if max_bytes is None else max_bytes
        if len(first) > limit:
            self._received += first
            return None
        chunks = [first]
        size = len(first)
        while size < limit:
            try:
                event = self._connection.next_event()
            except TLSError as exc:
                self._deferred = exc
                break
            if event is NEED_DATA:
                break
            if not isinstance(event, ApplicationData):
                self._deferred = event
                break
            room = limit - size
            if len(event.data) > room:
                chunks.append(event.data[:room])
                self._received += event.data[room:]
                break
            chunks.append(event.data)
            size += len(event.data)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            if self._info is None:
                await self.do_handshake()
            self._check_usable()
            try:
                self._connection.send(data)
            except TLSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            try:
                await self._flush()
            except trio.Cancelled:
                self._state = _State.BROKEN
                raise
            except _TRANSPORT_ERRORS as exc:
                raise await self._fail(exc) from exc

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            self._check_usable()
            await self.transport_stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Send close_notify (without waiting for the peer's) and close the transport."""
        await self._close(self._connection.close, clean=True)

    async def abort(self) -> None:
        """Send a fatal internal_error instead of close_notify, then close the transport.

        For a connection whose sender failed part way (a handler raised, or was cancelled):
        the peer learns that the stream it got was cut short.
        """
        await self._close(self._connection.abort, clean=False)

    async def _close(self, say_goodbye: Callable[[], None], *, clean: bool) -> None:
        if self._state is _State.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        tls_intact = self._state is _State.OK or self._idle_expired
        send_goodbye = (
            tls_intact
            and self._info is not None
            and not (clean and self._https_compatible)
            and not self._write_lock.locked()
        )
        self._state = _State.CLOSED
        try:
            if send_goodbye:
                say_goodbye()
                with suppress(*_TRANSPORT_ERRORS):
                    await self._flush()
                if not clean and not self._receive_conflict.held:
                    await self._linger_after_alert()
        finally:
            await self.transport_stream.aclose()

    async def _linger_after_alert(self) -> None:
        """The lingering close (module docstring): half-close, then read and drop what the
        peer still sends, until its EOF, `linger` seconds or LINGER_BYTES. Shielded, since it
        is part of saying goodbye, and bounded."""
        transport = self.transport_stream
        if self._linger <= 0 or not isinstance(transport, trio.abc.HalfCloseableStream):
            return
        deadline = trio.current_time() + self._linger
        with trio.CancelScope(shield=True, deadline=deadline), suppress(*_TRANSPORT_ERRORS):
            await transport.send_eof()
            left = LINGER_BYTES
            while left > 0 and (data := await transport.receive_some(left)):
                left -= len(data)


async def _acquire(lock: trio.Lock | trio.StrictFIFOLock) -> None:
    """Take a free lock at once, with no checkpoint of its own: the caller's transport I/O, next,
    is one, and a second would cost every handshake and every send a trip through the
    scheduler. A lock another task holds is waited for as usual."""
    if lock.locked():
        await lock.acquire()
    else:
        lock.acquire_nowait()
