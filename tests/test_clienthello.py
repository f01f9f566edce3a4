"""trio_tls.clienthello: any ClientHello's bytes, decoded and named for people, as a library."""

from __future__ import annotations

import json
import pathlib

import pytest

from trio_tls import inspect_client_hello
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.errors import DecodeError, UnexpectedMessage
from trio_tls.engine.wire.extensions import SupportedGroups, UnknownExtension
from trio_tls.engine.wire.messages import ClientHello, encode_handshake
from trio_tls.observe.iana import is_grease

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "clienthellos"
CAPTURED = sorted(path.stem for path in FIXTURES.glob("*.bin"))


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


def records(message: bytes, *sizes: int) -> bytes:
    """The message split into handshake records of the given sizes (the rest in the last)."""
    out, start = bytearray(), 0
    for size in (*sizes, len(message)):
        fragment = message[start : start + size]
        if fragment:
            out += b"\x16\x03\x01" + len(fragment).to_bytes(2, "big") + fragment
        start += size
    return bytes(out)


def test_chromium_hello_decoded() -> None:
    report = inspect_client_hello(load("chromium"))
    assert report.length == 2013 - 5
    assert report.client_version.name == "TLS 1.2"
    assert report.server_name == "localhost"
    assert report.alpn == ("h2", "http/1.1")
    assert [code.name for code in report.compression_methods] == ["null"]
    suites = [code.name for code in report.cipher_suites]
    assert suites[:5] == [
        "GREASE",
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ]
    assert "unknown" not in suites
    assert [code.name for code in report.supported_groups][1:] == [
        "X25519MLKEM768",
        "x25519",
        "secp256r1",
        "secp384r1",
    ]
    shares = [(share.group.name, share.key_length) for share in report.key_shares]
    assert shares == [("GREASE", 1), ("X25519MLKEM768", 1216), ("x25519", 32)]
    assert [code.name for code in report.signature_algorithms][1:4] == [
        "mldsa44",
        "mldsa65",
        "mldsa87",
    ]
    assert [code.name for code in report.psk_key_exchange_modes] == ["psk_dhe_ke"]


def test_chromium_extensions_in_the_order_sent() -> None:
    data = load("chromium")
    report = inspect_client_hello(data)
    reader_order = [e.extension_type for e in ClientHello.decode(Reader(data[9:])).extensions]
    assert [entry.type.value for entry in report.extensions] == reader_order
    by_name = {entry.type.name: entry for entry in report.extensions}
    assert by_name["encrypted_client_hello"].summary.startswith("outer: config ")
    assert by_name["key_share"].summary == (
        "GREASE (1-byte key), X25519MLKEM768 (1216-byte key), x25519 (32-byte key)"
    )
    assert by_name["compress_certificate"].summary == "brotli"
    assert by_name["application_settings"].summary == "h2"
    assert by_name["trust_anchors"].spec == "draft-ietf-tls-trust-anchor-ids"
    # What the server reads, and what it ignores.
    assert by_name["supported_groups"].read_by_server
    assert by_name["key_share"].read_by_server
    assert not by_name["compress_certificate"].read_by_server
    grease = [entry for entry in report.extensions if entry.type.grease]
    assert len(grease) == 2
    assert all(entry.spec == "RFC 8701" and entry.type.name == "GREASE" for entry in grease)


def test_chromium_grease_is_listed_field_by_field() -> None:
    report = inspect_client_hello(load("chromium"))
    fields = [grease.field for grease in report.grease]
    assert fields == [
        "cipher_suites",
        "extensions",
        "extensions",
        "supported_versions",
        "supported_groups",
        "key_share",
        "signature_algorithms",
    ]
    assert all(is_grease(grease.value.value) for grease in report.grease)
    assert report.grease[0].value.hex == "0x1a1a"


@pytest.mark.parametrize("name", CAPTURED)
def test_every_captured_hello_is_named_and_json_ready(name: str) -> None:
    report = inspect_client_hello(load(name))
    assert all(code.name != "unknown" for code in report.cipher_suites)
    assert all(entry.type.name != "unknown" for entry in report.extensions)
    assert all(code.name != "unknown" for code in report.signature_algorithms)
    assert all(code.name != "unknown" for code in report.supported_groups)
    assert all("malformed" not in entry.summary for entry in report.extensions)
    document = json.loads(json.dumps(report.to_json()))
    assert document["fingerprints"]["ja4"] == report.fingerprints.ja4
    assert document["cipher_suites"][0]["hex"] == report.cipher_suites[0].hex
    assert document["random"] == report.random.hex()


def test_record_message_and_fragmented_records_give_one_report() -> None:
    data = load("chromium")
    message = data[5:]
    whole = inspect_client_hello(data)
    assert inspect_client_hello(message) == whole
    assert inspect_client_hello(records(message, 1, 3, 500)) == whole


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", DecodeError),
        (b"GET / HTTP/1.1\r\n\r\n", DecodeError),
        (b"\x17\x03\x03\x00\x01\x00", DecodeError),  # application data
        (b"\x02\x00\x00\x00", DecodeError),  # a bare ServerHello
        (records(b"\x02\x00\x00\x00"), UnexpectedMessage),  # a ServerHello in a record
        (load("curl-tls12") + b"\x17\x03\x03\x00\x01\x00", UnexpectedMessage),
    ],
)
def test_what_is_not_a_client_hello_is_refused(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        inspect_client_hello(data)


def test_incomplete_or_trailing_bytes_are_refused() -> None:
    data = load("curl-tls12")
    with pytest.raises(DecodeError):
        inspect_client_hello(data[:-1])
    with pytest.raises(DecodeError):
        inspect_client_hello(data + b"\x16\x03\x01\x00\x01\x01")
    with pytest.raises(DecodeError):
        inspect_client_hello(data[5:] + b"\x00")


def test_a_malformed_extension_the_server_ignores_is_shown_not_fatal() -> None:
    hello = ClientHello(
        0x0303,
        bytes(32),
        b"",
        (0xC02F,),
        b"\x00",
        (SupportedGroups((29,)), UnknownExtension(27, b"\x05\x00"), UnknownExtension(28, b"")),
    )
    report = inspect_client_hello(encode_handshake(hello))
    assert [entry.summary for entry in report.extensions] == [
        "x25519",
        "malformed (2 bytes)",
        "malformed (0 bytes)",
    ]


def test_a_malformed_extension_the_server_reads_fails_as_the_server_would() -> None:
    hello = ClientHello(
        0x0303, bytes(32), b"", (0xC02F,), b"\x00", (UnknownExtension(51, b"\x00\x05\x00"),)
    )
    with pytest.raises(DecodeError):
        inspect_client_hello(encode_handshake(hello))
