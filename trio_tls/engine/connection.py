"""ServerConnection: the sans-IO TLS server (h11's contract; RFC 5246 and RFC 8446's protocol).

Feed it bytes with `receive_data()` (b"" for EOF), pull `next_event()` until NEED_DATA, and
write out whatever `data_to_send()` returns after each step. It never touches a socket or a
clock, so it runs the same under trio, asyncio, threads or a test.

Failures: engine code raises a LocalProtocolError subclass naming the alert to send. Here it
becomes fatal: the queued handshake flight is dropped, the alert is queued (under the current
write protection, as RFC 5246 §7.2 wants), the connection enters the error state, and the
error is re-raised as RemoteProtocolError (the peer's fault) with the same `.alert`. After that,
`next_event()` only raises; `data_to_send()` still hands over the alert.

The record rules that differ in TLS 1.3 (RFC 8446 §5, §6) switch on once the handshake states pick
it (`enter_tls13`): no record of another type between a handshake message's fragments, no
handshake message across a key change, every alert but close_notify and user_canceled fatal
whatever its level, and our own keys updated before the AEAD's limit (§5.5).
"""

from __future__ import annotations

from collections.abc import Callable

from .config import ServerConfig
from .events import (
    NEED_DATA,
    AlertObserved,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    Direction,
    Event,
    HandshakeComplete,
    MessageObserved,
    NeedData,
    Observer,
    RecordObserved,
    SignatureNeeded,
)
from .handshake.base import AwaitingSignature, State
from .handshake.hello import ExpectClientHello
from .record.framing import HandshakeAssembler, RecordReader, write_records
from .record.protection import (
    MAX_PLAINTEXT,
    TAG_LENGTH,
    Buffer,
    ExplicitNonceAEAD,
    NullProtection,
    RecordProtection,
    XorNonceAEAD,
)
from .record.protection13 import SKIPPED, Tls13Protection
from .wire.codec import Reader
from .wire.enums import AlertDescription, AlertLevel, ContentType
from .wire.errors import (
    DecodeError,
    InternalError,
    LocalProtocolError,
    RemoteProtocolError,
    TLSError,
    UnexpectedMessage,
)
from .wire.extensions import ServerName
from .wire.messages import (
    Alert,
    ChangeCipherSpec,
    ClientHello,
    ClientMessage,
    HandshakeMessage,
    encode_body,
    encode_handshake,
)

_CHANGE_CIPHER_SPEC = encode_body(ChangeCipherSpec())
# Records that carry nothing for the application cost a peer nothing to send; in a row, past
# these counts, they are a denial of service and end the connection with unexpected_message
# (OpenSSL's limits: it fails the 5th warning alert and the 33rd empty record).
MAX_WARNINGS_IN_A_ROW = 4
MAX_EMPTY_RECORDS_IN_A_ROW = 32
# TLS 1.3 KeyUpdates between two application data records (OpenSSL's limit too): each costs
# the peer five bytes and us a key derivation, and an answer when it asks for one.
MAX_KEY_UPDATES_IN_A_ROW = 32


class ServerConnection:
    """One TLS 1.2 server connection's protocol state; see the module docstring."""

    def __init__(
        self,
        config: ServerConfig,
        observer: Observer | None = None,
        *,
        defer_signatures: bool = False,
    ) -> None:
        self._config = config
        self._observer = observer
        # With defer_signatures, the user makes the ServerKeyExchange signature (SignatureNeeded)
        # and the connection waits in `_awaiting` until complete_signature().
        self._defer_signatures = defer_signatures
        self._awaiting: AwaitingSignature | None = None
        self._resume_handshake = False  # messages after the ClientHello wait for the signature
        self._reader = RecordReader(NullProtection())
        self._write_protection: RecordProtection = NullProtection()
        self._handshake = HandshakeAssembler()
        self._state: State = ExpectClientHello()
        self._flight = bytearray()  # handshake messages waiting to be framed into records
        self._outgoing: list[bytes] = []  # records' pieces, joined once per data_to_send()
        # Rarely more than one event waits: a list costs 56 bytes per connection, a deque 760.
        self._events: list[Event] = []
        self._eof = False
        self._error: TLSError | None = None
        self._peer_closed: ConnectionClosed | None = None  # repeated once the peer is done
        self._we_closed = False
        self._observed_records = [False, False]  # first application record received, sent
        self._warnings_in_a_row = 0  # warning alerts received and renegotiations refused
        self._empty_records_in_a_row = 0
        self._key_updates_in_a_row = 0
        self._tls13 = False  # the record rules of RFC 8446 apply
        # TLS 1.3: the write protection whose record limit (§5.5) updates our keys.
        self._rekey: Tls13Protection | None = None
        self.info: ConnectionInfo | None = None
        # The host name the client's ClientHello named, known even when the handshake then
        # fails: the log line of a failed handshake says which site the client wanted.
        self.requested_sni: str | None = None

    # -- the public contract ------------------------------------------------------------------

    @property
    def errored(self) -> bool:
        return self._error is not None

    def receive_data(self, data: Buffer) -> None:
        """Add bytes from the transport; b"" means the transport reached EOF."""
        if data:
            self._reader.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        if self._error is not None:
            raise RemoteProtocolError("the connection has failed", alert=None) from self._error
        if self._awaiting is not None:
            raise RuntimeError("the handshake waits for complete_signature()")
        try:
            while not self._events:
                if self._resume_handshake:
                    self._resume_handshake = False
                    self._handle_handshake_messages()
                    continue
                if self._peer_closed is not None:
                    return self._peer_closed
                record = self._reader.next_record()
                if record is None:
                    if not self._eof:
                        return NEED_DATA
                    self._end_of_input()
                    continue
                self._dispatch(*record)
                if self._awaiting is None:  # else the flight goes out whole, once signed
                    self._flush_flight()
        except LocalProtocolError as exc:
            self._fail(exc)
            raise RemoteProtocolError(str(exc), exc.alert) from exc
        except BaseException as exc:
            # Not a protocol error: a bug, or the caller's KeyboardInterrupt. Whatever state
            # it interrupted is suspect, so the connection refuses further work (as h11 does).
            self._error = LocalProtocolError(f"interrupted by {exc!r}", alert=None)
            raise
        return self._events.pop(0)

    def complete_signature(self, signature: bytes) -> None:
        """Hand over the result of SignatureNeeded.sign(); the handshake goes on."""
        if self._awaiting is None:
            raise RuntimeError("no signature is awaited")
        awaiting, self._awaiting = self._awaiting, None
        if self._error is None:  # aborted meanwhile: the flight is gone, and so is the state
            self._state = awaiting.signed(self, signature)
            self._flush_flight()
            self._resume_handshake = True

    def send(self, data: Buffer) -> None:
        """Queue application data; only between the handshake and close."""
        if self.info is None or self._we_closed or self._error is not None:
            raise LocalProtocolError("cannot send application data now", alert=None)
        if data:
            rekey = self._rekey
            if rekey is not None and rekey.next_sequence >= rekey.record_limit:
                self._state = self._state.update_own_keys(self)
            if self._observer is not None and not self._observed_records[1]:
                self._observe_record("sent", self._write_protection, min(len(data), MAX_PLAINTEXT))
            write_records(
                self._outgoing, self._write_protection, ContentType.application_data, data
            )

    def close(self) -> None:
        """Queue close_notify (RFC 5246 §7.2.1); later sends are refused. Idempotent."""
        if not self._we_closed and self._error is None:
            self._we_closed = True
            self._send_alert(AlertLevel.warning, AlertDescription.close_notify)

    def abort(self) -> None:
        """Queue a fatal internal_error instead of close_notify: our side failed mid-stream,
        and the peer must not take what it received for the whole (RFC 5246 §7.2.1 exists to
        expose truncation). The connection enters the error state. Idempotent."""
        if self._error is None:
            self._fail(InternalError("the server aborted the connection"))

    def has_data_to_send(self) -> bool:
        return bool(self._outgoing)

    @property
    def record_bytes_buffered(self) -> int:
        """How much of a record is buffered, waiting for the rest: after NEED_DATA, more than
        0 means the peer has begun a record and not finished it (the runtime's record
        timeout). Bytes that came since without this number growing by as many finished a
        record on the way: a new one has begun."""
        return self._reader.buffered()

    def data_to_send(self) -> bytes:
        out = b"".join(self._outgoing)
        self._outgoing.clear()
        return out

    # -- input --------------------------------------------------------------------------------

    def _end_of_input(self) -> None:
        if self._reader.buffered() or not self._handshake.is_empty():
            raise LocalProtocolError("the transport closed in the middle of a record", alert=None)
        if self.info is None:
            raise LocalProtocolError("the transport closed during the handshake", alert=None)
        self._peer_closed = ConnectionClosed(close_notify=False)
        self._events.append(self._peer_closed)

    def _dispatch(self, content_type: int, payload: Buffer) -> None:
        if content_type == SKIPPED:  # TLS 1.3 early data, refused and skipped (RFC 8446 §4.2.10)
            return
        if payload:
            self._empty_records_in_a_row = 0
        else:
            self._empty_records_in_a_row += 1
            if self._empty_records_in_a_row > MAX_EMPTY_RECORDS_IN_A_ROW:
                raise UnexpectedMessage("too many empty records in a row")
        if content_type == ContentType.handshake:
            self._handshake.feed(payload)
            self._handle_handshake_messages()
            return
        # RFC 5246 §6.2.1: records of other types MAY come between the fragments of a
        # handshake message in TLS 1.2; each is judged by the state alone: data after the
        # handshake is data, a CCS is out of place anyway. RFC 8446 §5.1 forbids it.
        if self._tls13 and not self._handshake.is_empty():
            raise UnexpectedMessage("a record between the fragments of a handshake message")
        if content_type == ContentType.application_data:
            if not self._state.accepts_application_data:
                raise UnexpectedMessage("application data before the handshake finished")
            if payload:
                self._warnings_in_a_row = 0
                self._key_updates_in_a_row = 0
                self._events.append(ApplicationData(bytes(payload)))
                if self._observer is not None and not self._observed_records[0]:
                    self._observe_record("received", self._reader.protection, len(payload))
        elif content_type == ContentType.change_cipher_spec:
            change = ChangeCipherSpec.decode(Reader(payload))
            self._state = self._state.handle_change_cipher_spec(self)
            if self._observer is not None:
                self._observer(MessageObserved("received", change, _CHANGE_CIPHER_SPEC))
        else:
            self._handle_alert(payload)

    def _handle_handshake_messages(self) -> None:
        """Every whole handshake message buffered, until one leaves a signature awaited."""
        while self._awaiting is None and (
            message := self._handshake.next_message(self._state.accepted)
        ):
            self._handle_handshake(*message)

    def _handle_handshake(self, message_class: type[ClientMessage], raw: bytes) -> None:
        reader = Reader(raw)
        reader.raw(4)
        message = message_class.decode(reader)
        reader.end()
        if self._observer is not None:
            self._observer(MessageObserved("received", message, raw))
        if isinstance(message, ClientHello):
            server_name = message.extension(ServerName)
            self.requested_sni = server_name.host_name or None if server_name else None
        state = self._state
        self._state = state.handle_handshake(self, message, raw)
        if self._state is not state:
            self._warnings_in_a_row = 0

    def _handle_alert(self, payload: Buffer) -> None:
        if self._tls13 and not payload:
            raise UnexpectedMessage("an empty alert record")  # RFC 8446 §5.4
        reader = Reader(payload)
        alert = Alert.decode(reader)
        if not reader.at_end():
            raise DecodeError("alert record is not exactly one alert")
        self._events.append(AlertReceived(alert.level, alert.description))
        if self._observer is not None:
            self._observer(AlertObserved("received", alert.level, alert.description))
        if self._tls13:
            self._handle_tls13_alert(alert.description)
        elif (
            alert.level == AlertLevel.warning and alert.description != AlertDescription.close_notify
        ):
            self._count_warning("warning alerts")
        elif alert.description == AlertDescription.close_notify:
            # RFC 5246 §7.2.1: answer with our own close_notify, discarding pending writes;
            # nothing more may be sent.
            self._peer_closed = ConnectionClosed(close_notify=True)
            self.close()
        elif alert.level == AlertLevel.fatal:
            # RFC 5246 §7.2.2: the connection ends at once; nothing more is read or sent, and
            # an aborted connection must never look like a clean close.
            self._peer_closed = ConnectionClosed(close_notify=False)
            self._we_closed = True

    def _handle_tls13_alert(self, description: int) -> None:
        """RFC 8446 §6: the level is ignored. close_notify closes, user_canceled is only
        news (a close_notify follows it), and every other alert is an error that ends the
        connection at once, without an answer."""
        if description == AlertDescription.close_notify:
            self._peer_closed = ConnectionClosed(close_notify=True)
            self.close()
        elif description == AlertDescription.user_canceled:
            self._count_warning("user_canceled alerts")
        else:
            self._peer_closed = ConnectionClosed(close_notify=False)
            self._we_closed = True

    def _count_warning(self, what: str) -> None:
        self._warnings_in_a_row += 1
        if self._warnings_in_a_row > MAX_WARNINGS_IN_A_ROW:
            raise UnexpectedMessage(f"too many {what} in a row")

    def _fail(self, exc: TLSError) -> None:
        self._error = exc
        self._flight.clear()
        if exc.alert is not None and not self._we_closed:
            self._we_closed = True
            self._send_alert(AlertLevel.fatal, exc.alert, str(exc))

    # -- output (HandshakeContext for the states) ---------------------------------------------

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def observer(self) -> Observer | None:
        return self._observer

    def send_handshake(self, message: HandshakeMessage, encoded: bytes | None = None) -> bytes:
        if encoded is None:
            encoded = encode_handshake(message)
        if self._observer is not None:
            self._observer(MessageObserved("sent", message, encoded))
        self._flight += encoded
        return encoded

    def negotiated_version(self) -> None:
        self._reader.strict_version = True

    def enter_tls13(self) -> None:
        self._tls13 = True

    def set_read_protection(self, protection: RecordProtection) -> None:
        # RFC 8446 §5.1: a message before a key change must end its record. (In TLS 1.2 the
        # states refuse any handshake byte before a ChangeCipherSpec, so this holds there too.)
        if not self._handshake.is_empty():
            raise UnexpectedMessage("a handshake message spans a change of keys")
        self._reader.protection = protection

    def set_write_protection(self, protection: RecordProtection) -> None:
        self._flush_flight()
        self._write_protection = protection
        if isinstance(protection, Tls13Protection):
            self._rekey = protection

    def send_change_cipher_spec(self) -> None:
        self._flush_flight()
        self._write_protection.seal_into(
            self._outgoing, ContentType.change_cipher_spec, _CHANGE_CIPHER_SPEC
        )
        if self._observer is not None:
            self._observer(MessageObserved("sent", ChangeCipherSpec(), _CHANGE_CIPHER_SPEC))

    def count_key_update(self) -> None:
        self._key_updates_in_a_row += 1
        if self._key_updates_in_a_row > MAX_KEY_UPDATES_IN_A_ROW:
            raise UnexpectedMessage("too many KeyUpdates in a row")

    def update_write_keys(self, key_update: HandshakeMessage, protection: RecordProtection) -> None:
        if not self._we_closed:  # nothing may follow our close_notify
            self.send_handshake(key_update)
            self.set_write_protection(protection)

    def change_write_protection(self, protection: RecordProtection) -> None:
        self.send_change_cipher_spec()
        self._write_protection = protection

    def refuse_renegotiation(self) -> None:
        self._count_warning("renegotiation attempts")
        if not self._we_closed:  # nothing may follow our close_notify
            self._send_alert(
                AlertLevel.warning,
                AlertDescription.no_renegotiation,
                "a ClientHello after the handshake: renegotiation is refused",
            )

    def request_signature(self, sign: Callable[[], bytes], awaiting: AwaitingSignature) -> State:
        if not self._defer_signatures:
            return awaiting.signed(self, sign())
        self._awaiting = awaiting
        self._events.append(SignatureNeeded(sign))
        return awaiting

    def handshake_complete_event(self, info: ConnectionInfo) -> None:
        self.info = info
        self._events.append(HandshakeComplete(info))

    def _flush_flight(self) -> None:
        if self._flight:
            write_records(
                self._outgoing, self._write_protection, ContentType.handshake, self._flight
            )
            self._flight.clear()

    def _send_alert(self, level: int, description: int, reason: str = "") -> None:
        if self._observer is not None:
            self._observer(AlertObserved("sent", level, description, reason))
        self._write_protection.seal_into(
            self._outgoing, ContentType.alert, bytes((level, description))
        )

    def _observe_record(
        self, direction: Direction, protection: RecordProtection, length: int
    ) -> None:
        """Report the first application record each way: how its nonce and AAD were made."""
        if not isinstance(protection, ExplicitNonceAEAD | XorNonceAEAD | Tls13Protection):
            return
        received = direction == "received"
        self._observed_records[0 if received else 1] = True
        sequence = protection.next_sequence - (1 if received else 0)  # already opened
        parameters = protection.parameters(sequence, ContentType.application_data, length)
        assert self._observer is not None
        self._observer(
            RecordObserved(
                direction,
                length,
                sequence,
                parameters.nonce,
                parameters.explicit_nonce,
                parameters.additional_data,
                TAG_LENGTH,
            )
        )
