"""TLS 1.2 handshake messages as frozen attrs classes (RFC 5246 §7.4, §7.1, §7.2).

Each class is named after its RFC struct and knows its own wire form: `decode(reader)` reads the
body from a Reader bounded to exactly that body and `encode(writer)` appends it. Decoding is
strict: vector bounds come from the RFC, and the caller's `reader.end()` rejects trailing bytes.
Their extensions blocks are wire/extensions.py's Extensions. The ECDHE-only key exchange
(RFC 8422) fixes the shape of ServerKeyExchange and ClientKeyExchange.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, Self

import attrs

from .codec import Reader, Writer
from .enums import (
    CURVE_TYPE_NAMED_CURVE,
    HELLO_RETRY_REQUEST_RANDOM,
    AlertLevel,
    HandshakeType,
    alert_name,
)
from .errors import IllegalParameter, UnexpectedMessage
from .extensions import (
    HELLO_RETRY_REQUEST_EXTENSIONS,
    NO_EXTENSIONS,
    SERVER_HELLO_EXTENSIONS,
    E,
    Extensions,
    as_extensions,
    decode_distinguished_names,
    decode_u16_vector,
    encode_distinguished_names,
    encode_u16_vector,
)

RANDOM_LENGTH = 32
MAX_SESSION_ID = 32


class HandshakeMessage(Protocol):
    handshake_type: ClassVar[int]

    @classmethod
    def decode(cls, reader: Reader) -> Self: ...

    def encode(self, writer: Writer) -> None: ...


class ClientMessage(HandshakeMessage, Protocol):
    """A message a client sends: its longest acceptable body bounds what is buffered."""

    max_length: ClassVar[int]


@attrs.frozen
class ClientHello:
    """RFC 5246 §7.4.1.2."""

    handshake_type: ClassVar[int] = HandshakeType.client_hello
    # Every vector at its maximum: version, random, session_id<0..32>,
    # cipher_suites<2..2^16-2>, compression_methods<1..2^8-1>, extensions<0..2^16-1>.
    max_length: ClassVar[int] = 2 + RANDOM_LENGTH + 1 + 32 + 2 + 0xFFFE + 1 + 0xFF + 2 + 0xFFFF
    client_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: Extensions = attrs.field(default=NO_EXTENSIONS, converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        client_version = reader.u16()
        random = reader.raw(RANDOM_LENGTH)
        session_id = reader.opaque8(maximum=MAX_SESSION_ID)
        cipher_suites = reader.vec16(minimum=2, maximum=0xFFFE).u16_list()
        compression_methods = reader.opaque8(minimum=1)
        extensions = Extensions.decode(reader)
        return cls(
            client_version, random, session_id, cipher_suites, compression_methods, extensions
        )

    def encode(self, writer: Writer) -> None:
        writer.u16(self.client_version)
        writer.raw(self.random)
        writer.opaque8(self.session_id)
        with writer.prefixed(2):
            writer.u16_list(self.cipher_suites)
        writer.opaque8(self.compression_methods)
        self.extensions.encode(writer)

    def extension(self, cls: type[E]) -> E | None:
        return self.extensions.get(cls)


@attrs.frozen
class ServerHello:
    """RFC 5246 §7.4.1.3; in TLS 1.3 (RFC 8446 §4.1.3) server_version stays legacy 0x0303,
    and a HelloRetryRequest is a ServerHello whose random is HELLO_RETRY_REQUEST_RANDOM.
    Decoding (for tests and test clients: the server never decodes one) reads the server forms
    of the extensions, those of a HelloRetryRequest for one."""

    handshake_type: ClassVar[int] = HandshakeType.server_hello
    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: Extensions = attrs.field(default=NO_EXTENSIONS, converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        server_version = reader.u16()
        random = reader.raw(RANDOM_LENGTH)
        session_id = reader.opaque8(maximum=MAX_SESSION_ID)
        cipher_suite = reader.u16()
        compression_method = reader.u8()
        retry = random == HELLO_RETRY_REQUEST_RANDOM
        registry = HELLO_RETRY_REQUEST_EXTENSIONS if retry else SERVER_HELLO_EXTENSIONS
        extensions = Extensions.decode(reader, registry)
        return cls(server_version, random, session_id, cipher_suite, compression_method, extensions)

    def encode(self, writer: Writer) -> None:
        writer.u16(self.server_version)
        writer.raw(self.random)
        writer.opaque8(self.session_id)
        writer.u16(self.cipher_suite)
        writer.u8(self.compression_method)
        self.extensions.encode(writer)

    def extension(self, cls: type[E]) -> E | None:
        return self.extensions.get(cls)


@attrs.frozen
class Certificate:
    """RFC 5246 §7.4.2 (and §7.4.6 from a client): the chain, leaf first, as DER."""

    handshake_type: ClassVar[int] = HandshakeType.certificate
    # A client's chain: OpenSSL's default limit (max_cert_list), far above any real one.
    max_length: ClassVar[int] = 100 * 1024
    certificate_list: tuple[bytes, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        entries = reader.vec24()
        certificates = []
        while not entries.at_end():
            certificates.append(entries.opaque24(minimum=1))
        return cls(tuple(certificates))

    def encode(self, writer: Writer) -> None:
        with writer.prefixed(3):
            for der in self.certificate_list:
                writer.opaque24(der)


@attrs.frozen
class ServerKeyExchange:
    """RFC 8422 §5.4: ServerECDHParams (named curve only) and its digitally-signed block."""

    handshake_type: ClassVar[int] = HandshakeType.server_key_exchange
    named_curve: int
    public: bytes
    signature_scheme: int
    signature: bytes

    @staticmethod
    def encode_params(named_curve: int, public: bytes) -> bytes:
        """The ServerECDHParams bytes, which are what the signature covers (after the randoms)."""
        writer = Writer()
        writer.u8(CURVE_TYPE_NAMED_CURVE)
        writer.u16(named_curve)
        writer.opaque8(public)
        return writer.getvalue()

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        if reader.u8() != CURVE_TYPE_NAMED_CURVE:
            raise IllegalParameter("only named_curve ECDH parameters are allowed")
        named_curve = reader.u16()
        public = reader.opaque8(minimum=1)
        scheme = reader.u16()
        signature = reader.opaque16()
        return cls(named_curve, public, scheme, signature)

    def encode(self, writer: Writer) -> None:
        writer.raw(self.encode_params(self.named_curve, self.public))
        writer.u16(self.signature_scheme)
        writer.opaque16(self.signature)


@attrs.frozen
class CertificateRequest:
    """RFC 5246 §7.4.4: the certificate types and signature schemes we take from a client, and
    the distinguished names (DER) of the CAs we trust, which may be left empty."""

    handshake_type: ClassVar[int] = HandshakeType.certificate_request
    certificate_types: tuple[int, ...]
    supported_signature_algorithms: tuple[int, ...]
    certificate_authorities: tuple[bytes, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        types = reader.vec8(minimum=1).u8_list()
        schemes = decode_u16_vector(reader)
        return cls(types, schemes, decode_distinguished_names(reader, minimum=0))

    def encode(self, writer: Writer) -> None:
        writer.opaque8(bytes(self.certificate_types))
        encode_u16_vector(writer, self.supported_signature_algorithms)
        encode_distinguished_names(writer, self.certificate_authorities)


@attrs.frozen
class CertificateVerify:
    """RFC 5246 §7.4.8, RFC 8446 §4.4.3 (same form): a signature over the handshake so far."""

    handshake_type: ClassVar[int] = HandshakeType.certificate_verify
    max_length: ClassVar[int] = 2 + 2 + 1024  # scheme, length, up to an RSA-8192 signature
    signature_scheme: int
    signature: bytes

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        # opaque signature<0..2^16-1> (RFC 5246 §4.7): empty is well formed, and fails to
        # verify (decrypt_error), as any other wrong signature does.
        return cls(reader.u16(), reader.opaque16())

    def encode(self, writer: Writer) -> None:
        writer.u16(self.signature_scheme)
        writer.opaque16(self.signature)


@attrs.frozen
class ServerHelloDone:
    """RFC 5246 §7.4.5."""

    handshake_type: ClassVar[int] = HandshakeType.server_hello_done

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls()

    def encode(self, writer: Writer) -> None:
        pass


@attrs.frozen
class ClientKeyExchange:
    """RFC 8422 §5.7: ClientECDiffieHellmanPublic, explicit form (the only one we accept)."""

    handshake_type: ClassVar[int] = HandshakeType.client_key_exchange
    max_length: ClassVar[int] = 1 + 0xFF  # ECPoint point <1..2^8-1>
    public: bytes

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.opaque8(minimum=1))

    def encode(self, writer: Writer) -> None:
        writer.opaque8(self.public)


@attrs.frozen
class Finished:
    """RFC 5246 §7.4.9. The length of verify_data is the suite's (12 for all of ours)."""

    handshake_type: ClassVar[int] = HandshakeType.finished
    max_length: ClassVar[int] = 12  # verify_data_length: 12 for every TLS 1.2 suite
    verify_data: bytes

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.rest())

    def encode(self, writer: Writer) -> None:
        writer.raw(self.verify_data)


@attrs.frozen
class NewSessionTicket:
    """RFC 5077 §3.3."""

    handshake_type: ClassVar[int] = HandshakeType.new_session_ticket
    lifetime_hint: int
    ticket: bytes

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.u32(), reader.opaque16())

    def encode(self, writer: Writer) -> None:
        writer.u32(self.lifetime_hint)
        writer.opaque16(self.ticket)


@attrs.frozen
class ChangeCipherSpec:
    """RFC 5246 §7.1: its own content type, one byte of value 1."""

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        # Any other payload, even empty or with a trailing byte, is not a ChangeCipherSpec
        # message at all: unexpected_message, as OpenSSL and NSS answer.
        if reader.rest() != b"\x01":
            raise UnexpectedMessage("ChangeCipherSpec payload is not the single byte 1")
        return cls()

    def encode(self, writer: Writer) -> None:
        writer.u8(1)


@attrs.frozen
class Alert:
    """RFC 5246 §7.2. Unknown descriptions stay plain ints."""

    level: int
    description: int

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        level = reader.u8()
        description = reader.u8()
        if level not in (AlertLevel.warning, AlertLevel.fatal):
            raise IllegalParameter(f"alert level {level}")
        return cls(level, description)

    def encode(self, writer: Writer) -> None:
        writer.u8(self.level)
        writer.u8(self.description)

    @property
    def name(self) -> str:
        return alert_name(self.description)


def encode_handshake(message: HandshakeMessage) -> bytes:
    """Handshake framing (RFC 5246 §7.4): msg_type, uint24 length, body."""
    writer = Writer()
    writer.u8(message.handshake_type)
    with writer.prefixed(3):
        message.encode(writer)
    return writer.getvalue()


def encode_body(message: ChangeCipherSpec | Alert) -> bytes:
    writer = Writer()
    message.encode(writer)
    return writer.getvalue()
