"""JA3 and JA4 (trio_tls.fingerprint): hand-worked vectors, then independent implementations.

The hand-worked hello is the one FoxIO's JA4 specification (technical_details/JA4.md) works
through, with its published JA4 and JA4_r, plus GREASE in every list to show it is ignored. The
edge cases come from the same text (ALPN bytes that are not letters or digits, empty lists,
counts over 99). Then every captured ClientHello is checked against ja4plus (JA4, JA4_r) and
against Salesforce's own JA3 code (pyja3, on dpkt): both are test-only dependencies.
"""

from __future__ import annotations

import hashlib
import pathlib

import dpkt
import pytest
from ja3 import ja3 as salesforce_ja3
from ja4plus.fingerprinters.ja4 import generate_ja4, get_raw_fingerprint
from ja4plus.utils.tls_utils import parse_tls_handshake

from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.extensions import (
    AnyExtension,
    ApplicationLayerProtocolNegotiation,
    ECPointFormats,
    ExtendedMasterSecret,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
    UnknownExtension,
)
from trio_tls.engine.wire.messages import ClientHello, encode_handshake
from trio_tls.observe import fingerprint
from trio_tls.observe.clienthello import inspect_client_hello

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "clienthellos"
GREASE_SUITE, GREASE_EXTENSION, GREASE_GROUP = 0x0A0A, 0x1A1A, 0x2A2A

# JA4.md's example: 15 suites and 16 extensions in the order the client sent them.
SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
          0xC014, 0x009C, 0x009D, 0x002F, 0x0035)  # fmt: skip
SCHEMES = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


def spec_extensions() -> tuple[AnyExtension, ...]:
    """001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015, with a
    GREASE extension first and GREASE inside the lists, as Chromium sends them."""
    return (
        UnknownExtension(GREASE_EXTENSION, b""),
        UnknownExtension(0x001B, b"\x02\x00\x02"),  # compress_certificate: brotli
        ServerName("example.com"),
        UnknownExtension(0x0033, b"\x00\x24\x00\x1d\x00\x20" + bytes(32)),  # key_share x25519
        ApplicationLayerProtocolNegotiation((b"h2", b"http/1.1")),
        UnknownExtension(0x4469, b"\x00\x03\x02h2"),  # ALPS
        ExtendedMasterSecret(),
        UnknownExtension(0x002D, b"\x01\x01"),  # psk_key_exchange_modes: psk_dhe_ke
        SignatureAlgorithms(SCHEMES),
        UnknownExtension(0x0005, b"\x01\x00\x00\x00\x00"),  # status_request: OCSP
        SessionTicket(),
        UnknownExtension(0x0012, b""),  # signed_certificate_timestamp
        SupportedVersions((GREASE_GROUP, 0x0304, 0x0303)),
        RenegotiationInfo(),
        ECPointFormats((0,)),
        SupportedGroups((GREASE_GROUP, 29, 23, 24)),
        UnknownExtension(0x0015, bytes(10)),  # padding
    )


def hello_bytes(
    suites: tuple[int, ...] = (GREASE_SUITE, *SUITES),
    extensions: tuple[AnyExtension, ...] | None = None,
    client_version: int = 0x0303,
) -> bytes:
    """A ClientHello handshake message, header included."""
    hello = ClientHello(
        client_version,
        bytes(range(32)),
        b"",
        suites,
        b"\x00",
        spec_extensions() if extensions is None else extensions,
    )
    return encode_handshake(hello)


def decoded(message: bytes) -> ClientHello:
    reader = Reader(message)
    reader.raw(4)
    return ClientHello.decode(reader)


def record(message: bytes) -> bytes:
    return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


# -- hand-worked ---------------------------------------------------------------------------------


def test_ja4_of_the_specification_example() -> None:
    hello = decoded(hello_bytes())
    assert fingerprint.ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert fingerprint.ja4_r(hello) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
        "_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
        "_0403,0804,0401,0503,0805,0501,0806,0601"
    )


def test_ja4_parts_worked_by_hand() -> None:
    hello = decoded(hello_bytes())
    suites = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
    assert hashlib.sha256(suites.encode()).hexdigest()[:12] == "8daaf6152771"
    extensions = (
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01"
        "_0403,0804,0401,0503,0805,0501,0806,0601"
    )
    assert fingerprint.ja4(hello).endswith(hashlib.sha256(extensions.encode()).hexdigest()[:12])


def test_ja3_of_the_specification_example() -> None:
    hello = decoded(hello_bytes())
    text = (
        "771,"
        "4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
        "27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,"
        "29-23-24,"
        "0"
    )
    assert fingerprint.ja3_string(hello) == text
    assert fingerprint.ja3_md5(hello) == hashlib.md5(text.encode()).hexdigest()


def test_tls12_hello_without_sni_alpn_or_supported_versions() -> None:
    extensions: tuple[AnyExtension, ...] = (
        SupportedGroups((29,)),
        ECPointFormats((0,)),
        SignatureAlgorithms((0x0401,)),
    )
    hello = decoded(hello_bytes((0xC02F, 0x00FF), extensions))
    assert fingerprint.ja4_r(hello) == "t12i020300_00ff,c02f_000a,000b,000d_0401"
    part_c = hashlib.sha256(b"000a,000b,000d_0401").hexdigest()[:12]
    part_b = hashlib.sha256(b"00ff,c02f").hexdigest()[:12]
    assert fingerprint.ja4(hello) == f"t12i020300_{part_b}_{part_c}"
    assert fingerprint.ja3_string(hello) == "771,49199-255,10-11-13,29,0"


def test_no_extensions_hash_to_zeros() -> None:
    hello = decoded(hello_bytes((0x002F,), ()))
    assert fingerprint.ja4(hello).startswith("t12i0100")
    assert fingerprint.ja4(hello).endswith("_000000000000")
    assert fingerprint.ja3_string(hello) == "771,47,,,"


def test_sni_and_alpn_alone_leave_no_extension_to_hash() -> None:
    extensions = (ServerName("example.com"), ApplicationLayerProtocolNegotiation((b"h2",)))
    hello = decoded(hello_bytes((0x1301,), extensions))
    assert fingerprint.ja4(hello) == (
        f"t12d0102h2_{hashlib.sha256(b'1301').hexdigest()[:12]}_000000000000"
    )


def test_the_version_is_the_highest_non_grease_supported_version() -> None:
    versions = SupportedVersions((0x0302, 0xFAFA, 0x0303))
    hello = decoded(hello_bytes((0x002F,), (versions,), client_version=0x0301))
    assert fingerprint.ja4(hello).startswith("t12i0101")
    # Without supported_versions, the legacy client_version; one JA4 does not know is "00".
    assert fingerprint.ja4(decoded(hello_bytes((0x002F,), (), 0x0301))).startswith("t10")
    assert fingerprint.ja4(decoded(hello_bytes((0x002F,), (), 0x0305))).startswith("t00")


def test_counts_stop_at_99() -> None:
    hello = decoded(hello_bytes(tuple(range(0x0100, 0x0100 + 150)), ()))
    assert fingerprint.ja4(hello).startswith("t12i9900")


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"h", "hh"),  # one character is both the first and the last
        # JA4.md's examples: an end that is not an ASCII letter or digit means the first and
        # last hex digits of the whole value.
        (b"\xab", "ab"),
        (b"\xab\xcd", "ad"),
        (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"),
        (b"\x30\xab\xcd\x31", "01"),
    ],
)
def test_ja4_alpn_characters(protocol: bytes, expected: str) -> None:
    alpn = ApplicationLayerProtocolNegotiation((protocol, b"http/1.1"))
    hello = decoded(hello_bytes((0x002F,), (alpn,)))
    assert fingerprint.ja4(hello)[:10] == f"t12i0101{expected}"


# -- against independent implementations --------------------------------------------------------


def ja3_by_salesforce(record_bytes: bytes) -> tuple[str, str]:
    """JA3 as salesforce/ja3's ja3.py computes it (its process_pcap, minus the pcap)."""
    handshake = dpkt.ssl.TLSHandshake(record_bytes[5:])
    hello = handshake.data
    assert isinstance(hello, dpkt.ssl.TLSClientHello)
    _, used = salesforce_ja3.parse_variable_array(hello.data, 1)  # session_id
    suites, _ = salesforce_ja3.parse_variable_array(hello.data[used:], 2)
    fields = [str(hello.version), salesforce_ja3.convert_to_ja3_segment(suites, 2)]
    fields += salesforce_ja3.process_extensions(hello)
    text = ",".join(fields)
    return text, hashlib.md5(text.encode()).hexdigest()


CAPTURED = sorted(path.stem for path in FIXTURES.glob("*.bin"))


def hand_built() -> dict[str, bytes]:
    alpn_h = ApplicationLayerProtocolNegotiation((b"h",))
    return {
        "specification example": record(hello_bytes()),
        "no extensions": record(hello_bytes((0x002F,), ())),
        "one-letter ALPN": record(hello_bytes((0x002F, 0x1301), (alpn_h,))),
    }


@pytest.mark.parametrize("name", CAPTURED + list(hand_built()))
def test_matches_ja4plus_and_salesforce_ja3(name: str) -> None:
    data = (FIXTURES / f"{name}.bin").read_bytes() if name in CAPTURED else hand_built()[name]
    report = inspect_client_hello(data)
    info = parse_tls_handshake(data)
    assert report.fingerprints.ja4 == generate_ja4(info)
    assert report.fingerprints.ja4_r == get_raw_fingerprint(info)
    assert (report.fingerprints.ja3, report.fingerprints.ja3_md5) == ja3_by_salesforce(data)


def test_captured_chromium_fingerprints() -> None:
    """Pinned, so that a change in either implementation shows up here by name."""
    report = inspect_client_hello((FIXTURES / "chromium.bin").read_bytes())
    assert report.fingerprints.ja4 == "t13d1517h2_8daaf6152771_cb7bf5808d99"
    assert report.fingerprints.ja3_md5 == "a4f05eb77e9218c3fe0c3c33f62d48d4"
    assert report.fingerprints.ja3.startswith(
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
    )
