"""TLS 1.2 handshake messages and extensions as frozen attrs classes (RFC 5246 §7.4, §7.1, §7.2).

Each class is named after its RFC struct and knows its own wire form: `decode(reader)` reads the
body from a Reader bounded to exactly that body and `encode(writer)` appends it. Decoding is
strict: vector bounds come from the RFC, and the caller's `reader.end()` rejects trailing bytes.
Extensions we act on are decoded into classes; the rest stay raw as UnknownExtension so GREASE
and future extensions pass through untouched. The ECDHE-only key exchange (RFC 8422) fixes the
shape of ServerKeyExchange and ClientKeyExchange.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from typing import ClassVar, Protocol, Self, TypeVar

import attrs

from .codec import Reader, Writer
from .enums import (
    CURVE_TYPE_NAMED_CURVE,
    AlertLevel,
    ExtensionType,
    HandshakeType,
    alert_name,
)
from .errors import DecodeError, IllegalParameter, UnexpectedMessage

RANDOM_LENGTH = 32
MAX_SESSION_ID = 32
MAX_HOST_NAME = 255  # RFC 1035 §2.3.4, and what a uint8 length stores
# Letters, digits and hyphens in dot-separated labels of 1..63 bytes (RFC 1123 §2.1).
_HOST_NAME = re.compile(rb"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")


class Extension(Protocol):
    extension_type: ClassVar[int]

    @classmethod
    def decode(cls, reader: Reader) -> Self: ...

    def encode(self, writer: Writer) -> None: ...


def _decode_u16_vector(reader: Reader) -> tuple[int, ...]:
    """A non-empty uint16 list with a 2-byte length: <2..2^16-2> in the RFCs."""
    return reader.vec16(minimum=2).u16_list()


def _encode_u16_vector(writer: Writer, values: tuple[int, ...]) -> None:
    with writer.prefixed(2):
        writer.u16_list(values)


@attrs.frozen
class ServerName:
    """RFC 6066 §3. From the client: one host_name; from the server: an empty acknowledgement."""

    extension_type: ClassVar[int] = ExtensionType.server_name
    host_name: str = ""

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        """Lengths that disagree are decode_error; a well-formed but wrong name is
        illegal_parameter: a second host_name, or anything but an LDH host name of at most
        255 bytes without a trailing dot (RFC 6066 §3, RFC 1123 §2.1), or an IPv4 literal
        (a name whose last label is all digits)."""
        names = reader.vec16(minimum=1)
        host_name: str | None = None
        while not names.at_end():
            name_type = names.u8()
            name = names.opaque16(minimum=1)
            if name_type != 0:  # only host_name (0) is defined; others are skipped
                continue
            if host_name is not None:
                raise IllegalParameter("server_name lists two host names")
            if len(name) > MAX_HOST_NAME or _HOST_NAME.fullmatch(name) is None:
                raise IllegalParameter(f"server_name {name[:64]!r} is not a DNS host name")
            if name.rpartition(b".")[2].isdigit():
                # RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in
                # HostName" (IPv6 has colons, refused above); no top-level domain is numeric.
                raise IllegalParameter(f"server_name {name[:64]!r} is an IP address")
            host_name = name.decode("ascii").lower()
        return cls(host_name or "")

    def encode(self, writer: Writer) -> None:
        if self.host_name:
            name = self.host_name.encode("ascii")
            with writer.prefixed(2):
                writer.u8(0)
                writer.opaque16(name)


@attrs.frozen
class SupportedGroups:
    """RFC 8422 §5.1.1 (named_curve list), RFC 7919."""

    extension_type: ClassVar[int] = ExtensionType.supported_groups
    groups: tuple[int, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(_decode_u16_vector(reader))

    def encode(self, writer: Writer) -> None:
        _encode_u16_vector(writer, self.groups)


@attrs.frozen
class ECPointFormats:
    """RFC 8422 §5.1.2."""

    extension_type: ClassVar[int] = ExtensionType.ec_point_formats
    formats: tuple[int, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.vec8(minimum=1).u8_list())

    def encode(self, writer: Writer) -> None:
        writer.opaque8(bytes(self.formats))


@attrs.frozen
class SignatureAlgorithms:
    """RFC 5246 §7.4.1.4.1, with RFC 8446 SignatureScheme code points."""

    extension_type: ClassVar[int] = ExtensionType.signature_algorithms
    schemes: tuple[int, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(_decode_u16_vector(reader))

    def encode(self, writer: Writer) -> None:
        _encode_u16_vector(writer, self.schemes)


@attrs.frozen
class ApplicationLayerProtocolNegotiation:
    """RFC 7301 §3.1: the client's list, or the server's single choice."""

    extension_type: ClassVar[int] = ExtensionType.application_layer_protocol_negotiation
    protocols: tuple[bytes, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        names = reader.vec16(minimum=2)
        protocols = []
        while not names.at_end():
            protocols.append(names.opaque8(minimum=1))
        return cls(tuple(protocols))

    def encode(self, writer: Writer) -> None:
        with writer.prefixed(2):
            for name in self.protocols:
                writer.opaque8(name)


@attrs.frozen
class ExtendedMasterSecret:
    """RFC 7627 §5.1: empty in both directions."""

    extension_type: ClassVar[int] = ExtensionType.extended_master_secret

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls()

    def encode(self, writer: Writer) -> None:
        pass


@attrs.frozen
class RenegotiationInfo:
    """RFC 5746 §3.2: empty renegotiated_connection on an initial handshake."""

    extension_type: ClassVar[int] = ExtensionType.renegotiation_info
    renegotiated_connection: bytes = b""

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.opaque8())

    def encode(self, writer: Writer) -> None:
        writer.opaque8(self.renegotiated_connection)


@attrs.frozen
class SessionTicket:
    """RFC 5077 §3.2: the client's ticket (possibly empty); empty from the server."""

    extension_type: ClassVar[int] = ExtensionType.session_ticket
    ticket: bytes = b""

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.rest())

    def encode(self, writer: Writer) -> None:
        writer.raw(self.ticket)


@attrs.frozen
class SupportedVersions:
    """RFC 8446 §4.2.1, ClientHello form. Read only to learn that TLS 1.2 is acceptable."""

    extension_type: ClassVar[int] = ExtensionType.supported_versions
    versions: tuple[int, ...]

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        return cls(reader.vec8(minimum=2, maximum=254).u16_list())

    def encode(self, writer: Writer) -> None:
        with writer.prefixed(1):
            writer.u16_list(self.versions)


@attrs.frozen
class UnknownExtension:
    """Any extension we do not interpret, kept byte for byte."""

    extension_type: int
    data: bytes

    def encode(self, writer: Writer) -> None:
        writer.raw(self.data)


KNOWN_EXTENSIONS: dict[int, type[Extension]] = {
    cls.extension_type: cls
    for cls in (
        ServerName,
        SupportedGroups,
        ECPointFormats,
        SignatureAlgorithms,
        ApplicationLayerProtocolNegotiation,
        ExtendedMasterSecret,
        RenegotiationInfo,
        SessionTicket,
        SupportedVersions,
    )
}

AnyExtension = Extension | UnknownExtension
E = TypeVar("E", bound=Extension)
_TYPE_LENGTH = struct.Struct("!HH")


class Extensions:
    """An extensions block (RFC 5246 §7.4.1.4): the extensions as given, or as received.

    A received block may hold 16,000 extensions, and a hostile client sends one for the price
    of 64 KiB. So decoding walks the entries once, keeping no object per entry: the block's
    bytes, how many entries it holds, and the extensions we act on (KNOWN_EXTENSIONS), decoded
    strictly. The rest are made into UnknownExtension objects only when someone iterates
    (the trace, inspect), from the bytes kept. Equal to any sequence of the same extensions.
    """

    __slots__ = ("_block", "_count", "_items", "_known")

    def __init__(
        self,
        items: tuple[AnyExtension, ...] | None,
        known: dict[int, Extension],
        block: bytes = b"",
        count: int = 0,
    ) -> None:
        self._items = items  # as given; None when received (then `block` holds them)
        self._known = known  # by type, for the lookups the handshake makes
        self._block = block
        self._count = count

    @classmethod
    def of(cls, extensions: Extensions | Iterable[AnyExtension]) -> Extensions:
        """Extensions given as objects (a message we send, a test's hello), kept as they are."""
        if isinstance(extensions, Extensions):
            return extensions
        items = tuple(extensions)
        known = {e.extension_type: e for e in items if not isinstance(e, UnknownExtension)}
        return cls(items, known)

    @classmethod
    def decode(cls, reader: Reader) -> Extensions:
        """Absent means none. Duplicates are a decode_error, malformed known extensions their
        own alerts, in the order sent; unknown ones are only delimited."""
        if reader.at_end():
            return _NO_EXTENSIONS
        block = reader.vec16().rest()
        types, starts = _walk(block)
        present = set(types)
        if len(present) != len(types):
            raise DecodeError("an extension appears twice")
        known: dict[int, Extension] = {}
        for index in sorted(types.index(t) for t in present & KNOWN_EXTENSIONS.keys()):
            extension_type, body = _entry_at(block, starts[index])
            known[extension_type] = _decode_known(KNOWN_EXTENSIONS[extension_type], body)
        return cls(None, known, block, len(types))

    def get(self, cls: type[E]) -> E | None:
        found = self._known.get(cls.extension_type)
        return found if isinstance(found, cls) else None

    def encode(self, writer: Writer) -> None:
        """The block as received, byte for byte; or each extension given, encoded."""
        if self._items is None:
            if self._count:
                writer.opaque16(self._block)
            return
        if not self._items:
            return
        with writer.prefixed(2):
            for extension in self._items:
                writer.u16(extension.extension_type)
                with writer.prefixed(2):
                    extension.encode(writer)

    def types(self) -> tuple[int, ...]:
        """The extension types in the order sent, without an object per extension."""
        if self._items is None:
            return tuple(_walk(self._block)[0])
        return tuple(e.extension_type for e in self._items)

    def __iter__(self) -> Iterator[AnyExtension]:
        if self._items is not None:
            return iter(self._items)
        return self._received()

    def _received(self) -> Iterator[AnyExtension]:
        block, known, pos = self._block, self._known, 0
        while pos < len(block):
            extension_type, body = _entry_at(block, pos)
            pos += 4 + len(body)
            found = known.get(extension_type)
            yield UnknownExtension(extension_type, body) if found is None else found

    def __len__(self) -> int:
        return self._count if self._items is None else len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Extensions | tuple | list):
            return NotImplemented
        return tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Extensions({tuple(self)!r})"


_NO_EXTENSIONS = Extensions((), {})


def _as_extensions(extensions: Extensions | Iterable[AnyExtension]) -> Extensions:
    """The messages' converter (mypy's attrs plugin takes functions, not class methods)."""
    return Extensions.of(extensions)


def _walk(block: bytes) -> tuple[list[int], list[int]]:
    """Each entry's type and offset: `type u16, opaque data<0..2^16-1>` until the block ends.

    The one loop that runs per entry, so it does nothing else: about a quarter of a
    microsecond an entry, 4 ms for 16,383 of them on the 2-core build machine under load."""
    unpack = _TYPE_LENGTH.unpack_from
    types: list[int] = []
    starts: list[int] = []
    pos, stop = 0, len(block)
    try:
        while pos < stop:
            extension_type, length = unpack(block, pos)
            types.append(extension_type)
            starts.append(pos)
            pos += 4 + length
    except struct.error:
        raise DecodeError("truncated extension header") from None
    if pos != stop:
        raise DecodeError("an extension overruns its block")
    return types, starts


def _entry_at(block: bytes, pos: int) -> tuple[int, bytes]:
    extension_type, length = _TYPE_LENGTH.unpack_from(block, pos)
    return extension_type, block[pos + 4 : pos + 4 + length]


def _decode_known(cls: type[Extension], data: bytes) -> Extension:
    body = Reader(data)
    extension = cls.decode(body)
    body.end()
    return extension


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
    extensions: Extensions = attrs.field(default=_NO_EXTENSIONS, converter=_as_extensions)

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
    """RFC 5246 §7.4.1.3."""

    handshake_type: ClassVar[int] = HandshakeType.server_hello
    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: Extensions = attrs.field(default=_NO_EXTENSIONS, converter=_as_extensions)

    @classmethod
    def decode(cls, reader: Reader) -> Self:
        server_version = reader.u16()
        random = reader.raw(RANDOM_LENGTH)
        session_id = reader.opaque8(maximum=MAX_SESSION_ID)
        cipher_suite = reader.u16()
        compression_method = reader.u8()
        extensions = Extensions.decode(reader)
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
        schemes = _decode_u16_vector(reader)
        names = reader.vec16()
        authorities = []
        while not names.at_end():
            authorities.append(names.opaque16(minimum=1))
        return cls(types, schemes, tuple(authorities))

    def encode(self, writer: Writer) -> None:
        writer.opaque8(bytes(self.certificate_types))
        _encode_u16_vector(writer, self.supported_signature_algorithms)
        with writer.prefixed(2):
            for name in self.certificate_authorities:
                writer.opaque16(name)


@attrs.frozen
class CertificateVerify:
    """RFC 5246 §7.4.8: the client's signature over every handshake message before this one."""

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
