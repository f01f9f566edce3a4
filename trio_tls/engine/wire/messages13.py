"""TLS 1.3 handshake messages that TLS 1.2 lacks or shapes differently (RFC 8446 §4.3-§4.6).

Same contract as messages.py: one frozen attrs class per RFC struct, `decode(reader)` strict
to the RFC's vector bounds (the caller's `reader.end()` rejects trailing bytes), `encode(writer)`
its inverse. ClientHello, ServerHello (HelloRetryRequest included) and CertificateVerify keep
their messages.py classes: their form did not change. Every extensions block here is mandatory,
so it is read and written with its length even when empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar, Self

import attrs

from .codec import Reader, Writer
from .enums import HandshakeType, KeyUpdateRequest
from .errors import IllegalParameter
from .extensions import (
    ENCRYPTED_EXTENSIONS,
    NO_EXTENSIONS,
    Extension,
    Extensions,
    as_extensions,
)

# The extensions of a CertificateEntry (status_request, signed_certificate_timestamp) and of a
# NewSessionTicket (early_data with its size) are never acted on: kept raw.
_RAW: Mapping[int, type[Extension]] = {}


@attrs.frozen
class EncryptedExtensions:
    """RFC 8446 §4.3.1: the server's answers that need no ServerHello, encrypted."""

    handshake_type: ClassVar[int] = HandshakeType.encrypted_extensions
    extensions: Extensions = attrs.field(default=NO_EXTENSIONS, converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(Extensions.decode_vector(reader, ENCRYPTED_EXTENSIONS))

    def encode(self, writer: Writer) -> None:
        self.extensions.encode_vector(writer)


@attrs.frozen
class CertificateEntry:
    """RFC 8446 §4.4.2: one certificate (DER, cert_data<1..2^24-1>) and its extensions."""

    cert_data: bytes
    extensions: Extensions = attrs.field(default=NO_EXTENSIONS, converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.opaque24(minimum=1), Extensions.decode_vector(reader, _RAW))

    def encode(self, writer: Writer) -> None:
        writer.opaque24(self.cert_data)
        self.extensions.encode_vector(writer)


@attrs.frozen
class Certificate13:
    """RFC 8446 §4.4.2: certificate_request_context<0..255> (empty but for post-handshake
    authentication) and the chain, leaf first, each entry with its own extensions."""

    handshake_type: ClassVar[int] = HandshakeType.certificate
    # A client's chain: OpenSSL's default limit (max_cert_list), as for TLS 1.2's Certificate.
    max_length: ClassVar[int] = 100 * 1024
    request_context: bytes
    entries: tuple[CertificateEntry, ...]

    @classmethod
    def of(cls, chain: Iterable[bytes], request_context: bytes = b"") -> Self:
        """The message for a chain of DER certificates, none with extensions."""
        return cls(request_context, tuple(CertificateEntry(der) for der in chain))

    @property
    def certificate_list(self) -> tuple[bytes, ...]:
        """The chain as DER, leaf first: what TLS 1.2's Certificate holds, for one verifier."""
        return tuple(entry.cert_data for entry in self.entries)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        request_context = reader.opaque8()
        entries = reader.vec24()
        decoded = []
        while not entries.at_end():
            decoded.append(CertificateEntry.decode(entries))
        return cls(request_context, tuple(decoded))

    def encode(self, writer: Writer) -> None:
        writer.opaque8(self.request_context)
        with writer.prefixed(3):
            for entry in self.entries:
                entry.encode(writer)


@attrs.frozen
class CertificateRequest13:
    """RFC 8446 §4.3.2: a context and extensions<2..2^16-1>, of which signature_algorithms is
    required and certificate_authorities names the CAs we trust."""

    handshake_type: ClassVar[int] = HandshakeType.certificate_request
    request_context: bytes
    extensions: Extensions = attrs.field(converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.opaque8(), Extensions.decode_vector(reader, minimum=2))

    def encode(self, writer: Writer) -> None:
        writer.opaque8(self.request_context)
        self.extensions.encode_vector(writer)


@attrs.frozen
class NewSessionTicket13:
    """RFC 8446 §4.6.1: ticket_lifetime and ticket_age_add (uint32), ticket_nonce<0..255>,
    ticket<1..2^16-1> and the extensions."""

    handshake_type: ClassVar[int] = HandshakeType.new_session_ticket
    lifetime: int
    age_add: int
    nonce: bytes
    ticket: bytes
    extensions: Extensions = attrs.field(default=NO_EXTENSIONS, converter=as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        lifetime = reader.u32()
        age_add = reader.u32()
        nonce = reader.opaque8()
        ticket = reader.opaque16(minimum=1)
        return cls(lifetime, age_add, nonce, ticket, Extensions.decode_vector(reader, _RAW))

    def encode(self, writer: Writer) -> None:
        writer.u32(self.lifetime)
        writer.u32(self.age_add)
        writer.opaque8(self.nonce)
        writer.opaque16(self.ticket)
        self.extensions.encode_vector(writer)


@attrs.frozen
class KeyUpdate:
    """RFC 8446 §4.6.3: one KeyUpdateRequest byte. Any other value is illegal_parameter (as
    tlsfuzzer expects), not decode_error: the length is right."""

    handshake_type: ClassVar[int] = HandshakeType.key_update
    max_length: ClassVar[int] = 1
    request_update: int

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        value = reader.u8()
        if value not in (KeyUpdateRequest.update_not_requested, KeyUpdateRequest.update_requested):
            raise IllegalParameter(f"KeyUpdate request_update {value}")
        return cls(value)

    def encode(self, writer: Writer) -> None:
        writer.u8(self.request_update)


@attrs.frozen
class Finished13:
    """RFC 8446 §4.4.4: verify_data, the length of the suite's hash. The bound is SHA-384's;
    the handshake checks the exact length for the negotiated suite."""

    handshake_type: ClassVar[int] = HandshakeType.finished
    max_length: ClassVar[int] = 48
    verify_data: bytes

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.rest())

    def encode(self, writer: Writer) -> None:
        writer.raw(self.verify_data)


@attrs.frozen
class EndOfEarlyData:
    """RFC 8446 §4.5: empty. We never accept early data, so a client never has cause to send
    it; the class names it in the trace when one does."""

    handshake_type: ClassVar[int] = HandshakeType.end_of_early_data
    max_length: ClassVar[int] = 0

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls()

    def encode(self, writer: Writer) -> None:
        pass
