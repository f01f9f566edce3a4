"""Inspect a ClientHello: everything a client said in its first flight, named, and its JA3/JA4.

`inspect_client_hello(data)` takes the bytes as they came off the wire, either TLS records
(one or several: a large hello may span records, RFC 5246 §6.2.1) or the bare handshake message
(type 1, 24-bit length, body), and returns a frozen ClientHelloReport; `to_json()` gives it as
plain JSON types. The `inspect` handler shows the same report for the connection it serves.

Parsing is the server's own: the record layer and messages.py with every length checked, so
malformed bytes raise the TLSError (DecodeError, IllegalParameter, ...) that the server would
answer with an alert. On top of that, the extensions the server does not read (Chromium's ALPS
and ECH, status_request, ...) are decoded here for display only; one that does not parse is
shown as "malformed" rather than failing the report.
Names come from iana.py; GREASE values (RFC 8701) are kept in place and marked, and listed in
`grease`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import attrs

from ..engine.record.framing import HandshakeAssembler, RecordReader
from ..engine.record.protection import NullProtection
from ..engine.wire.codec import Reader, Writer
from ..engine.wire.enums import ContentType, HandshakeType
from ..engine.wire.errors import DecodeError, UnexpectedMessage
from ..engine.wire.extensions import (
    KNOWN_EXTENSIONS,
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    CertificateAuthorities,
    Cookie,
    EarlyData,
    ECPointFormats,
    ExtendedMasterSecret,
    PostHandshakeAuth,
    PreSharedKey,
    PskKeyExchangeModes,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
    UnknownExtension,
)
from ..engine.wire.extensions import KeyShare as KeyShareExtension
from ..engine.wire.messages import ClientHello
from . import fingerprint, iana
from .iana import Code

COMPRESS_CERTIFICATE = 27  # RFC 8879 §3
RECORD_SIZE_LIMIT = 28  # RFC 8449 §4
STATUS_REQUEST = 5  # RFC 6066 §8
PADDING = 21  # RFC 7685
APPLICATION_SETTINGS = (0x4469, 0x44CD)  # ALPS, old and new codepoints
ENCRYPTED_CLIENT_HELLO = 0xFE0D
T = TypeVar("T")


@attrs.frozen
class KeyShare:
    """One KeyShareEntry (RFC 8446 §4.2.8): a group and the length of its public key."""

    group: Code
    key_length: int


@attrs.frozen
class ExtensionEntry:
    """One extension as sent: its type, body length, what it says in a line, where it is
    defined, and whether this TLS 1.2 server reads it (the others it ignores, as RFC 5246
    §7.4.1.4 allows)."""

    type: Code
    length: int
    summary: str
    spec: str
    read_by_server: bool


@attrs.frozen
class GreaseValue:
    """A GREASE value and the field it was found in."""

    field: str
    value: Code


@attrs.frozen
class Fingerprints:
    ja3: str
    ja3_md5: str
    ja4: str
    ja4_r: str


@attrs.frozen
class ClientHelloReport:
    """A ClientHello decoded for people: every list in the client's order, GREASE included."""

    length: int  # the handshake message, header included
    encoded: bytes  # that message, as received
    client_version: Code
    random: bytes
    session_id: bytes
    cipher_suites: tuple[Code, ...]
    compression_methods: tuple[Code, ...]
    extensions: tuple[ExtensionEntry, ...]
    server_name: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[Code, ...]
    supported_groups: tuple[Code, ...]
    key_shares: tuple[KeyShare, ...]
    signature_algorithms: tuple[Code, ...]
    ec_point_formats: tuple[Code, ...]
    psk_key_exchange_modes: tuple[Code, ...]
    grease: tuple[GreaseValue, ...]
    fingerprints: Fingerprints
    # With a cap on entries (inspect_client_hello's max_entries): how many entries each list
    # left out, and for the fingerprints' raw strings (ja3, ja4_r), how many characters.
    omitted: Mapping[str, int] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, object]:
        result = to_json(self)
        assert isinstance(result, dict)
        return result


def to_json(value: object) -> object:
    """attrs classes as objects (a Code with its hex form too), bytes as hex, tuples as lists."""
    if isinstance(value, Code):
        return {"value": value.value, "hex": value.hex, "name": value.name, "grease": value.grease}
    cls = type(value)
    if attrs.has(cls):
        return {field.name: to_json(getattr(value, field.name)) for field in attrs.fields(cls)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [to_json(item) for item in value]
    return value


def inspect_client_hello(data: bytes, *, max_entries: int | None = None) -> ClientHelloReport:
    """Decode a ClientHello from its records or its handshake message, and describe it.

    A hello may list 32,767 cipher suites or 16,383 extensions; `max_entries` describes at
    most that many of each list, and `omitted` counts the rest (the fingerprints still take
    every value)."""
    message = _handshake_message(data)
    body = Reader(message)
    if body.u8() != HandshakeType.client_hello:
        raise UnexpectedMessage("not a ClientHello")
    fields = body.vec24()
    body.end()
    hello = ClientHello.decode(fields)
    fields.end()
    return _describe(hello, message, max_entries)


def _handshake_message(data: bytes) -> bytes:
    if data[:1] == bytes([HandshakeType.client_hello]):
        return data
    if data[:1] != bytes([ContentType.handshake]):
        raise DecodeError("neither a handshake record nor a ClientHello message")
    records = RecordReader(NullProtection())
    records.feed(data)
    assembler = HandshakeAssembler()
    while (record := records.next_record()) is not None:
        content_type, payload = record
        if content_type != ContentType.handshake:
            raise UnexpectedMessage(f"a record of content type {content_type} in the hello")
        assembler.feed(payload)
    found = assembler.next_message({HandshakeType.client_hello: ClientHello})
    if found is None or records.buffered() or not assembler.is_empty():
        raise DecodeError("the records do not hold exactly one whole ClientHello")
    return found[1]


def _describe(hello: ClientHello, encoded: bytes, max_entries: int | None) -> ClientHelloReport:
    """The report for a ClientHello, decoded from `encoded` (the handshake message)."""
    names = hello.extension(ServerName)
    alpn = hello.extension(ApplicationLayerProtocolNegotiation)
    versions = hello.extension(SupportedVersions)
    groups = hello.extension(SupportedGroups)
    schemes = hello.extension(SignatureAlgorithms)
    formats = hello.extension(ECPointFormats)
    omitted: dict[str, int] = {}

    def first(field: str, values: Iterable[T], count: int) -> list[T]:
        if max_entries is None or count <= max_entries:
            return list(values)
        omitted[field] = count - max_entries
        return list(itertools.islice(values, max_entries))

    def codes(field: str, values: tuple[int, ...], name: Callable[[int], Code]) -> tuple[Code, ...]:
        return tuple(map(name, first(field, values, len(values))))

    def cut(field: str, text: str) -> str:
        """A fingerprint's raw string lists every value: 16 characters an entry at most."""
        if max_entries is None or len(text) <= 16 * max_entries:
            return text
        omitted[field] = len(text) - 16 * max_entries
        return text[: 16 * max_entries]

    extensions = first("extensions", hello.extensions, len(hello.extensions))
    shares = _key_shares(hello)
    lists = {
        "cipher_suites": codes("cipher_suites", hello.cipher_suites, iana.cipher_suite),
        "extensions": tuple(iana.extension(e.extension_type) for e in extensions),
        "supported_versions": codes(
            "supported_versions", versions.versions if versions else (), iana.version
        ),
        "supported_groups": codes("supported_groups", groups.groups if groups else (), iana.group),
        "key_share": tuple(share.group for share in first("key_shares", shares, len(shares))),
        "signature_algorithms": codes(
            "signature_algorithms", schemes.schemes if schemes else (), iana.signature_scheme
        ),
        "psk_key_exchange_modes": _psk_modes(hello),
    }
    protocols = alpn.protocols if alpn else ()
    return ClientHelloReport(
        length=len(encoded),
        encoded=encoded,
        client_version=iana.version(hello.client_version),
        random=hello.random,
        session_id=hello.session_id,
        cipher_suites=lists["cipher_suites"],
        compression_methods=tuple(iana.compression_method(v) for v in hello.compression_methods),
        extensions=tuple(_entry(extension) for extension in extensions),
        server_name=names.host_name if names and names.host_name else None,
        alpn=tuple(_protocol(p) for p in first("alpn", protocols, len(protocols))),
        supported_versions=lists["supported_versions"],
        supported_groups=lists["supported_groups"],
        key_shares=shares[: len(lists["key_share"])],
        signature_algorithms=lists["signature_algorithms"],
        ec_point_formats=tuple(iana.ec_point_format(v) for v in formats.formats) if formats else (),
        psk_key_exchange_modes=lists["psk_key_exchange_modes"],
        grease=tuple(
            GreaseValue(field, code)
            for field, listed in lists.items()
            for code in listed
            if code.grease
        ),
        fingerprints=Fingerprints(
            ja3=cut("ja3", fingerprint.ja3_string(hello)),
            ja3_md5=fingerprint.ja3_md5(hello),
            ja4=fingerprint.ja4(hello),
            ja4_r=cut("ja4_r", fingerprint.ja4_r(hello)),
        ),
        omitted=omitted,
    )


def _protocol(name: bytes) -> str:
    return name.decode("ascii", "backslashreplace")


def _names(codes: tuple[Code, ...] | list[Code]) -> str:
    return ", ".join(code.name for code in codes)


def _key_shares(hello: ClientHello) -> tuple[KeyShare, ...]:
    found = hello.extension(KeyShareExtension)
    shares = found.shares if found else ()
    return tuple(KeyShare(iana.group(share.group), len(share.key_exchange)) for share in shares)


def _psk_modes(hello: ClientHello) -> tuple[Code, ...]:
    found = hello.extension(PskKeyExchangeModes)
    return tuple(iana.psk_key_exchange_mode(v) for v in found.modes) if found else ()


def _entry(extension: AnyExtension) -> ExtensionEntry:
    code = iana.extension(extension.extension_type)
    if isinstance(extension, UnknownExtension):
        data = extension.data
        summary = _summary_of_raw(code, data)
    else:
        data = _encoded(extension)
        summary = _summary_of_known(extension)
    return ExtensionEntry(
        type=code,
        length=len(data),
        summary=summary,
        spec="RFC 8701" if code.grease else iana.EXTENSION_SPECS.get(code.value, ""),
        read_by_server=extension.extension_type in KNOWN_EXTENSIONS,
    )


def _encoded(extension: AnyExtension) -> bytes:
    writer = Writer()
    extension.encode(writer)
    return writer.getvalue()


def _summary_of_known(extension: AnyExtension) -> str:
    """One line for an extension the server decodes (extensions.KNOWN_EXTENSIONS)."""
    match extension:
        case ServerName(host_name=host_name):
            return host_name or "empty"
        case SupportedGroups(groups=groups):
            return _names([iana.group(v) for v in groups])
        case ECPointFormats(formats=formats):
            return _names([iana.ec_point_format(v) for v in formats])
        case SignatureAlgorithms(schemes=schemes):
            return _names([iana.signature_scheme(v) for v in schemes])
        case ApplicationLayerProtocolNegotiation(protocols=protocols):
            return ", ".join(_protocol(p) for p in protocols)
        case SupportedVersions(versions=versions):
            return _names([iana.version(v) for v in versions])
        case ExtendedMasterSecret():
            return "empty: the client supports the extended master secret"
        case RenegotiationInfo(renegotiated_connection=previous):
            return _bytes(len(previous)) if previous else "empty: an initial handshake"
        case SessionTicket(ticket=ticket):
            return f"a {len(ticket)}-byte ticket" if ticket else "empty: the client wants a ticket"
        case KeyShareExtension(shares=shares):
            return ", ".join(
                f"{iana.group(share.group).name} ({len(share.key_exchange)}-byte key)"
                for share in shares
            )
        case PskKeyExchangeModes(modes=modes):
            return _names([iana.psk_key_exchange_mode(v) for v in modes])
        case PreSharedKey(identities=identities):
            return "1 ticket" if len(identities) == 1 else f"{len(identities)} tickets"
        case EarlyData():
            return "empty: the client sends early data"
        case PostHandshakeAuth():
            return "empty: the client takes a CertificateRequest after the handshake"
        case Cookie(cookie=cookie):
            return _bytes(len(cookie))
        case CertificateAuthorities(names=names):
            return "1 name" if len(names) == 1 else f"{len(names)} names"
    return ""


def _summary_of_raw(code: Code, data: bytes) -> str:
    """One line for an extension kept raw; those we know the shape of are decoded first."""
    if code.grease:
        return f"GREASE, {_bytes(len(data))}"
    describe_body = _RAW_SUMMARIES.get(code.value)
    if describe_body is not None:
        try:
            return describe_body(data)
        except DecodeError:
            return f"malformed ({_bytes(len(data))})"
    return _bytes(len(data)) if data else "empty"


def _bytes(count: int) -> str:
    return "1 byte" if count == 1 else f"{count} bytes"


def _summary_of_certificate_compression(data: bytes) -> str:
    reader = Reader(data)
    algorithms = reader.vec8(minimum=2).u16_list()
    reader.end()
    return _names([iana.certificate_compression(v) for v in algorithms])


def _summary_of_alps(data: bytes) -> str:
    reader = Reader(data)
    names = reader.vec16(minimum=2)
    reader.end()
    protocols = []
    while not names.at_end():
        protocols.append(_protocol(names.opaque8(minimum=1)))
    return ", ".join(protocols)


def _summary_of_ech(data: bytes) -> str:
    """ECHClientHello: an outer hello (type 0) names its config; without a config for this
    server a client sends random bytes of the same shape ("GREASE ECH")."""
    reader = Reader(data)
    if reader.u8() != 0:
        return f"inner, {_bytes(len(data))}"
    reader.u16()  # HPKE KDF
    reader.u16()  # HPKE AEAD
    config_id = reader.u8()
    enc = reader.opaque16()
    payload = reader.opaque16(minimum=1)
    reader.end()
    return f"outer: config {config_id}, {len(enc)}-byte key, {len(payload)}-byte payload"


def _summary_of_record_size_limit(data: bytes) -> str:
    reader = Reader(data)
    limit = reader.u16()
    reader.end()
    return f"{limit} bytes"


def _summary_of_status_request(data: bytes) -> str:
    reader = Reader(data)
    return "OCSP" if reader.u8() == 1 else f"status type {data[0]}"


_RAW_SUMMARIES: dict[int, Callable[[bytes], str]] = {
    COMPRESS_CERTIFICATE: _summary_of_certificate_compression,
    RECORD_SIZE_LIMIT: _summary_of_record_size_limit,
    STATUS_REQUEST: _summary_of_status_request,
    # RFC 7685 §1: some servers hang on hellos of 256 to 511 bytes; padding jumps past them.
    PADDING: lambda data: f"{_bytes(len(data))} of zeros",
    ENCRYPTED_CLIENT_HELLO: _summary_of_ech,
    **dict.fromkeys(APPLICATION_SETTINGS, _summary_of_alps),
}
