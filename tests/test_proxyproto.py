"""The PROXY protocol parser and encoder (proxyproto.py), byte by byte and hostile."""

from __future__ import annotations

import struct

import pytest

from trio_tls.server.proxy_protocol import (
    PP2_SUBTYPE_SSL_CN,
    PP2_TYPE_ALPN,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    encode_v1,
    encode_v2,
    parse_header,
    ssl_tlv,
)

BOTH = (1, 2)
V4 = (("192.0.2.1", 56324), ("198.51.100.2", 443))
V6 = (("2001:db8::1", 56324), ("2001:db8::2", 443))


def parse_whole_and_bytewise(data: bytes) -> tuple[ProxyHeader, int]:
    """The h11 rule: the same answer whole and fed one byte at a time (None until complete)."""
    whole = parse_header(data + b"\x16\x03\x01", BOTH)
    assert whole is not None
    header, size = whole
    assert size == len(data)
    for end in range(1, len(data)):
        assert parse_header(data[:end], BOTH) is None, end
    return header, size


@pytest.mark.parametrize("addresses", [V4, V6])
def test_v1_round_trip(addresses: tuple[tuple[str, int], tuple[str, int]]) -> None:
    header, _ = parse_whole_and_bytewise(encode_v1(*addresses))
    assert (header.version, header.local) == (1, False)
    assert (header.source, header.destination) == addresses


@pytest.mark.parametrize("addresses", [V4, V6])
def test_v2_round_trip_with_tlvs(addresses: tuple[tuple[str, int], tuple[str, int]]) -> None:
    data = encode_v2(*addresses, [(PP2_TYPE_ALPN, b"h2"), (0xE0, b"")])
    header, _ = parse_whole_and_bytewise(data)
    assert (header.version, header.local) == (2, False)
    assert (header.source, header.destination) == addresses
    assert header.tlvs == ((PP2_TYPE_ALPN, b"h2"), (0xE0, b""))


def test_v1_unknown_and_v2_local_keep_the_connection_addresses() -> None:
    unknown, _ = parse_whole_and_bytewise(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
    assert (unknown.source, unknown.destination, unknown.local) == (None, None, False)
    local, _ = parse_whole_and_bytewise(V2_SIGNATURE + b"\x20\x00\x00\x00")
    assert (local.source, local.local) == (None, True)
    # HAProxy's health checks send LOCAL with the address block all the same.
    local_v4, _ = parse_whole_and_bytewise(V2_SIGNATURE + b"\x20\x11\x00\x0c" + bytes(12))
    assert (local_v4.source, local_v4.local) == (None, True)


def v2(command: int = 0x21, family: int = 0x11, body: bytes = bytes(12)) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", command, family, len(body)) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x16\x03\x01\x02\x00", "no PROXY protocol"),  # TLS without the header
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol"),
        (b"PROXY", None),  # only a prefix so far: need more, not an error
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no PROXY protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + b"x" * 100, "longer than 107"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "malformed"),
        (b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", "not TCP4"),
        (b"PROXY TCP4 ::1 ::2 1 2\r\n", "not TCP4"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "not TCP6"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "not a decimal"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "not a decimal"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "out of range"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa3\r\n", "not ASCII"),
        # ipaddress would keep any text after % as a scope ID, and it would name the peer.
        (b"PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n", "scope ID"),
        (b"PROXY TCP6 ::1 fe80::1%\x1b[2J\nINFO 1 2\r\n", "scope ID"),
        (v2(command=0x11), "version 1"),
        (v2(command=0x22), "unknown command 2"),
        (v2(family=0x12), "family/transport 0x12"),  # UDP: we are TCP
        (v2(family=0x41), "family/transport 0x41"),
        (v2(body=bytes(11)), "too short"),
        (v2(family=0x21, body=bytes(35)), "too short"),
        (v2(body=bytes(12) + b"\x01\x00"), "TLV header cut short"),
        (v2(body=bytes(12) + b"\x01\x00\x05abc"), "longer than the header"),
    ],
)
def test_hostile_headers(data: bytes, message: str | None) -> None:
    if message is None:
        assert parse_header(data, BOTH) is None
        return
    with pytest.raises(ProxyProtocolError, match=message):
        parse_header(data, BOTH)


def test_only_the_versions_asked_for() -> None:
    with pytest.raises(ProxyProtocolError, match="no PROXY protocol v2 header"):
        parse_header(encode_v1(*V4), [2])
    with pytest.raises(ProxyProtocolError, match="no PROXY protocol v1 header"):
        parse_header(encode_v2(*V4), [1])


def test_ssl_tlv_says_whether_a_client_certificate_was_verified() -> None:
    anonymous = ssl_tlv("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", None)
    assert anonymous[1][:5] == b"\x01\x00\x00\x00\x01"  # PP2_CLIENT_SSL, verify != 0
    assert bytes([PP2_SUBTYPE_SSL_CN]) not in anonymous[1][5:7]
    known = ssl_tlv("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "alice")
    assert known[1][:5] == b"\x03\x00\x00\x00\x00"  # + PP2_CLIENT_CERT_CONN, verified
    assert known[1].endswith(bytes([PP2_SUBTYPE_SSL_CN, 0, 5]) + b"alice")
