"""Handshake messages and extensions: wire round trips, strict rejections, real ClientHellos.

Every expected byte string here is written out by hand from the RFC structs (RFC 5246 §7.4,
RFC 6066, RFC 7301, RFC 8422, RFC 8446 §4.2.1), not produced by the encoder under test, so a bug
that is symmetric in encode and decode (two fields swapped in both) still fails.
"""

from __future__ import annotations

import pathlib
import sys
import tracemalloc
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import attrs
import pytest

from trio_tls.engine.wire.codec import Reader, Writer
from trio_tls.engine.wire.enums import TLS12, TLS13, AlertDescription, HandshakeType
from trio_tls.engine.wire.errors import (
    DecodeError,
    IllegalParameter,
    LocalProtocolError,
    UnexpectedMessage,
)
from trio_tls.engine.wire.extensions import (
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    ECPointFormats,
    ExtendedMasterSecret,
    Extension,
    Extensions,
    KeyShare,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
    UnknownExtension,
)
from trio_tls.engine.wire.messages import (
    Alert,
    Certificate,
    ChangeCipherSpec,
    ClientHello,
    ClientKeyExchange,
    Finished,
    HandshakeMessage,
    NewSessionTicket,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    encode_body,
    encode_handshake,
)

M = TypeVar("M", bound=HandshakeMessage)
T = TypeVar("T")

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "clienthellos"


def u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def vec8(data: bytes) -> bytes:
    return u8(len(data)) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def vec24(data: bytes) -> bytes:
    return u24(len(data)) + data


def ext(extension_type: int, data: bytes) -> bytes:
    """One Extension struct: extension_type, then extension_data<0..2^16-1>."""
    return u16(extension_type) + vec16(data)


def decode_framed(cls: type[M], wire: bytes) -> M:
    """Undo encode_handshake: msg_type, uint24 length, exactly one body, nothing after."""
    reader = Reader(wire)
    assert reader.u8() == cls.handshake_type
    body = reader.vec24()
    message = cls.decode(body)
    body.end()
    reader.end()
    return message


def decode_whole(decode: Callable[[Reader], T], data: bytes) -> T:
    reader = Reader(data)
    value = decode(reader)
    reader.end()
    return value


def raises_exactly(
    error: type[LocalProtocolError], alert: AlertDescription, action: Callable[[], object]
) -> None:
    """`action` fails with exactly `error` (not a subclass) and so sends exactly `alert`."""
    with pytest.raises(LocalProtocolError) as info:
        action()
    assert type(info.value) is error
    assert info.value.alert == alert


# -- extensions ---------------------------------------------------------------------------------

# (extension object, its extension_data written out by hand)
EXTENSION_CASES: list[tuple[AnyExtension, bytes]] = [
    # ServerNameList: one entry, name_type host_name(0), HostName<1..2^16-1>
    (ServerName("example.com"), vec16(b"\x00" + vec16(b"example.com"))),
    (SupportedGroups((29, 23, 24)), bytes.fromhex("0006 001d 0017 0018")),
    (SupportedGroups((0x8A8A, 29)), bytes.fromhex("0004 8a8a 001d")),  # GREASE stays an int
    (ECPointFormats((0,)), bytes.fromhex("01 00")),
    (ECPointFormats((0, 1, 2)), bytes.fromhex("03 00 01 02")),
    (SignatureAlgorithms((0x0804, 0x0403, 0x0401)), bytes.fromhex("0006 0804 0403 0401")),
    (
        ApplicationLayerProtocolNegotiation((b"h2", b"http/1.1")),
        bytes.fromhex("000c 02 6832 08 687474702f312e31"),
    ),
    (ApplicationLayerProtocolNegotiation((b"h2",)), bytes.fromhex("0003 02 6832")),
    (ExtendedMasterSecret(), b""),
    (RenegotiationInfo(), b"\x00"),
    (RenegotiationInfo(b"\x11" * 12), b"\x0c" + b"\x11" * 12),
    (SessionTicket(), b""),
    (SessionTicket(b"opaque ticket"), b"opaque ticket"),
    (SupportedVersions((TLS13, TLS12)), bytes.fromhex("04 0304 0303")),
    (SupportedVersions((0x7A7A, TLS13, TLS12)), bytes.fromhex("06 7a7a 0304 0303")),
    (UnknownExtension(0x1A1A, b""), b""),  # a GREASE extension
    (UnknownExtension(0x0015, bytes(7)), bytes(7)),  # padding
    (UnknownExtension(0xFE0D, b"\x00\x01\x02"), b"\x00\x01\x02"),  # ECH
]

EXTENSION_IDS = [f"{type(e).__name__}-{i}" for i, (e, _) in enumerate(EXTENSION_CASES)]


@pytest.mark.parametrize(("extension", "data"), EXTENSION_CASES, ids=EXTENSION_IDS)
def test_extension_encodes_to_its_rfc_bytes(extension: AnyExtension, data: bytes) -> None:
    writer = Writer()
    extension.encode(writer)
    assert writer.getvalue() == data


@pytest.mark.parametrize(("extension", "data"), EXTENSION_CASES, ids=EXTENSION_IDS)
def test_extension_round_trips_in_an_extensions_block(extension: AnyExtension, data: bytes) -> None:
    block = vec16(ext(extension.extension_type, data))
    decoded = decode_whole(Extensions.decode, block)
    assert decoded == (extension,)
    assert type(next(iter(decoded))) is type(extension)
    writer = Writer()
    decoded.encode(writer)
    assert writer.getvalue() == block


KNOWN_EXTENSION_CASES = [(e, d) for e, d in EXTENSION_CASES if not isinstance(e, UnknownExtension)]


@pytest.mark.parametrize(("extension", "data"), KNOWN_EXTENSION_CASES)
def test_known_extension_class_decodes_its_own_body(extension: Extension, data: bytes) -> None:
    assert decode_whole(type(extension).decode, data) == extension


def test_server_name_acknowledgement_is_empty() -> None:
    # RFC 6066 §3: the server's server_name extension has empty extension_data.
    writer = Writer()
    ServerName().encode(writer)
    assert writer.getvalue() == b""


def test_server_name_is_lowercased_and_other_name_types_are_skipped() -> None:
    data = vec16(b"\x07" + vec16(b"whatever") + b"\x00" + vec16(b"Example.COM"))
    assert decode_whole(ServerName.decode, data) == ServerName("example.com")


def test_no_extensions_block_means_no_extensions() -> None:
    assert decode_whole(Extensions.decode, b"") == ()
    writer = Writer()
    Extensions.of(()).encode(writer)
    assert writer.getvalue() == b""


# -- messages -----------------------------------------------------------------------------------

CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(0x80, 0xA0))
SESSION_ID = bytes(range(0x40, 0x60))


def many_extensions() -> tuple[tuple[AnyExtension, ...], bytes]:
    """One of each extension class (each type once), and the extensions block by hand."""
    chosen: dict[int, tuple[AnyExtension, bytes]] = {}
    for extension, data in EXTENSION_CASES:
        chosen.setdefault(extension.extension_type, (extension, data))
    extensions = tuple(e for e, _ in chosen.values())
    block = vec16(b"".join(ext(e.extension_type, d) for e, d in chosen.values()))
    return extensions, block


def client_hello_case() -> tuple[ClientHello, bytes]:
    extensions, block = many_extensions()
    assert len(extensions) == 12  # all nine known classes and three unknown types
    hello = ClientHello(
        client_version=TLS12,
        random=CLIENT_RANDOM,
        session_id=SESSION_ID,
        cipher_suites=(0x1A1A, 0xC02F, 0xCCA8, 0x00FF),
        compression_methods=b"\x00",
        extensions=extensions,
    )
    body = (
        bytes.fromhex("0303")
        + CLIENT_RANDOM
        + vec8(SESSION_ID)
        + bytes.fromhex("0008 1a1a c02f cca8 00ff")
        + bytes.fromhex("01 00")
        + block
    )
    return hello, body


def handshake(msg_type: int, body: bytes) -> bytes:
    return u8(msg_type) + vec24(body)


def message_cases() -> list[tuple[HandshakeMessage, bytes]]:
    hello, hello_body = client_hello_case()
    server_extensions: tuple[AnyExtension, ...] = (
        RenegotiationInfo(),
        ExtendedMasterSecret(),
        ECPointFormats((0,)),
        ApplicationLayerProtocolNegotiation((b"h2",)),
        SessionTicket(),
    )
    server_block = vec16(
        ext(0xFF01, b"\x00")
        + ext(23, b"")
        + ext(11, b"\x01\x00")
        + ext(16, bytes.fromhex("0003 02 6832"))
        + ext(35, b"")
    )
    public = b"\x04" + bytes(range(64))
    signature = bytes(range(100, 171))
    return [
        (hello, handshake(1, hello_body)),
        (
            ClientHello(TLS12, CLIENT_RANDOM, b"", (0xC02B,), b"\x00"),
            handshake(1, bytes.fromhex("0303") + CLIENT_RANDOM + bytes.fromhex("00 0002c02b 0100")),
        ),
        (
            ServerHello(TLS12, SERVER_RANDOM, SESSION_ID, 0xC02F, 0, server_extensions),
            handshake(
                2,
                bytes.fromhex("0303")
                + SERVER_RANDOM
                + vec8(SESSION_ID)
                + bytes.fromhex("c02f 00")
                + server_block,
            ),
        ),
        (
            ServerHello(TLS12, SERVER_RANDOM, b"", 0xCCA8),
            handshake(2, bytes.fromhex("0303") + SERVER_RANDOM + bytes.fromhex("00 cca8 00")),
        ),
        (
            Certificate((b"\x30\x03\x02\x01\x01", b"\x30\x00")),
            handshake(11, vec24(vec24(b"\x30\x03\x02\x01\x01") + vec24(b"\x30\x00"))),
        ),
        (Certificate(()), bytes.fromhex("0b 000003 000000")),
        (
            ServerKeyExchange(29, public, 0x0804, signature),
            handshake(12, b"\x03" + u16(29) + vec8(public) + u16(0x0804) + vec16(signature)),
        ),
        (ServerHelloDone(), bytes.fromhex("0e 000000")),
        (ClientKeyExchange(public), handshake(16, vec8(public))),
        (Finished(bytes(range(12))), bytes.fromhex("14 00000c") + bytes(range(12))),
        (NewSessionTicket(7200, b"ticket"), bytes.fromhex("04 00000c 00001c20 0006") + b"ticket"),
    ]


MESSAGE_CASES = message_cases()
MESSAGE_IDS = [f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(MESSAGE_CASES)]


@pytest.mark.parametrize(("message", "wire"), MESSAGE_CASES, ids=MESSAGE_IDS)
def test_handshake_message_encodes_to_its_rfc_bytes(message: HandshakeMessage, wire: bytes) -> None:
    assert encode_handshake(message) == wire


@pytest.mark.parametrize(("message", "wire"), MESSAGE_CASES, ids=MESSAGE_IDS)
def test_handshake_message_round_trips(message: HandshakeMessage, wire: bytes) -> None:
    decoded = decode_framed(type(message), wire)
    assert decoded == message  # decode(bytes) == object
    assert encode_handshake(decoded) == wire  # encode(decode(bytes)) == bytes
    assert decode_framed(type(message), encode_handshake(message)) == message


def test_every_handshake_message_class_is_covered() -> None:
    covered = {type(m) for m, _ in MESSAGE_CASES}
    assert covered == {
        ClientHello,
        ServerHello,
        Certificate,
        ServerKeyExchange,
        ServerHelloDone,
        ClientKeyExchange,
        Finished,
        NewSessionTicket,
    }
    assert {m.handshake_type for m, _ in MESSAGE_CASES} == {
        HandshakeType.client_hello,
        HandshakeType.server_hello,
        HandshakeType.certificate,
        HandshakeType.server_key_exchange,
        HandshakeType.server_hello_done,
        HandshakeType.client_key_exchange,
        HandshakeType.finished,
        HandshakeType.new_session_ticket,
    }


def test_every_extension_class_is_covered() -> None:
    hello = MESSAGE_CASES[0][0]
    assert isinstance(hello, ClientHello)
    assert {type(e) for e in hello.extensions} == {
        ServerName,
        SupportedGroups,
        ECPointFormats,
        SignatureAlgorithms,
        ApplicationLayerProtocolNegotiation,
        ExtendedMasterSecret,
        RenegotiationInfo,
        SessionTicket,
        SupportedVersions,
        UnknownExtension,
    }


def test_client_hello_extension_lookup() -> None:
    hello, _ = client_hello_case()
    assert hello.extension(ServerName) == ServerName("example.com")
    assert hello.extension(SupportedVersions) == SupportedVersions((TLS13, TLS12))
    assert attrs.evolve(hello, extensions=()).extension(ServerName) is None


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (ChangeCipherSpec(), b"\x01"),
        (Alert(2, AlertDescription.handshake_failure), b"\x02\x28"),
        (Alert(1, AlertDescription.close_notify), b"\x01\x00"),
        (Alert(2, 0xEE), b"\x02\xee"),  # an unknown description stays a plain int
    ],
)
def test_record_level_messages_round_trip(message: ChangeCipherSpec | Alert, wire: bytes) -> None:
    assert encode_body(message) == wire
    decoded = decode_whole(type(message).decode, wire)
    assert decoded == message
    assert encode_body(decoded) == wire


def test_alert_name() -> None:
    assert Alert(2, 40).name == "handshake_failure"
    assert Alert(2, 0xEE).name == "alert(238)"


# -- rejections ---------------------------------------------------------------------------------


def hello_body(
    *,
    session_id: bytes = b"\x00",
    cipher_suites: bytes = bytes.fromhex("0002 c02f"),
    compression: bytes = b"\x01\x00",
    extensions: bytes = b"",
) -> bytes:
    """A ClientHello body from raw, possibly malformed, vectors."""
    return (
        bytes.fromhex("0303")
        + CLIENT_RANDOM
        + session_id
        + cipher_suites
        + compression
        + (extensions)
    )


def decode_hello(body: bytes) -> ClientHello:
    return decode_whole(ClientHello.decode, body)


def test_the_malformed_hello_helper_builds_a_valid_hello() -> None:
    # The baseline the rejection cases mutate must itself decode.
    hello = decode_hello(hello_body(extensions=vec16(ext(23, b""))))
    assert hello.cipher_suites == (0xC02F,)
    assert hello.extensions == (ExtendedMasterSecret(),)


def test_every_truncation_of_a_client_hello_is_a_decode_error() -> None:
    _, body = client_hello_case()
    # A ClientHello may end right after compression_methods (no extensions block at all):
    # that one prefix is a valid, extension-less ClientHello; every other one is truncated.
    without_extensions = 2 + 32 + 1 + len(SESSION_ID) + 2 + 8 + 2
    for length in range(len(body)):
        prefix = body[:length]
        if length == without_extensions:
            assert decode_hello(prefix).extensions == ()
            continue
        raises_exactly(DecodeError, AlertDescription.decode_error, partial(decode_hello, prefix))


def test_a_trailing_byte_after_a_message_is_a_decode_error() -> None:
    hello, body = client_hello_case()
    reader = Reader(body + b"\x00")
    assert ClientHello.decode(reader) == hello  # the structure itself is complete...
    raises_exactly(DecodeError, AlertDescription.decode_error, reader.end)  # ...but not alone


def test_a_trailing_byte_after_a_framed_message_is_a_decode_error() -> None:
    wire = encode_handshake(Finished(bytes(12)))
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_framed(Finished, wire + b"\x00"),
    )


SNI_BODY = vec16(b"\x00" + vec16(b"example.com"))


@pytest.mark.parametrize(
    "body",
    [
        # a ServerNameList length of 15 where the extension holds 14 bytes after it
        hello_body(extensions=vec16(ext(0, u16(15) + SNI_BODY[2:]))),
        # an extension length running past the extensions block
        hello_body(extensions=vec16(u16(23) + u16(5))),
        # the extensions block length running past the message
        hello_body(extensions=u16(10) + ext(23, b"")),
        # cipher_suites length running past the message
        hello_body(cipher_suites=bytes.fromhex("00ff c02f"), compression=b"", extensions=b""),
        # session_id length running past the message
        bytes.fromhex("0303") + CLIENT_RANDOM + b"\x20" + bytes(8),
        # a HostName length running past the ServerNameList
        hello_body(extensions=vec16(ext(0, vec16(b"\x00" + u16(20) + b"example.com")))),
    ],
    ids=["sni-list", "extension", "extensions-block", "cipher-suites", "session-id", "host-name"],
)
def test_an_over_long_inner_vector_is_a_decode_error(body: bytes) -> None:
    raises_exactly(DecodeError, AlertDescription.decode_error, lambda: decode_hello(body))


def test_session_id_longer_than_32_is_a_decode_error() -> None:
    assert decode_hello(hello_body(session_id=vec8(bytes(32)))).session_id == bytes(32)
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(session_id=vec8(bytes(33)))),
    )


@pytest.mark.parametrize(
    "cipher_suites",
    [bytes.fromhex("0000"), bytes.fromhex("0003 c02f 00"), bytes.fromhex("0001 c0")],
    ids=["empty", "odd-3", "odd-1"],
)
def test_bad_cipher_suites_vector_is_a_decode_error(cipher_suites: bytes) -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(cipher_suites=cipher_suites)),
    )


def test_empty_compression_methods_is_a_decode_error() -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(compression=b"\x00")),
    )


# The most extensions a block holds: 16,383 entries of 4 bytes, one of them ours.
CROWDED = ext(23, b"") + b"".join(ext(0x4000 + i, b"") for i in range(0xFFFF // 4 - 1))


def python_calls_while(action: Callable[[], object]) -> int:
    """How many Python functions run during `action` (C calls are not counted)."""
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls


def test_unknown_extensions_cost_no_python_call_each() -> None:
    # A hostile hello carries 16,382 unknown extensions: the decoder only delimits them,
    # without a Python call (an object, a sub-reader) per entry.
    body = hello_body(extensions=vec16(CROWDED))
    calls = python_calls_while(partial(decode_hello, body))
    assert calls < 100
    hello = decode_hello(body)
    assert hello.extension(ExtendedMasterSecret) == ExtendedMasterSecret()
    assert len(hello.extensions) == 16383
    assert encode_handshake(hello)[4:] == body  # the block kept byte for byte
    unknown = list(hello.extensions)[1:]  # made on demand, in the client's order
    assert unknown[0] == UnknownExtension(0x4000, b"")
    assert [e.extension_type for e in unknown] == list(range(0x4000, 0x4000 + 16382))


def test_a_decoded_hello_keeps_its_bytes_not_an_object_per_extension() -> None:
    body = hello_body(extensions=vec16(CROWDED))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hello = decode_hello(body)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert hello.extensions
    assert kept < 2 * len(body)


def test_a_duplicate_among_many_unknown_extensions_is_a_decode_error() -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(extensions=vec16(CROWDED[:-8] + ext(0x4000, b"")))),
    )


@pytest.mark.parametrize(
    "extensions",
    [
        ext(23, b"") + ext(23, b""),
        ext(0x1A1A, b"") + ext(0x1A1A, b"\x00"),  # unknown types count too
        ext(10, bytes.fromhex("0002 001d"))
        + ext(0, SNI_BODY)
        + ext(10, bytes.fromhex("0002 0017")),
    ],
    ids=["ems", "unknown", "supported-groups"],
)
def test_a_duplicate_extension_is_a_decode_error(extensions: bytes) -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(extensions=vec16(extensions))),
    )


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("0000"),  # an empty ServerNameList
        b"",  # no ServerNameList at all (the server's form is not valid from a client)
        vec16(b"\x00" + u16(0)),  # an empty HostName
        vec16(b"\x00" + u16(9) + b"a.example"[:5]),  # a HostName length past its list
        vec16(b"\x00" + vec16(b"a.example")) + b"\x00",  # a byte after the list
    ],
    ids=["empty-list", "no-list", "empty-name", "name-overruns", "trailing-byte"],
)
def test_a_malformed_server_name_is_a_decode_error(data: bytes) -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(extensions=vec16(ext(0, data)))),
    )


BAD_HOST_NAMES = {
    "non-ascii": "bücher.example".encode(),  # must be an A-label
    "trailing-dot": b"example.com.",  # RFC 6066 §3
    "nul": b"exa\x00mple.com",
    "bel": b"exa\x07mple.com",
    "esc": b"\x1bexample.com",
    "space": b"www example.com",
    "underscore": b"_dmarc.example.com",
    "slash": b"example.com/x",
    "empty-label": b"a..example.com",
    "leading-dot": b".example.com",
    "only-a-dot": b".",
    "label-of-64": b"a" * 64 + b".com",
    "256-bytes": b".".join([b"a" * 63] * 3 + [b"a" * 62, b"a"]),  # valid labels, too long
    "65000-bytes": b"a" * 65000,
}


@pytest.mark.parametrize("name", BAD_HOST_NAMES.values(), ids=BAD_HOST_NAMES.keys())
def test_a_host_name_that_is_not_a_dns_name_is_an_illegal_parameter(name: bytes) -> None:
    data = vec16(b"\x00" + vec16(name))
    raises_exactly(
        IllegalParameter,
        AlertDescription.illegal_parameter,
        lambda: decode_hello(hello_body(extensions=vec16(ext(0, data)))),
    )


def test_two_host_names_are_an_illegal_parameter() -> None:
    # RFC 6066 §3: "MUST NOT contain more than one name of the same name_type".
    data = vec16(b"\x00" + vec16(b"a.example") + b"\x00" + vec16(b"b.example"))
    raises_exactly(
        IllegalParameter,
        AlertDescription.illegal_parameter,
        lambda: decode_hello(hello_body(extensions=vec16(ext(0, data)))),
    )


@pytest.mark.parametrize(
    "name",
    [b"localhost", b"a", b"xn--bcher-kva.example", b"A-1.Example.COM", b".".join([b"a" * 63] * 4)],
)
def test_dns_host_names_up_to_255_bytes_are_accepted(name: bytes) -> None:
    hello = decode_hello(hello_body(extensions=vec16(ext(0, vec16(b"\x00" + vec16(name))))))
    extension = hello.extension(ServerName)
    assert extension is not None
    assert extension.host_name == name.decode().lower()


@pytest.mark.parametrize(
    ("extension_type", "data"),
    [
        (16, bytes.fromhex("0004 02 6832 00")),  # ALPN: an empty protocol name after h2
        (16, bytes.fromhex("0000")),  # ALPN: an empty list
        (10, bytes.fromhex("0003 001d 00")),  # supported_groups of odd length
        (10, bytes.fromhex("0000")),  # supported_groups empty
        (13, bytes.fromhex("0003 0804 04")),  # signature_algorithms of odd length
        (11, bytes.fromhex("00")),  # ec_point_formats empty
        (23, b"\x00"),  # extended_master_secret with a body (RFC 7627 §5.1: empty)
        (0xFF01, b""),  # renegotiation_info without its length byte
        (0xFF01, b"\x00\x00"),  # renegotiation_info with a trailing byte
        (43, bytes.fromhex("03 0304 03")),  # supported_versions of odd length
    ],
    ids=[
        "alpn-empty-name",
        "alpn-empty-list",
        "groups-odd",
        "groups-empty",
        "sigalgs-odd",
        "point-formats-empty",
        "ems-body",
        "reneg-empty",
        "reneg-trailing",
        "versions-odd",
    ],
)
def test_a_malformed_extension_body_is_a_decode_error(extension_type: int, data: bytes) -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_hello(hello_body(extensions=vec16(ext(extension_type, data)))),
    )


@pytest.mark.parametrize("payload", [b"\x02", b"", b"\x01\x01", b"\x00"])
def test_a_change_cipher_spec_other_than_01_is_an_unexpected_message(payload: bytes) -> None:
    raises_exactly(
        UnexpectedMessage,
        AlertDescription.unexpected_message,
        lambda: ChangeCipherSpec.decode(Reader(payload)),
    )


def test_alert_level_3_is_an_illegal_parameter() -> None:
    raises_exactly(
        IllegalParameter,
        AlertDescription.illegal_parameter,
        lambda: decode_whole(Alert.decode, b"\x03\x00"),
    )


def test_server_key_exchange_with_explicit_curve_is_an_illegal_parameter() -> None:
    body = b"\x01" + u16(29) + vec8(bytes(32)) + u16(0x0804) + vec16(b"sig")
    raises_exactly(
        IllegalParameter,
        AlertDescription.illegal_parameter,
        lambda: decode_whole(ServerKeyExchange.decode, body),
    )


def test_empty_client_key_exchange_and_certificate_entry_are_decode_errors() -> None:
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_whole(ClientKeyExchange.decode, b"\x00"),
    )
    raises_exactly(
        DecodeError,
        AlertDescription.decode_error,
        lambda: decode_whole(Certificate.decode, vec24(vec24(b""))),
    )


# -- real ClientHellos --------------------------------------------------------------------------

FIXTURE_NAMES = [
    "chromium",
    "curl-default",
    "curl-tls12",
    "gnutls-default",
    "openssl-default",
    "openssl-tls12",
    "python-ssl",
]


def test_the_fixture_list_is_complete() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.bin")) == FIXTURE_NAMES


def load_hello(name: str) -> tuple[bytes, ClientHello]:
    """The record, and its ClientHello decoded with every length checked."""
    record = (FIXTURES / f"{name}.bin").read_bytes()
    reader = Reader(record)
    assert reader.u8() == 22  # ContentType.handshake
    assert reader.u16() >> 8 == 3  # a 3.x record version
    fragment = reader.vec16()
    reader.end()  # the file is exactly one record
    assert fragment.u8() == HandshakeType.client_hello
    body = fragment.vec24()
    fragment.end()  # the record is exactly one handshake message
    hello = ClientHello.decode(body)
    body.end()  # and the message has no trailing bytes
    return record, hello


def is_grease(value: int) -> bool:
    """RFC 8701 §2: 0x0A0A, 0x1A1A, ..., 0xFAFA."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def extension_types(hello: ClientHello) -> list[int]:
    return [e.extension_type for e in hello.extensions]


def unknown(hello: ClientHello, extension_type: int) -> bytes:
    found = [
        e
        for e in hello.extensions
        if isinstance(e, UnknownExtension) and e.extension_type == extension_type
    ]
    assert len(found) == 1, f"extension {extension_type:#06x} is not kept raw exactly once"
    return found[0].data


def key_share_groups(hello: ClientHello) -> list[tuple[int, int]]:
    """RFC 8446 §4.2.8 KeyShareClientHello: (group, key_exchange length) of each entry."""
    found = hello.extension(KeyShare)
    assert found is not None
    return [(share.group, len(share.key_exchange)) for share in found.shares]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_client_hello_decodes_and_reencodes_byte_for_byte(name: str) -> None:
    record, hello = load_hello(name)
    assert hello.client_version == TLS12
    assert len(hello.random) == 32
    assert 0 in hello.compression_methods
    assert encode_handshake(hello) == record[5:]
    assert int.from_bytes(record[3:5], "big") == len(record) - 5


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_client_hello_offers_an_ecdhe_aead_suite_we_implement(name: str) -> None:
    _, hello = load_hello(name)
    assert {0xC02B, 0xC02F, 0xC02C, 0xC030} <= set(hello.cipher_suites)
    groups = hello.extension(SupportedGroups)
    assert groups is not None
    assert 29 in groups.groups  # x25519
    assert hello.extension(SignatureAlgorithms) is not None


def test_chromium_hello() -> None:
    _, hello = load_hello("chromium")
    assert len(hello.session_id) == 32  # TLS 1.3 middlebox compatibility
    # GREASE (RFC 8701) passes through as plain ints and raw extensions.
    assert is_grease(hello.cipher_suites[0])
    assert type(hello.cipher_suites[0]) is int
    assert hello.cipher_suites[1:4] == (0x1301, 0x1302, 0x1303)
    grease_extensions = [t for t in extension_types(hello) if is_grease(t)]
    assert len(grease_extensions) == 2
    for extension_type in grease_extensions:
        unknown(hello, extension_type)
    versions = hello.extension(SupportedVersions)
    assert versions is not None
    assert is_grease(versions.versions[0])
    assert versions.versions[1:] == (TLS13, TLS12)
    groups = hello.extension(SupportedGroups)
    assert groups is not None
    assert is_grease(groups.groups[0])
    assert groups.groups[1:] == (0x11EC, 29, 23, 24)  # X25519MLKEM768 first
    schemes = hello.extension(SignatureAlgorithms)
    assert schemes is not None
    assert is_grease(schemes.schemes[0])
    # The key shares: GREASE, X25519MLKEM768 (1184 + 32 bytes), x25519.
    assert key_share_groups(hello) == [
        (groups.groups[0], 1),
        (0x11EC, 1216),
        (29, 32),
    ]
    unknown(hello, 0xFE0D)  # ECH GREASE
    assert unknown(hello, 27) == bytes.fromhex("020002")  # compress_certificate: brotli
    unknown(hello, 0x44CD)  # ALPS
    assert hello.extension(ServerName) == ServerName("localhost")
    assert hello.extension(ApplicationLayerProtocolNegotiation) == (
        ApplicationLayerProtocolNegotiation((b"h2", b"http/1.1"))
    )
    # Renegotiation is signalled by the extension, not the SCSV.
    assert hello.extension(RenegotiationInfo) == RenegotiationInfo(b"")
    assert 0x00FF not in hello.cipher_suites
    assert hello.extension(ExtendedMasterSecret) is not None
    assert hello.extension(SessionTicket) == SessionTicket(b"")


def test_curl_default_hello() -> None:
    _, hello = load_hello("curl-default")
    versions = hello.extension(SupportedVersions)
    assert versions is not None
    assert versions.versions == (TLS13, TLS12, 0x0302, 0x0301)
    # Renegotiation signalled by the SCSV only (RFC 5746 §3.3), as the last suite.
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension(RenegotiationInfo) is None
    assert all(byte == 0 for byte in unknown(hello, 21))  # padding (RFC 7685)
    assert key_share_groups(hello) == [(29, 32)]
    assert hello.extension(ServerName) is None  # this capture carries no server_name
    assert hello.extension(ApplicationLayerProtocolNegotiation) == (
        ApplicationLayerProtocolNegotiation((b"h2", b"http/1.1"))
    )
    assert hello.extension(ExtendedMasterSecret) is not None


def test_curl_tls12_hello() -> None:
    _, hello = load_hello("curl-tls12")
    assert hello.extension(SupportedVersions) is None
    assert 51 not in extension_types(hello)  # no key_share without TLS 1.3
    assert not any(0x1301 <= suite <= 0x1305 for suite in hello.cipher_suites)
    assert hello.session_id == b""
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension(RenegotiationInfo) is None
    assert hello.extension(ExtendedMasterSecret) is not None


def test_openssl_default_hello() -> None:
    _, hello = load_hello("openssl-default")
    assert hello.extension(SessionTicket) == SessionTicket(b"")
    assert unknown(hello, 22) == b""  # encrypt_then_mac (RFC 7366)
    assert hello.extension(ExtendedMasterSecret) is not None
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension(RenegotiationInfo) is None
    versions = hello.extension(SupportedVersions)
    assert versions is not None
    assert TLS12 in versions.versions
    assert hello.extension(ApplicationLayerProtocolNegotiation) is None


def test_openssl_tls12_hello() -> None:
    _, hello = load_hello("openssl-tls12")
    assert hello.extension(SupportedVersions) is None
    assert hello.extension(SessionTicket) == SessionTicket(b"")
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension(ECPointFormats) == ECPointFormats((0, 1, 2))


def test_gnutls_default_hello() -> None:
    _, hello = load_hello("gnutls-default")
    assert unknown(hello, 5) == bytes.fromhex("0100000000")  # status_request: OCSP, empty
    assert unknown(hello, 28) == u16(0x4001)  # record_size_limit (RFC 8449): 2^14 + 1
    assert hello.extension(SessionTicket) == SessionTicket(b"")
    # GnuTLS uses the extension, not the SCSV, for renegotiation.
    assert hello.extension(RenegotiationInfo) == RenegotiationInfo(b"")
    assert 0x00FF not in hello.cipher_suites
    assert key_share_groups(hello) == [(23, 65), (29, 32)]
    groups = hello.extension(SupportedGroups)
    assert groups is not None
    assert groups.groups[0] == 23  # secp256r1 preferred


def test_python_ssl_hello() -> None:
    _, hello = load_hello("python-ssl")
    assert hello.extension(ServerName) == ServerName("localhost")
    assert all(byte == 0 for byte in unknown(hello, 21))  # padding
    versions = hello.extension(SupportedVersions)
    assert versions is not None
    assert versions.versions == (TLS13, TLS12)
    assert hello.cipher_suites[-1] == 0x00FF
    assert hello.extension(RenegotiationInfo) is None


def test_grease_helper() -> None:
    assert [v for v in (0x0A0A, 0x1A1A, 0xFAFA, 0xAAAA) if is_grease(v)] == [
        0x0A0A,
        0x1A1A,
        0xFAFA,
        0xAAAA,
    ]
    assert not any(is_grease(v) for v in (0x0A1A, 0x0B0B, 0x1301, 0xC02F, 0xFE0D))
