"""TLS 1.3 wire formats: extensions and messages, their RFC 8446 bounds, real ClientHellos and
the RFC 8448 traces.

As in test_messages.py, expected bytes are written out by hand from the RFC structs, or are the
bytes RFC 8448 prints (checked here against the hashes the RFC prints for them), never produced
by the encoder under test.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from trio_tls.engine.wire.codec import Reader, Writer
from trio_tls.engine.wire.enums import (
    HELLO_RETRY_REQUEST_RANDOM,
    TLS12,
    TLS13,
    TLS13_DOWNGRADE_TLS12,
    AlertDescription,
    ExtensionType,
    HandshakeType,
    KeyUpdateRequest,
    PskKeyExchangeMode,
)
from trio_tls.engine.wire.errors import (
    CertificateRequired,
    DecodeError,
    IllegalParameter,
    LocalProtocolError,
    MissingExtension,
)
from trio_tls.engine.wire.extensions import (
    KNOWN_EXTENSIONS,
    AnyExtension,
    CertificateAuthorities,
    Cookie,
    EarlyData,
    Extension,
    Extensions,
    KeyShare,
    KeyShareEntry,
    KeyShareRetry,
    KeyShareServer,
    PostHandshakeAuth,
    PreSharedKey,
    PskIdentity,
    PskKeyExchangeModes,
    SelectedIdentity,
    SelectedVersion,
    ServerName,
    SignatureAlgorithms,
    SignatureAlgorithmsCert,
    SupportedGroups,
    SupportedVersions,
    UnknownExtension,
)
from trio_tls.engine.wire.messages import (
    CertificateVerify,
    ClientHello,
    ClientMessage,
    HandshakeMessage,
    ServerHello,
    encode_handshake,
)
from trio_tls.engine.wire.messages13 import (
    Certificate13,
    CertificateEntry,
    CertificateRequest13,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished13,
    KeyUpdate,
    NewSessionTicket13,
)

from .test_messages import (
    FIXTURE_NAMES,
    decode_framed,
    decode_whole,
    ext,
    is_grease,
    load_hello,
    raises_exactly,
    u8,
    u16,
    u24,
    vec8,
    vec16,
    vec24,
)

X25519MLKEM768 = 0x11EC  # IANA TLS Supported Groups; not (yet) a NamedGroup here


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def encoded(extension: AnyExtension) -> bytes:
    writer = Writer()
    extension.encode(writer)
    return writer.getvalue()


def decode_extension(cls: type[Extension], data: bytes) -> Extension:
    return decode_whole(cls.decode, data)


# -- code points ----------------------------------------------------------------------------------


def test_hello_retry_request_random_is_the_hash_of_its_name() -> None:
    # RFC 8446 §4.1.3: SHA-256("HelloRetryRequest"), which the RFC also prints in hex.
    assert hashlib.sha256(b"HelloRetryRequest").digest() == HELLO_RETRY_REQUEST_RANDOM
    assert HELLO_RETRY_REQUEST_RANDOM.hex().startswith("cf21ad74e59a6111be1d8c021e65b891")
    assert bytes.fromhex("44 4F 57 4E 47 52 44 01") == TLS13_DOWNGRADE_TLS12


def test_tls13_code_points() -> None:
    assert (HandshakeType.end_of_early_data, HandshakeType.encrypted_extensions) == (5, 8)
    assert (HandshakeType.key_update, HandshakeType.message_hash) == (24, 254)
    assert [ExtensionType.pre_shared_key, ExtensionType.key_share] == [41, 51]
    assert int(ExtensionType.signature_algorithms_cert) == 50
    assert (AlertDescription.missing_extension, AlertDescription.certificate_required) == (109, 116)
    assert int(AlertDescription.unknown_psk_identity) == 115
    assert (PskKeyExchangeMode.psk_ke, PskKeyExchangeMode.psk_dhe_ke) == (0, 1)
    assert list(KeyUpdateRequest) == [0, 1]


@pytest.mark.parametrize(
    ("error", "alert"),
    [
        (MissingExtension, AlertDescription.missing_extension),
        (CertificateRequired, AlertDescription.certificate_required),
    ],
)
def test_new_errors_send_their_alerts(error: type[LocalProtocolError], alert: int) -> None:
    assert error("missing").alert == alert


# -- extensions -----------------------------------------------------------------------------------

KEY = bytes(range(32))
BINDER = bytes(range(100, 132))

# (extension object, its extension_data written out by hand from RFC 8446 §4.2)
EXTENSION_CASES: list[tuple[AnyExtension, bytes]] = [
    (
        KeyShare((KeyShareEntry(29, KEY), KeyShareEntry(23, b"\x04" + KEY + KEY))),
        vec16(u16(29) + vec16(KEY) + u16(23) + vec16(b"\x04" + KEY + KEY)),
    ),
    (KeyShare(()), u16(0)),  # RFC 8446 §4.2.8: empty, to ask for a HelloRetryRequest
    (KeyShareServer(KeyShareEntry(29, KEY)), u16(29) + vec16(KEY)),
    (KeyShareRetry(23), u16(23)),
    (SelectedVersion(TLS13), bytes.fromhex("0304")),
    (
        PreSharedKey((PskIdentity(b"ticket", 0x01020304),), (BINDER,)),
        vec16(vec16(b"ticket") + u32(0x01020304)) + vec16(vec8(BINDER)),
    ),
    (SelectedIdentity(1), u16(1)),
    (PskKeyExchangeModes((1, 0)), bytes.fromhex("02 01 00")),
    (EarlyData(), b""),
    (Cookie(b"c"), vec16(b"c")),
    (PostHandshakeAuth(), b""),
    (SignatureAlgorithmsCert((0x0804, 0x0403)), bytes.fromhex("0004 0804 0403")),
    (
        CertificateAuthorities((b"\x30\x00", b"\x30\x01\x00")),
        vec16(vec16(b"\x30\x00") + vec16(b"\x30\x01\x00")),
    ),
]
EXTENSION_IDS = [type(e).__name__ for e, _ in EXTENSION_CASES]


@pytest.mark.parametrize(("extension", "data"), EXTENSION_CASES, ids=EXTENSION_IDS)
def test_extension_encodes_to_its_rfc_bytes(extension: AnyExtension, data: bytes) -> None:
    assert encoded(extension) == data


@pytest.mark.parametrize(("extension", "data"), EXTENSION_CASES, ids=EXTENSION_IDS)
def test_extension_decodes_from_its_rfc_bytes(extension: AnyExtension, data: bytes) -> None:
    assert not isinstance(extension, UnknownExtension)
    assert decode_extension(type(extension), data) == extension


def test_client_forms_are_known_and_server_forms_are_not() -> None:
    client_forms: list[type[Extension]] = [
        *(KeyShare, PreSharedKey, PskKeyExchangeModes, EarlyData, Cookie),
        *(PostHandshakeAuth, SignatureAlgorithmsCert, CertificateAuthorities),
    ]
    for cls in client_forms:
        assert KNOWN_EXTENSIONS[cls.extension_type] is cls
    # Each server form shares its type with the client form the server decodes.
    assert KNOWN_EXTENSIONS[SelectedVersion.extension_type] is SupportedVersions
    assert KNOWN_EXTENSIONS[KeyShareServer.extension_type] is KeyShare
    assert KNOWN_EXTENSIONS[KeyShareRetry.extension_type] is KeyShare
    assert KNOWN_EXTENSIONS[SelectedIdentity.extension_type] is PreSharedKey


def test_share_for() -> None:
    shares = KeyShare((KeyShareEntry(X25519MLKEM768, b"m" * 1216), KeyShareEntry(29, KEY)))
    assert shares.share_for(29) == KEY
    assert shares.share_for(X25519MLKEM768) == b"m" * 1216
    assert shares.share_for(23) is None


def test_signature_algorithms_cert_is_not_signature_algorithms() -> None:
    block = Extensions.of((SignatureAlgorithmsCert((0x0804,)),))
    assert block.get(SignatureAlgorithmsCert) == SignatureAlgorithmsCert((0x0804,))
    assert block.get(SignatureAlgorithms) is None


def test_binders_length_counts_the_binders_and_their_length() -> None:
    offered = PreSharedKey(
        (PskIdentity(b"a", 0), PskIdentity(b"b", 0)), (BINDER, BINDER + bytes(16))
    )
    data = encoded(offered)
    binders = vec16(vec8(BINDER) + vec8(BINDER + bytes(16)))
    assert data.endswith(binders)
    assert offered.binders_length == len(binders) == 2 + 33 + 49
    assert decode_extension(PreSharedKey, data) == offered


MINIMAL_IDENTITY = vec16(b"i") + u32(0)  # 7 bytes: identities<7..2^16-1> at its minimum

# (extension class, malformed or out-of-bounds extension_data, the exact error)
REJECTIONS: list[tuple[type[Extension], bytes, type[LocalProtocolError]]] = [
    # KeyShareClientHello: client_shares<0..2^16-1>, key_exchange<1..2^16-1>
    (KeyShare, b"", DecodeError),  # not even the list length
    (KeyShare, b"\x00", DecodeError),
    (KeyShare, vec16(u16(29) + u16(0)), DecodeError),  # key_exchange below 1
    (KeyShare, vec16(u16(29) + vec16(KEY)[:-1]), DecodeError),  # entry overruns the list
    (KeyShare, u16(3) + u16(29) + b"\x00", DecodeError),  # a truncated entry
    (KeyShare, vec16(u16(29) + vec16(KEY) + u16(29) + vec16(KEY)), IllegalParameter),
    (KeyShare, vec16(u16(29) + vec16(b"\x01") + u16(29) + vec16(KEY)), IllegalParameter),
    # OfferedPsks: identities<7..2^16-1>, identity<1..2^16-1>, binders<33..2^16-1>,
    # PskBinderEntry<32..255>
    (PreSharedKey, b"", DecodeError),
    (PreSharedKey, vec16(MINIMAL_IDENTITY[:-1]) + vec16(vec8(BINDER)), DecodeError),  # 6 bytes
    (PreSharedKey, vec16(u16(0) + u32(0) + b"\x00") + vec16(vec8(BINDER)), DecodeError),
    (PreSharedKey, vec16(MINIMAL_IDENTITY), DecodeError),  # no binders at all
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + vec16(vec8(BINDER[:31])), DecodeError),  # 32 bytes
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + vec16(vec8(BINDER[:31]) + b"\x00"), DecodeError),
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + u16(0), DecodeError),
    # Well formed, but two binders for one identity, or none for the second.
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + vec16(vec8(BINDER) * 2), IllegalParameter),
    (PreSharedKey, vec16(MINIMAL_IDENTITY * 2) + vec16(vec8(BINDER)), IllegalParameter),
    # ke_modes<1..255>
    (PskKeyExchangeModes, b"", DecodeError),
    (PskKeyExchangeModes, b"\x00", DecodeError),
    (PskKeyExchangeModes, b"\x02\x01", DecodeError),
    # empty ones
    (EarlyData, b"\x00", DecodeError),
    (PostHandshakeAuth, b"\x00", DecodeError),
    # cookie<1..2^16-1>
    (Cookie, b"", DecodeError),
    (Cookie, u16(0), DecodeError),
    # supported_signature_algorithms<2..2^16-2>
    (SignatureAlgorithmsCert, u16(0), DecodeError),
    (SignatureAlgorithmsCert, vec16(b"\x08\x04\x04"), DecodeError),
    # authorities<3..2^16-1>, DistinguishedName<1..2^16-1>
    (CertificateAuthorities, u16(0), DecodeError),
    (CertificateAuthorities, vec16(u16(0)), DecodeError),  # 2 bytes, an empty name
    (CertificateAuthorities, vec16(u16(0) + b"\x30"), DecodeError),  # 3 bytes, an empty name
    # server forms
    (SelectedVersion, b"\x03", DecodeError),
    (KeyShareServer, u16(29) + u16(0), DecodeError),
    (KeyShareRetry, b"\x00", DecodeError),
    (SelectedIdentity, b"", DecodeError),
]


@pytest.mark.parametrize(
    ("cls", "data", "error"),
    REJECTIONS,
    ids=[f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(REJECTIONS)],
)
def test_malformed_extension_is_rejected(
    cls: type[Extension], data: bytes, error: type[LocalProtocolError]
) -> None:
    raises_exactly(error, error.alert, lambda: decode_extension(cls, data))  # type: ignore[arg-type]


# The smallest and largest values each bound allows decode.
ACCEPTED_AT_THE_BOUNDS: list[tuple[type[Extension], bytes]] = [
    (KeyShare, u16(0)),
    (KeyShare, vec16(u16(29) + vec16(b"\x01"))),
    (KeyShare, vec16(u16(29) + vec16(bytes(0xFFFF - 4)))),  # the list at 2^16-1
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + vec16(vec8(BINDER))),
    (PreSharedKey, vec16(MINIMAL_IDENTITY) + vec16(vec8(bytes(255)))),
    (PskKeyExchangeModes, vec8(b"\x01")),
    (PskKeyExchangeModes, vec8(bytes(255))),
    (Cookie, vec16(b"c")),
    (Cookie, vec16(bytes(0xFFFF))),
    (SignatureAlgorithmsCert, vec16(b"\x08\x04")),
    (CertificateAuthorities, vec16(vec16(b"\x30"))),
]


@pytest.mark.parametrize(("cls", "data"), ACCEPTED_AT_THE_BOUNDS)
def test_extension_at_its_bounds_decodes(cls: type[Extension], data: bytes) -> None:
    assert encoded(decode_extension(cls, data)) == data


def test_a_duplicate_key_share_group_fails_the_whole_hello() -> None:
    duplicate = vec16(u16(29) + vec16(KEY) + u16(29) + vec16(KEY))
    with pytest.raises(IllegalParameter):
        Extensions.decode(Reader(vec16(ext(51, duplicate))))


# -- messages -------------------------------------------------------------------------------------

DER = b"\x30\x03\x02\x01\x01"
SCT = UnknownExtension(18, b"\x00\x01\x02")


def handshake(msg_type: int, body: bytes) -> bytes:
    return u8(msg_type) + vec24(body)


MESSAGE_CASES: list[tuple[HandshakeMessage, bytes]] = [
    (EncryptedExtensions(()), handshake(8, u16(0))),
    (
        EncryptedExtensions((SupportedGroups((29,)), EarlyData())),
        handshake(8, vec16(ext(10, bytes.fromhex("0002 001d")) + ext(42, b""))),
    ),
    (
        Certificate13(b"", (CertificateEntry(DER, (SCT,)), CertificateEntry(b"\x30\x00"))),
        handshake(
            11,
            u8(0)
            + vec24(vec24(DER) + vec16(ext(18, b"\x00\x01\x02")) + vec24(b"\x30\x00") + u16(0)),
        ),
    ),
    (Certificate13(b"ctx", ()), handshake(11, vec8(b"ctx") + u24(0))),
    (
        CertificateRequest13(b"", (SignatureAlgorithms((0x0804,)),)),
        handshake(13, u8(0) + vec16(ext(13, bytes.fromhex("0002 0804")))),
    ),
    (
        CertificateRequest13(
            b"\x01", (SignatureAlgorithms((0x0403,)), CertificateAuthorities((DER,)))
        ),
        handshake(
            13,
            vec8(b"\x01") + vec16(ext(13, bytes.fromhex("0002 0403")) + ext(47, vec16(vec16(DER)))),
        ),
    ),
    (
        NewSessionTicket13(7200, 0xA1B2C3D4, b"\x00\x01", b"ticket"),
        handshake(4, u32(7200) + u32(0xA1B2C3D4) + vec8(b"\x00\x01") + vec16(b"ticket") + u16(0)),
    ),
    (KeyUpdate(KeyUpdateRequest.update_requested), bytes.fromhex("18 000001 01")),
    (KeyUpdate(KeyUpdateRequest.update_not_requested), bytes.fromhex("18 000001 00")),
    (Finished13(bytes(range(48))), bytes.fromhex("14 000030") + bytes(range(48))),
    (EndOfEarlyData(), bytes.fromhex("05 000000")),
    (
        ServerHello(
            TLS12,
            HELLO_RETRY_REQUEST_RANDOM,
            b"",
            0x1301,
            0,
            (SelectedVersion(TLS13), KeyShareRetry(23), Cookie(b"c")),
        ),
        handshake(
            2,
            u16(TLS12)
            + HELLO_RETRY_REQUEST_RANDOM
            + bytes.fromhex("00 1301 00")
            + vec16(ext(43, u16(TLS13)) + ext(51, u16(23)) + ext(44, vec16(b"c"))),
        ),
    ),
]
MESSAGE_IDS = [f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(MESSAGE_CASES)]


@pytest.mark.parametrize(("message", "wire"), MESSAGE_CASES, ids=MESSAGE_IDS)
def test_handshake_message_encodes_to_its_rfc_bytes(message: HandshakeMessage, wire: bytes) -> None:
    assert encode_handshake(message) == wire


@pytest.mark.parametrize(("message", "wire"), MESSAGE_CASES, ids=MESSAGE_IDS)
def test_handshake_message_round_trips(message: HandshakeMessage, wire: bytes) -> None:
    decoded = decode_framed(type(message), wire)
    assert decoded == message
    assert encode_handshake(decoded) == wire


def test_client_messages_bound_what_is_buffered() -> None:
    client_messages: list[type[ClientMessage]] = [
        Certificate13,
        CertificateVerify,
        Finished13,
        KeyUpdate,
        EndOfEarlyData,
    ]
    assert [cls.max_length for cls in client_messages] == [100 * 1024, 1028, 48, 1, 0]


def test_certificate13_shares_the_chain_form() -> None:
    message = Certificate13.of((DER, b"\x30\x00"))
    assert message.certificate_list == (DER, b"\x30\x00")
    assert message.request_context == b""
    assert all(len(entry.extensions) == 0 for entry in message.entries)


# (decoder, malformed or out-of-bounds message body, the exact error)
MESSAGE_REJECTIONS: list[tuple[type[HandshakeMessage], bytes, type[LocalProtocolError]]] = [
    (EncryptedExtensions, b"", DecodeError),  # extensions<0..2^16-1> is not optional
    (EncryptedExtensions, b"\x00", DecodeError),
    (EncryptedExtensions, vec16(ext(10, b"")), DecodeError),  # a malformed supported_groups
    (Certificate13, b"", DecodeError),
    (Certificate13, u8(0), DecodeError),  # no certificate_list
    (Certificate13, vec8(b"x") + vec24(u24(0) + u16(0)), DecodeError),  # cert_data below 1
    (Certificate13, u8(0) + vec24(vec24(DER)), DecodeError),  # an entry without extensions
    (Certificate13, u8(0) + vec24(vec24(DER) + b"\x00"), DecodeError),
    (Certificate13, u8(1), DecodeError),  # a context that overruns
    (CertificateRequest13, u8(0) + u16(0), DecodeError),  # extensions<2..2^16-1>
    (CertificateRequest13, u8(0), DecodeError),
    (CertificateRequest13, u8(0) + vec16(ext(13, u16(0))), DecodeError),
    (NewSessionTicket13, u32(1) + u32(2) + u8(0) + u16(0) + u16(0), DecodeError),  # no ticket
    (NewSessionTicket13, u32(1) + u32(2) + u8(0) + vec16(b"t"), DecodeError),  # no extensions
    (NewSessionTicket13, u32(1) + u32(2) + u8(1), DecodeError),  # nonce overruns
    (NewSessionTicket13, u32(1), DecodeError),
    (KeyUpdate, b"", DecodeError),
    (KeyUpdate, b"\x02", IllegalParameter),
    (KeyUpdate, b"\xff", IllegalParameter),
    (KeyUpdate, b"\x00\x00", DecodeError),
    (EndOfEarlyData, b"\x00", DecodeError),
]


@pytest.mark.parametrize(
    ("cls", "body", "error"),
    MESSAGE_REJECTIONS,
    ids=[f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(MESSAGE_REJECTIONS)],
)
def test_malformed_message_is_rejected(
    cls: type[HandshakeMessage], body: bytes, error: type[LocalProtocolError]
) -> None:
    raises_exactly(error, error.alert, lambda: decode_whole(cls.decode, body))  # type: ignore[arg-type]


MESSAGES_AT_THE_BOUNDS: list[tuple[type[HandshakeMessage], bytes]] = [
    (Certificate13, vec8(bytes(255)) + u24(0)),  # certificate_request_context<0..255>
    (Certificate13, u8(0) + vec24(vec24(b"\x30") + u16(0))),  # cert_data at 1 byte
    (CertificateRequest13, u8(0) + vec16(ext(49, b""))),  # extensions at 4, past 2
    (NewSessionTicket13, u32(0) + u32(0) + u8(0) + vec16(b"t") + u16(0)),
    (NewSessionTicket13, u32(0) + u32(0) + vec8(bytes(255)) + vec16(bytes(0xFFFF)) + u16(0)),
    (KeyUpdate, b"\x01"),
]


@pytest.mark.parametrize(("cls", "body"), MESSAGES_AT_THE_BOUNDS)
def test_message_at_its_bounds_decodes(cls: type[HandshakeMessage], body: bytes) -> None:
    writer = Writer()
    decode_whole(cls.decode, body).encode(writer)
    assert writer.getvalue() == body


# -- real ClientHellos ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_hello_tls13_extensions_encode_to_the_bytes_sent(name: str) -> None:
    """Each extension we now decode, encoded again, is the client's bytes exactly."""
    _, hello = load_hello(name)
    block = Writer()
    hello.extensions.encode(block)
    raw = Extensions.decode(Reader(block.getvalue()), {})  # every extension kept as sent
    sent = {e.extension_type: e.data for e in raw if isinstance(e, UnknownExtension)}
    for extension in hello.extensions:
        if not isinstance(extension, UnknownExtension):
            assert encoded(extension) == sent[extension.extension_type], extension


def shares(hello: ClientHello) -> list[tuple[int, int]]:
    found = hello.extension(KeyShare)
    assert found is not None
    return [(share.group, len(share.key_exchange)) for share in found.shares]


def modes(hello: ClientHello) -> tuple[int, ...]:
    found = hello.extension(PskKeyExchangeModes)
    assert found is not None
    return found.modes


def test_chromium_tls13_offer() -> None:
    _, hello = load_hello("chromium")
    offered = shares(hello)
    assert is_grease(offered[0][0]) and offered[0][1] == 1
    assert offered[1:] == [(X25519MLKEM768, 1216), (29, 32)]
    assert modes(hello) == (PskKeyExchangeMode.psk_dhe_ke,)
    versions = hello.extension(SupportedVersions)
    assert versions is not None and versions.versions[1:] == (TLS13, TLS12)
    assert hello.extension(PreSharedKey) is None
    assert hello.extension(PostHandshakeAuth) is None


@pytest.mark.parametrize(
    ("name", "key_shares", "ke_modes", "versions", "post_handshake_auth"),
    [
        ("curl-default", [(29, 32)], (1,), (TLS13, TLS12, 0x0302, 0x0301), True),
        ("openssl-default", [(29, 32)], (1,), (TLS13, TLS12, 0x0302, 0x0301), False),
        ("gnutls-default", [(23, 65), (29, 32)], (1, 0), (TLS13, TLS12, 0x0302, 0x0301), False),
        ("python-ssl", [(29, 32)], (1,), (TLS13, TLS12), False),
    ],
)
def test_tls13_offer(
    name: str,
    key_shares: list[tuple[int, int]],
    ke_modes: tuple[int, ...],
    versions: tuple[int, ...],
    post_handshake_auth: bool,
) -> None:
    _, hello = load_hello(name)
    assert shares(hello) == key_shares
    assert modes(hello) == ke_modes
    assert hello.extension(SupportedVersions) == SupportedVersions(versions)
    assert (hello.extension(PostHandshakeAuth) is not None) == post_handshake_auth
    assert hello.extension(PreSharedKey) is None  # a first connection: nothing to resume


@pytest.mark.parametrize("name", ["curl-tls12", "openssl-tls12"])
def test_tls12_only_hellos_offer_nothing_of_tls13(name: str) -> None:
    _, hello = load_hello(name)
    for cls in (KeyShare, PskKeyExchangeModes, SupportedVersions, PreSharedKey):
        assert hello.extension(cls) is None


# -- RFC 8448 -------------------------------------------------------------------------------------


def hx(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 8448 §3, "Simple 1-RTT Handshake": the handshake messages as the RFC prints them.
RFC8448_CLIENT_HELLO = hx("""
    01 00 00 c0 03 03 cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2 1a 8d 99 12 ec 18 a2
    ef 62 83 02 4d ec e7 00 00 06 13 01 13 03 13 02 01 00 00 91 00 00 00 0b 00 09 00 00 06 73 65
    72 76 65 72 ff 01 00 01 00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03
    01 04 00 23 00 00 00 33 00 26 00 24 00 1d 00 20 99 38 1d e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba
    fe b3 c0 6e 51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04
    03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d
    00 02 01 01 00 1c 00 02 40 01
""")
RFC8448_SERVER_HELLO = hx("""
    02 00 00 56 03 03 a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 93 0c 8a c5 cb 14 34 da c1
    55 77 2e d3 e2 69 28 00 13 01 00 00 2e 00 33 00 24 00 1d 00 20 c9 82 88 76 11 20 95 fe 66 76
    2b db f7 c6 72 e1 56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04
""")
RFC8448_ENCRYPTED_EXTENSIONS = hx("""
    08 00 00 24 00 22 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00
    1c 00 02 40 01 00 00 00 00
""")
RFC8448_CERTIFICATE = hx("""
    0b 00 01 b9 00 00 01 b5 00 01 b0 30 82 01 ac 30 82 01 15 a0 03 02 01 02 02 01 02 30 0d 06 09
    2a 86 48 86 f7 0d 01 01 0b 05 00 30 0e 31 0c 30 0a 06 03 55 04 03 13 03 72 73 61 30 1e 17 0d
    31 36 30 37 33 30 30 31 32 33 35 39 5a 17 0d 32 36 30 37 33 30 30 31 32 33 35 39 5a 30 0e 31
    0c 30 0a 06 03 55 04 03 13 03 72 73 61 30 81 9f 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00
    03 81 8d 00 30 81 89 02 81 81 00 b4 bb 49 8f 82 79 30 3d 98 08 36 39 9b 36 c6 98 8c 0c 68 de
    55 e1 bd b8 26 d3 90 1a 24 61 ea fd 2d e4 9a 91 d0 15 ab bc 9a 95 13 7a ce 6c 1a f1 9e aa 6a
    f9 8c 7c ed 43 12 09 98 e1 87 a8 0e e0 cc b0 52 4b 1b 01 8c 3e 0b 63 26 4d 44 9a 6d 38 e2 2a
    5f da 43 08 46 74 80 30 53 0e f0 46 1c 8c a9 d9 ef bf ae 8e a6 d1 d0 3e 2b d1 93 ef f0 ab 9a
    80 02 c4 74 28 a6 d3 5a 8d 88 d7 9f 7f 1e 3f 02 03 01 00 01 a3 1a 30 18 30 09 06 03 55 1d 13
    04 02 30 00 30 0b 06 03 55 1d 0f 04 04 03 02 05 a0 30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05
    00 03 81 81 00 85 aa d2 a0 e5 b9 27 6b 90 8c 65 f7 3a 72 67 17 06 18 a5 4c 5f 8a 7b 33 7d 2d
    f7 a5 94 36 54 17 f2 ea e8 f8 a5 8c 8f 81 72 f9 31 9c f3 6b 7f d6 c5 5b 80 f2 1a 03 01 51 56
    72 60 96 fd 33 5e 5e 67 f2 db f1 02 70 2e 60 8c ca e6 be c1 fc 63 a4 2a 99 be 5c 3e b7 10 7c
    3c 54 e9 b9 eb 2b d5 20 3b 1c 3b 84 e0 a8 b2 f7 59 40 9b a3 ea c9 d9 1d 40 2d cc 0c c8 f8 96
    12 29 ac 91 87 b4 2b 4d e1 00 00
""")
RFC8448_CERTIFICATE_VERIFY = hx("""
    0f 00 00 84 08 04 00 80 5a 74 7c 5d 88 fa 9b d2 e5 5a b0 85 a6 10 15 b7 21 1f 82 4c d4 84 14
    5a b3 ff 52 f1 fd a8 47 7b 0b 7a bc 90 db 78 e2 d3 3a 5c 14 1a 07 86 53 fa 6b ef 78 0c 5e a2
    48 ee aa a7 85 c4 f3 94 ca b6 d3 0b be 8d 48 59 ee 51 1f 60 29 57 b1 54 11 ac 02 76 71 45 9e
    46 44 5c 9e a5 8c 18 1e 81 8e 95 b8 c3 fb 0b f3 27 84 09 d3 be 15 2a 3d a5 04 3e 06 3d da 65
    cd f5 ae a2 0d 53 df ac d4 2f 74 f3
""")
RFC8448_SERVER_FINISHED = hx("""
    14 00 00 20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95 72 cb 7f ff ee 54
    54 b7 8f 07 18
""")
RFC8448_NEW_SESSION_TICKET = hx("""
    04 00 00 c9 00 00 00 1e fa d6 aa c5 02 00 00 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00 00
    00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be
    78 5a bc 55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61 be 7f d6
    1d 28 27 db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2
    ae a7 05 29 51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14 70 f9 fb f2 97
    b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33
    43 69 40 93 93 4a e4 d3 57 00 08 00 2a 00 04 00 00 04 00
""")
# RFC 8448 §4, "Resumed 0-RTT Handshake": the ClientHello, binder included.
RFC8448_RESUMED_CLIENT_HELLO = hx("""
    01 00 01 fc 03 03 1b c3 ce b6 bb e3 9c ff 93 83 55 b5 a5 0a db 6d b2 1b 7a 6a f6 49 d7 b4 bc
    41 9d 78 76 48 7d 95 00 00 06 13 01 13 03 13 02 01 00 01 cd 00 00 00 0b 00 09 00 00 06 73 65
    72 76 65 72 ff 01 00 01 00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03
    01 04 00 33 00 26 00 24 00 1d 00 20 e4 ff b6 8a c0 5f 8d 96 c9 9d a2 66 98 34 6c 6b e1 64 82
    ba dd da fe 05 1a 66 b4 f1 8d 66 8f 0b 00 2a 00 00 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04
    03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d
    00 02 01 01 00 1c 00 02 40 01 00 15 00 57 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    00 00 00 00 00 00 00 00 00 29 00 dd 00 b8 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00 00 00
    00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be 78
    5a bc 55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61 be 7f d6 1d
    28 27 db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2 ae
    a7 05 29 51 3e 3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14 70 f9 fb f2 97 b5
    ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33 43
    69 40 93 93 4a e4 d3 57 fa d6 aa cb 00 21 20 3a dd 4f b2 d8 fd f8 22 a0 ca 3c f7 67 8e f5 e8
    8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e 5f 9d
""")
# Values RFC 8448 prints alongside: the transcript hash of ClientHello and ServerHello (§3,
# "derive secret for handshake"), the server handshake traffic secret (§3), and the hash of the
# truncated resumed ClientHello that the binder signs (§4, "binder hash").
RFC8448_HASH_CH_SH = hx("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
RFC8448_SERVER_HS_TRAFFIC = hx("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
RFC8448_BINDER_HASH = hx("63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14")


def hkdf_expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """RFC 8446 §7.1 with an empty context, for the check below only."""
    info = u16(length) + vec8(b"tls13 " + label) + vec8(b"")
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def test_the_rfc8448_bytes_here_are_the_rfcs() -> None:
    """The transcriptions are right: they hash to the values the RFC prints for them."""
    transcript = hashlib.sha256(RFC8448_CLIENT_HELLO + RFC8448_SERVER_HELLO).digest()
    assert transcript == RFC8448_HASH_CH_SH
    # The server Finished is an HMAC over every message up to CertificateVerify, so it
    # vouches for EncryptedExtensions, Certificate and CertificateVerify byte by byte.
    finished_key = hkdf_expand_label(RFC8448_SERVER_HS_TRAFFIC, b"finished", 32)
    messages = (
        RFC8448_CLIENT_HELLO,
        RFC8448_SERVER_HELLO,
        RFC8448_ENCRYPTED_EXTENSIONS,
        RFC8448_CERTIFICATE,
        RFC8448_CERTIFICATE_VERIFY,
    )
    expected = hmac.new(finished_key, hashlib.sha256(b"".join(messages)).digest(), "sha256")
    assert RFC8448_SERVER_FINISHED[4:] == expected.digest()


def test_rfc8448_client_hello() -> None:
    hello = decode_framed(ClientHello, RFC8448_CLIENT_HELLO)
    key_share = hello.extension(KeyShare)
    assert key_share is not None
    start = RFC8448_CLIENT_HELLO.index(hx("0033 0026 0024 001d 0020")) + 10
    assert key_share.share_for(29) == RFC8448_CLIENT_HELLO[start : start + 32]
    assert [share.group for share in key_share.shares] == [29]
    assert hello.extension(PskKeyExchangeModes) == PskKeyExchangeModes((1,))
    assert hello.extension(SupportedVersions) == SupportedVersions((TLS13,))
    assert encode_handshake(hello) == RFC8448_CLIENT_HELLO


def test_rfc8448_server_hello() -> None:
    random = RFC8448_SERVER_HELLO[6:38]
    public = RFC8448_SERVER_HELLO[-38:-6]
    built = ServerHello(
        TLS12,
        random,
        b"",
        0x1301,
        0,
        (KeyShareServer(KeyShareEntry(29, public)), SelectedVersion(TLS13)),
    )
    assert encode_handshake(built) == RFC8448_SERVER_HELLO
    decoded = decode_framed(ServerHello, RFC8448_SERVER_HELLO)
    assert decoded == built
    assert decoded.extension(SelectedVersion) == SelectedVersion(TLS13)
    assert decoded.extension(KeyShareServer) == KeyShareServer(KeyShareEntry(29, public))


def test_rfc8448_encrypted_extensions() -> None:
    # supported_groups, record_size_limit (RFC 8449: 2^14 + 1) and an empty server_name.
    built = EncryptedExtensions(
        (
            SupportedGroups((29, 23, 24, 25, 0x100, 0x101, 0x102, 0x103, 0x104)),
            UnknownExtension(28, u16(0x4001)),
            ServerName(),
        )
    )
    assert encode_handshake(built) == RFC8448_ENCRYPTED_EXTENSIONS
    decoded = decode_framed(EncryptedExtensions, RFC8448_ENCRYPTED_EXTENSIONS)
    assert decoded.extensions.get(SupportedGroups) == built.extensions.get(SupportedGroups)
    assert decoded.extensions.types() == (10, 28, 0)
    assert encode_handshake(decoded) == RFC8448_ENCRYPTED_EXTENSIONS


def test_rfc8448_certificate() -> None:
    der = RFC8448_CERTIFICATE[11:-2]
    assert der[:2] == b"\x30\x82" and len(der) == 0x1B0
    built = Certificate13.of((der,))
    assert encode_handshake(built) == RFC8448_CERTIFICATE
    decoded = decode_framed(Certificate13, RFC8448_CERTIFICATE)
    assert decoded == built
    assert decoded.certificate_list == (der,)


def test_rfc8448_certificate_verify_and_finished() -> None:
    signature = RFC8448_CERTIFICATE_VERIFY[8:]
    verify = CertificateVerify(0x0804, signature)  # rsa_pss_rsae_sha256, 128 bytes
    assert encode_handshake(verify) == RFC8448_CERTIFICATE_VERIFY
    assert decode_framed(CertificateVerify, RFC8448_CERTIFICATE_VERIFY) == verify
    finished = Finished13(RFC8448_SERVER_FINISHED[4:])
    assert encode_handshake(finished) == RFC8448_SERVER_FINISHED
    assert decode_framed(Finished13, RFC8448_SERVER_FINISHED) == finished


def test_rfc8448_new_session_ticket() -> None:
    ticket = RFC8448_NEW_SESSION_TICKET[17:-10]
    assert len(ticket) == 0xB2
    # early_data in its NewSessionTicket form, max_early_data_size 1024: kept raw.
    built = NewSessionTicket13(
        30, 0xFAD6AAC5, b"\x00\x00", ticket, (UnknownExtension(42, u32(0x400)),)
    )
    assert encode_handshake(built) == RFC8448_NEW_SESSION_TICKET
    assert decode_framed(NewSessionTicket13, RFC8448_NEW_SESSION_TICKET) == built


def test_rfc8448_resumed_client_hello_binders() -> None:
    hello = decode_framed(ClientHello, RFC8448_RESUMED_CLIENT_HELLO)
    assert hello.extensions.types()[-1] == ExtensionType.pre_shared_key  # last, as §4.2.11 says
    offered = hello.extension(PreSharedKey)
    assert offered is not None
    ticket = RFC8448_NEW_SESSION_TICKET[17:-10]
    # The ticket from §3's NewSessionTicket, its age obfuscated with that ticket's age_add.
    assert offered.identities == (PskIdentity(ticket, 0xFAD6AACB),)
    assert offered.binders == (RFC8448_RESUMED_CLIENT_HELLO[-32:],)
    assert offered.binders_length == 2 + 1 + 32
    truncated = RFC8448_RESUMED_CLIENT_HELLO[: -offered.binders_length]
    assert hashlib.sha256(truncated).digest() == RFC8448_BINDER_HASH
    assert hello.extension(EarlyData) == EarlyData()
    assert encode_handshake(hello) == RFC8448_RESUMED_CLIENT_HELLO
