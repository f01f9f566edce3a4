"""tlslite-ng as a client, in-process against a ServerConnection: a second TLS implementation
whose every byte the server checks — hello, key exchange, PRF, record protection, Finished —
comes from tlslite-ng's own code (its X25519, python-ecdsa's curves, its AES-GCM), not ours.

The scripted client (scripted_client.py) borrows the engine's encoders and record protection, so a
bug shared by both would go unseen; OpenSSL cannot send the odd hellos. Two ways in, both over
`Loopback`, a socket-shaped pipe into the engine:

- `connect()` runs tlslite-ng's own client, `TLSConnection.handshakeClientCert`, shaped only
  through `HandshakeSettings` and `recordSize`: ordinary handshakes, resumption, fragmentation.
- `StepClient` assembles the handshake from tlslite-ng's parts the way tlsfuzzer does — its
  message and extension classes, its key exchange and PRF, its record layer (`MessageSocket`) —
  and stops between flights, for what `TLSConnection` will not send: a hello without
  signature_algorithms or supported_groups, several messages in one record, a renegotiation, a
  session offered without extended master secret, a bad ECDH point.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.constants import (
    AlertDescription,
    CertificateType,
    CipherSuite,
    ContentType,
    ECPointFormat,
    ExtensionType,
    GroupName,
    HandshakeType,
    HashAlgorithm,
    SignatureAlgorithm,
    SignatureScheme,
)
from tlslite.defragmenter import Defragmenter
from tlslite.extensions import (
    ECPointFormatsExtension,
    RenegotiationInfoExtension,
    SessionTicketExtension,
    SignatureAlgorithmsExtension,
    SNIExtension,
    SupportedGroupsExtension,
    TLSExtension,
)
from tlslite.handshakehashes import HandshakeHashes
from tlslite.keyexchange import ECDHE_RSAKeyExchange, KeyExchange
from tlslite.mathtls import calc_key
from tlslite.messages import (
    Alert,
    ApplicationData,
    Certificate,
    CertificateRequest,
    ChangeCipherSpec,
    ClientHello,
    Finished,
    Message,
    NewSessionTicket1_0,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
)
from tlslite.messagesocket import MessageSocket
from tlslite.utils.codec import Parser
from tlslite.utils.cryptomath import getRandomBytes

from trio_tls.engine import events
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import NEED_DATA, ConnectionClosed, Event
from trio_tls.engine.wire.errors import RemoteProtocolError

TLS12 = (3, 3)
ECDHE_SUITES = (
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
)
GROUPS = (GroupName.x25519, GroupName.secp256r1, GroupName.secp384r1)
SCHEMES = (
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
)
# RFC 5246 §7.4.1.4.1: a client that sends no signature_algorithms means these.
IMPLIED_SCHEMES = (
    (HashAlgorithm.sha1, SignatureAlgorithm.rsa),
    (HashAlgorithm.sha1, SignatureAlgorithm.ecdsa),
)


class Loopback:
    """A socket-shaped pipe into a ServerConnection.

    What tlslite-ng sends is fed to the server at once and the server's events collected; what
    the server answers waits in `inbox`. An empty inbox reads as EOF: in-process, the server has
    said all it will until it hears more, so waiting could only hang.
    """

    def __init__(self, server: ServerConnection) -> None:
        self.server = server
        self.inbox = bytearray()
        self.sent = bytearray()  # everything the client wrote, for counting its records
        self.events: list[Event] = []
        self.error: RemoteProtocolError | None = None
        self.closed = False
        self._held: bytearray | None = None

    def send(self, data: bytes | bytearray) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes | bytearray) -> None:
        if self._held is not None:
            self._held += data
            return
        self.sent += data
        if self.error is None and not self.closed:
            self.server.receive_data(bytes(data))
            self.pump()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Deliver what is sent inside the block in one receive_data(), as one TCP read."""
        self._held = bytearray()
        try:
            yield
        finally:
            data, self._held = self._held, None
            self.sendall(data)

    def pump(self) -> None:
        """Collect the server's events and whatever it has to send."""
        try:
            while not self.closed and (event := self.server.next_event()) is not NEED_DATA:
                self.events.append(event)
                # A closed connection repeats ConnectionClosed forever, as h11 does.
                self.closed = isinstance(event, ConnectionClosed)
        except RemoteProtocolError as exc:
            self.error = exc
        self.inbox += self.server.data_to_send()

    def recv(self, bufsize: int) -> bytes:
        chunk = bytes(self.inbox[:bufsize])
        del self.inbox[:bufsize]
        return chunk

    def server_sends(self, data: bytes) -> None:
        self.server.send(data)
        self.pump()

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        pass


def settings(**overrides: Any) -> HandshakeSettings:
    """TLS 1.2 only (tlslite-ng offers 1.3 by default), with `overrides` applied and checked."""
    chosen = HandshakeSettings()
    chosen.minVersion = chosen.maxVersion = TLS12
    chosen.keyShares = []  # TLS 1.3 only; they would have to name an offered group
    for name, value in overrides.items():
        setattr(chosen, name, value)
    return chosen.validate()


def connect(
    server: ServerConnection,
    *,
    record_size: int = 2**14,
    session: Any = None,
    **overrides: Any,
) -> tuple[TLSConnection, Loopback]:
    """A handshake by tlslite-ng's own client for localhost, offering `session` (a
    tlslite.session.Session) if given; `overrides` are HandshakeSettings attributes."""
    loop = Loopback(server)
    connection = TLSConnection(loop)
    connection.recordSize = record_size
    connection.handshakeClientCert(
        settings=settings(**overrides), serverName="localhost", session=session
    )
    return connection, loop


def exchange_data(
    loop: Loopback, write: Callable[[bytes], object], read: Callable[[], bytes]
) -> None:
    """Application data both ways under the keys just agreed, by either kind of client."""
    loop.take_events()
    write(b"ping")
    received = loop.take_events()  # one event per record: a small record size splits it
    data = [e.data for e in received if isinstance(e, events.ApplicationData)]
    assert len(data) == len(received), received
    assert b"".join(data) == b"ping"
    loop.server_sends(b"pong")
    assert read() == b"pong"


def connection_data_flows(connection: TLSConnection, loop: Loopback) -> None:
    exchange_data(loop, connection.write, lambda: bytes(connection.read(max=4, min=4)))


def default_extensions(
    *,
    groups: Sequence[int] | None = GROUPS,
    schemes: Sequence[Any] | None = SCHEMES,
    server_name: bytes | None = b"localhost",
    ems: bool = True,
    renegotiation_info: bytes | None = b"",
) -> list[TLSExtension]:
    """A modern TLS 1.2 client's extensions; None leaves one out."""
    extensions: list[TLSExtension] = []
    if server_name is not None:
        extensions.append(SNIExtension().create(bytearray(server_name)))
    if groups is not None:
        extensions.append(SupportedGroupsExtension().create(list(groups)))
        extensions.append(ECPointFormatsExtension().create([ECPointFormat.uncompressed]))
    if schemes is not None:
        extensions.append(SignatureAlgorithmsExtension().create(list(schemes)))
    if ems:
        extensions.append(
            TLSExtension(extType=ExtensionType.extended_master_secret).create(bytearray())
        )
    if renegotiation_info is not None:
        extensions.append(RenegotiationInfoExtension().create(bytearray(renegotiation_info)))
    return extensions


def session_ticket(ticket: bytes) -> TLSExtension:
    return SessionTicketExtension().create(bytearray(ticket))


class StepClient:
    """One TLS 1.2 client connection built from tlslite-ng's parts, one flight per call.

    `send()` queues handshake messages into tlslite-ng's MessageSocket, which packs them into as
    few records of at most `record_size` bytes as it can: several messages share a record, and a
    small `record_size` splits each message over many.
    """

    def __init__(self, server: ServerConnection, *, record_size: int = 2**14) -> None:
        self.loop = Loopback(server)
        defragmenter = Defragmenter()
        defragmenter.add_static_size(ContentType.change_cipher_spec, 1)
        defragmenter.add_static_size(ContentType.alert, 2)
        defragmenter.add_dynamic_size(ContentType.handshake, 1, 3)
        self.sock = MessageSocket(self.loop, defragmenter)
        self.sock.client = True
        self.sock.version = TLS12
        self.sock.recordSize = record_size
        self.hashes = HandshakeHashes()
        self.client_hello: ClientHello | None = None
        self.server_hello: ServerHello | None = None
        self.certificate: Certificate | None = None
        self.server_key_exchange: ServerKeyExchange | None = None
        self.certificate_request: CertificateRequest | None = None
        self.new_session_ticket: NewSessionTicket1_0 | None = None
        self.premaster_secret = bytearray()
        self.master_secret = bytearray()
        self.client_verify_data = bytearray()
        self._kex: ECDHE_RSAKeyExchange | None = None

    # -- sending ---------------------------------------------------------------------------------

    def queue(self, message: Any) -> None:
        if message.contentType == ContentType.handshake:
            self.hashes.update(message.write())
        self.sock.queueMessageBlocking(message)

    def flush(self) -> None:
        self.sock.flushBlocking()

    def send(self, *messages: Any) -> None:
        for message in messages:
            self.queue(message)
        self.flush()

    def send_record(self, content_type: int, payload: bytes) -> None:
        """One record of `payload` as it is (a piece of a message, say), under the current keys."""
        for _ in self.sock.sendRecord(Message(content_type, bytearray(payload))):
            pass

    def hello(
        self,
        *,
        cipher_suites: Sequence[int] = ECDHE_SUITES,
        extensions: Sequence[TLSExtension] | None = None,
        session_id: bytes = b"",
    ) -> ClientHello:
        """A ClientHello (not yet sent); a fresh transcript starts with it."""
        return ClientHello().create(
            TLS12,
            getRandomBytes(32),
            bytearray(session_id),
            list(cipher_suites),
            extensions=default_extensions() if extensions is None else list(extensions),
        )

    def send_hello(
        self, hello: ClientHello | None = None, *, record_version: tuple[int, int] = (3, 1)
    ) -> ClientHello:
        """Send `hello` (a default one if None) in records of `record_version`, as clients that
        may talk to old servers do (RFC 5246 Appendix E.1)."""
        hello = self.hello() if hello is None else hello
        self.hashes = HandshakeHashes()
        self.client_hello = hello
        self.sock.version = record_version
        self.send(hello)
        self.sock.version = TLS12
        return hello

    # -- receiving -------------------------------------------------------------------------------

    def receive(self) -> tuple[int, Parser]:
        """The next whole message the server sent: (content type, parser at its body)."""
        header, parser = self.sock.recvMessageBlocking()
        return header.type, parser

    def expect(self, message_class: Any, *args: Any) -> Any:
        """Parse the next message as a `message_class` handshake message (and hash it)."""
        return self._parse(*self.receive(), message_class, *args)

    def _parse(self, content_type: int, parser: Parser, message_class: Any, *args: Any) -> Any:
        if content_type == ContentType.alert:
            raise AssertionError(f"server sent {Alert().parse(parser)} instead")
        assert content_type == ContentType.handshake, content_type
        message = message_class(*args)
        assert parser.get(1) == message.handshakeType, parser.bytes[:1]
        self.hashes.update(parser.bytes)
        return message.parse(parser)

    def expect_alert(self) -> Alert:
        content_type, parser = self.receive()
        assert content_type == ContentType.alert, (content_type, parser.bytes)
        return Alert().parse(parser)

    def read_server_flight(self) -> ServerHello:
        """ServerHello .. ServerHelloDone; the ServerKeyExchange signature checked by tlslite-ng
        against the certificate's key, over the schemes our hello allowed."""
        assert self.client_hello is not None
        server_hello = self.server_hello = self.expect(ServerHello)
        cipher = server_hello.cipher_suite
        self.certificate = self.expect(Certificate, CertificateType.x509, TLS12)
        ske = self.server_key_exchange = self.expect(ServerKeyExchange, cipher, TLS12)
        schemes = self.client_hello.getExtension(ExtensionType.signature_algorithms)
        KeyExchange.verifyServerKeyExchange(
            ske,
            self.certificate.cert_chain.getEndEntityPublicKey(),
            self.client_hello.random,
            server_hello.random,
            IMPLIED_SCHEMES if schemes is None else schemes.sigalgs,
        )
        content_type, parser = self.receive()
        if parser.bytes[:1] == bytes((HandshakeType.certificate_request,)):
            self.certificate_request = self._parse(content_type, parser, CertificateRequest, TLS12)
            content_type, parser = self.receive()
        self._parse(content_type, parser, ServerHelloDone)
        groups = self.client_hello.getExtension(ExtensionType.supported_groups)
        # RFC 8422 §4: without supported_groups the server may pick any curve.
        accepted_groups = GroupName.allEC if groups is None else groups.groups
        self._kex = ECDHE_RSAKeyExchange(
            cipher, self.client_hello, server_hello, None, accepted_groups
        )
        self.premaster_secret = self._kex.processServerKeyExchange(None, ske)
        return server_hello

    # -- the client's second flight --------------------------------------------------------------

    def client_key_exchange(self, public: bytes | None = None) -> Any:
        """tlslite-ng's ECDHE share for the server's group, or `public` verbatim."""
        assert self._kex is not None, "read_server_flight() first"
        message = self._kex.makeClientKeyExchange()
        if public is not None:
            message.createECDH(bytearray(public))
        return message

    def derive_keys(self) -> None:
        """Master secret (RFC 7627 when the server agreed to it) and pending record keys; call
        once ClientKeyExchange is hashed, before anything after it."""
        assert self.client_hello is not None and self.server_hello is not None
        cipher = self.server_hello.cipher_suite
        ems = self.server_hello.getExtension(ExtensionType.extended_master_secret) is not None
        self.master_secret = calc_key(
            TLS12,
            self.premaster_secret,
            cipher,
            b"extended master secret" if ems else b"master secret",
            handshake_hashes=self.hashes,
            client_random=self.client_hello.random,
            server_random=self.server_hello.random,
            output_length=48,
        )
        self.sock.calcPendingStates(
            cipher, self.master_secret, self.client_hello.random, self.server_hello.random, None
        )

    def finished(self) -> None:
        """ChangeCipherSpec, then Finished under the new keys."""
        assert self.server_hello is not None
        self.sock.sendMessageBlocking(ChangeCipherSpec().create())
        self.sock.changeWriteState()
        self.client_verify_data = self._verify_data(b"client finished")
        self.send(Finished(TLS12).create(self.client_verify_data))

    def key_exchange_and_finished(self) -> None:
        self.send(self.client_key_exchange())
        self.derive_keys()
        self.finished()

    def read_server_finished(self) -> None:
        """The server's NewSessionTicket if it issues one (RFC 5077 §3.3), ChangeCipherSpec and
        Finished, its verify_data checked by tlslite-ng."""
        content_type, parser = self.receive()
        if content_type == ContentType.handshake:
            self.new_session_ticket = self._parse(content_type, parser, NewSessionTicket1_0)
            content_type, parser = self.receive()
        assert (content_type, parser.bytes) == (ContentType.change_cipher_spec, b"\x01")
        self.sock.changeReadState()
        expected = self._verify_data(b"server finished")
        finished = self.expect(Finished, TLS12)
        assert finished.verify_data == expected, "the server's Finished does not verify"

    def handshake(self, hello: ClientHello | None = None) -> None:
        self.send_hello(hello)
        self.read_server_flight()
        self.key_exchange_and_finished()
        self.read_server_finished()

    # -- after the handshake ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.sock.sendMessageBlocking(ApplicationData().create(bytearray(data)))

    def read(self) -> bytes:
        content_type, parser = self.receive()
        if content_type == ContentType.alert:
            raise AssertionError(f"server sent {Alert().parse(parser)} instead of data")
        assert content_type == ContentType.application_data, content_type
        return bytes(parser.bytes)

    def exchange_data(self) -> None:
        exchange_data(self.loop, self.write, self.read)

    def _verify_data(self, label: bytes) -> bytearray:
        assert self.server_hello is not None
        return calc_key(
            TLS12,
            self.master_secret,
            self.server_hello.cipher_suite,
            label,
            handshake_hashes=self.hashes,
            output_length=12,
        )


def alert_name(alert: Alert) -> str:
    return str(AlertDescription.toRepr(alert.description))


def record_headers(data: bytes | bytearray) -> list[tuple[int, int]]:
    """(content type, length) of each record in `data`, a stream of whole records."""
    headers = []
    offset = 0
    while offset < len(data):
        content_type, _, length = struct.unpack_from("!BHH", data, offset)
        headers.append((content_type, length))
        offset += 5 + length
    assert offset == len(data), "a partial record"
    return headers
