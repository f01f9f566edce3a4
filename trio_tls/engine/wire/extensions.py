"""TLS extensions as frozen attrs classes (RFC 5246 §7.4.1.4, RFC 6066, RFC 8422, RFC 8446 §4.2).

Each class is named after its RFC struct and knows its own wire form, like the messages: decode
reads the extension_data from a Reader bounded to exactly it, and encode appends it. Extensions
we act on (KNOWN_EXTENSIONS) are decoded strictly by the Extensions block; the rest stay raw as
UnknownExtension so GREASE and future extensions pass through untouched.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from typing import ClassVar, Protocol, Self, TypeVar

import attrs

from .codec import Reader, Writer
from .enums import ExtensionType
from .errors import DecodeError, IllegalParameter

MAX_HOST_NAME = 255  # RFC 1035 §2.3.4, and what a uint8 length stores
# Letters, digits and hyphens in dot-separated labels of 1..63 bytes (RFC 1123 §2.1).
_HOST_NAME = re.compile(rb"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")


class Extension(Protocol):
    extension_type: ClassVar[int]

    @classmethod
    def decode(cls, reader: Reader) -> Self: ...

    def encode(self, writer: Writer) -> None: ...


def decode_u16_vector(reader: Reader) -> tuple[int, ...]:
    """A non-empty uint16 list with a 2-byte length: <2..2^16-2> in the RFCs."""
    return reader.vec16(minimum=2).u16_list()


def encode_u16_vector(writer: Writer, values: tuple[int, ...]) -> None:
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
        return cls(decode_u16_vector(reader))

    def encode(self, writer: Writer) -> None:
        encode_u16_vector(writer, self.groups)


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
        return cls(decode_u16_vector(reader))

    def encode(self, writer: Writer) -> None:
        encode_u16_vector(writer, self.schemes)


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
            return NO_EXTENSIONS
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


NO_EXTENSIONS = Extensions((), {})


def as_extensions(extensions: Extensions | Iterable[AnyExtension]) -> Extensions:
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
