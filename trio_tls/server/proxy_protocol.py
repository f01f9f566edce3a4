"""The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-IO: parse and encode.

A load balancer in front of the server (HAProxy's `send-proxy-v2`, a cloud network load
balancer, a Kubernetes Service) prefixes each TCP connection with one header naming the client's
real address; the proxy handler sends the same header to its upstream. Like the TLS engine this
module never touches a socket: `parse_header(buffer, versions)` says "need more bytes" (None),
returns the header and how many bytes it took, or raises ProxyProtocolError. The caller reads
under the handshake deadline and hands the bytes after the header to TLS.

Strict, as §2 asks of a receiver ("the receiver MUST ... drop the connection" on anything else):
- exact signatures: `PROXY ` for v1 (§2.1), the 12-byte binary one for v2 (§2.2); a buffer that
  stops matching is refused at its first wrong byte, not after the timeout;
- v1: one line of at most 107 bytes ending in CRLF, single spaces, TCP4 with dotted-quad IPv4 or
  TCP6 with IPv6 addresses (the `ipaddress` module's strict forms, without a `%` scope ID,
  which a remote address never has and which would carry any text), decimal ports 0-65535
  without leading zeros; `UNKNOWN` keeps the connection's own addresses;
- v2: version 2, command LOCAL or PROXY, a length that holds the address block of its family,
  TLVs that fill the rest exactly. UNSPEC and UNIX families keep the connection's own addresses
  (§2.2: "the receiver ... must use the real connection endpoints"); UDP is refused (we are TCP).
  The CRC32C TLV is not verified: the standard library has no CRC32C.

LOCAL (§2.2) is the proxy speaking for itself, as health checks do: no addresses.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Collection, Sequence
from typing import Final, Literal

import attrs

V1_SIGNATURE: Final = b"PROXY "
V1_MAX_LENGTH: Final = 107  # §2.1: the longest TCP6 line, CRLF included
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED: Final = struct.Struct("!12sBBH")  # signature, version and command, family, length
V2_VERSION: Final = 0x20
V2_LOCAL: Final = 0x00
V2_PROXY: Final = 0x01
# §2.2: address family (high nibble) and transport (low nibble).
V2_UNSPEC: Final = 0x00
V2_TCP4: Final = 0x11
V2_TCP6: Final = 0x21
V2_UNIX_STREAM: Final = 0x31
V2_ADDRESSES: Final = {
    V2_TCP4: struct.Struct("!4s4sHH"),
    V2_TCP6: struct.Struct("!16s16sHH"),
    V2_UNIX_STREAM: struct.Struct("!108s108s"),
}
V2_TLV: Final = struct.Struct("!BH")
# §2.2.1-2.2.6 TLV types, and the PP2_TYPE_SSL sub-TLVs.
PP2_TYPE_ALPN: Final = 0x01
PP2_TYPE_AUTHORITY: Final = 0x02
PP2_TYPE_SSL: Final = 0x20
PP2_SUBTYPE_SSL_VERSION: Final = 0x21
PP2_SUBTYPE_SSL_CN: Final = 0x22
PP2_SUBTYPE_SSL_CIPHER: Final = 0x23
PP2_CLIENT_SSL: Final = 0x01
PP2_CLIENT_CERT_CONN: Final = 0x02
PP2_SSL: Final = struct.Struct("!BI")  # client flags, verify (0: a certificate was verified)
VERIFIED: Final = 0
NOT_VERIFIED: Final = 1

Version = Literal[1, 2]
Address = tuple[str, int]


class ProxyProtocolError(ValueError):
    """Not a valid PROXY header of an accepted version; str() says what is wrong."""


@attrs.frozen
class ProxyHeader:
    """What a header said. `source` and `destination` are None for LOCAL, UNKNOWN, UNSPEC and
    UNIX: then the connection's own addresses stand."""

    version: Version
    local: bool
    source: Address | None
    destination: Address | None
    tlvs: tuple[tuple[int, bytes], ...] = ()


def parse_header(buffer: bytes, versions: Collection[Version]) -> tuple[ProxyHeader, int] | None:
    """The header at the start of `buffer` and its length, or None until more bytes arrive."""
    if _version(buffer, versions) == 1:
        return _parse_v1(buffer) if len(buffer) >= len(V1_SIGNATURE) else None
    return _parse_v2(buffer) if len(buffer) >= len(V2_SIGNATURE) else None


def header_size(buffer: bytes | bytearray, versions: Collection[Version]) -> int | None:
    """How many bytes the header at the start of `buffer` takes, or None until its first bytes
    say (a v1 line's CRLF, a v2 header's fixed 16 bytes); ProxyProtocolError as soon as they
    cannot start a header. It looks at those first bytes only, so a reader can call it on
    every read until it knows the size, then wait for that many bytes and parse once: linear,
    however the header is cut (parse_header on each read would re-read a 64 KiB v2 header
    65,536 times if it came byte by byte)."""
    if _version(buffer, versions) == 1:
        end = _v1_end(buffer)
        return None if end is None else end + 2
    fixed = _v2_fixed(buffer)
    return None if fixed is None else fixed[3]


def _version(buffer: bytes | bytearray, versions: Collection[Version]) -> Version:
    """Which header `buffer` starts (or may yet start) with, if it is one we accept."""
    if 1 in versions and _could_be(buffer, V1_SIGNATURE):
        return 1
    if 2 in versions and _could_be(buffer, V2_SIGNATURE):
        return 2
    accepted = " or ".join(f"v{version}" for version in sorted(versions))
    raise ProxyProtocolError(f"no PROXY protocol {accepted} header")


def _could_be(buffer: bytes | bytearray, signature: bytes) -> bool:
    size = min(len(buffer), len(signature))
    return buffer[:size] == signature[:size]


def _v1_end(buffer: bytes | bytearray) -> int | None:
    """Where the v1 line's CRLF is, None until it comes."""
    end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end >= 0:
        return end
    if len(buffer) >= V1_MAX_LENGTH:
        raise ProxyProtocolError(f"PROXY v1 line longer than {V1_MAX_LENGTH} bytes")
    return None


def _parse_v1(buffer: bytes) -> tuple[ProxyHeader, int] | None:
    end = _v1_end(buffer)
    if end is None:
        return None
    try:
        line = buffer[:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProxyProtocolError("PROXY v1 line is not ASCII") from None
    fields = line.split(" ")
    if fields[1:2] == ["UNKNOWN"]:  # §2.1: the rest of the line is to be ignored
        return ProxyHeader(1, False, None, None), end + 2
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"malformed PROXY v1 line {line!r}")
    if any("%" in text for text in fields[2:4]):
        # ipaddress takes anything after % as an IPv6 scope ID, control characters included,
        # and the address becomes the connection's peer in every log line.
        raise ProxyProtocolError(f"PROXY v1 address with a scope ID: {line!r}")
    kind = ipaddress.IPv4Address if fields[1] == "TCP4" else ipaddress.IPv6Address
    try:
        source, destination = (str(kind(text)) for text in fields[2:4])
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 addresses are not {fields[1]}: {line!r}") from None
    ports = [_v1_port(text) for text in fields[4:6]]
    return ProxyHeader(1, False, (source, ports[0]), (destination, ports[1])), end + 2


def _v1_port(text: str) -> int:
    if not (text.isdigit() and text.isascii() and len(text) <= 5) or text != str(int(text)):
        raise ProxyProtocolError(f"PROXY v1 port {text!r} is not a decimal number")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"PROXY v1 port {port} is out of range")
    return port


def _v2_fixed(buffer: bytes | bytearray) -> tuple[int, int, struct.Struct | None, int] | None:
    """The fixed part of a v2 header, checked: command, family, its address block's layout,
    and the header's whole size; None while fewer than 16 bytes are there."""
    if len(buffer) < V2_FIXED.size:
        return None
    _, version_command, family, length = V2_FIXED.unpack_from(buffer)
    if version_command & 0xF0 != V2_VERSION:
        raise ProxyProtocolError(f"PROXY v2 header of version {version_command >> 4}")
    command = version_command & 0x0F
    if command not in (V2_LOCAL, V2_PROXY):
        raise ProxyProtocolError(f"PROXY v2 header with unknown command {command}")
    addresses = V2_ADDRESSES.get(family)
    if addresses is None and family != V2_UNSPEC:
        raise ProxyProtocolError(f"PROXY v2 header for family/transport {family:#04x}")
    address_size = addresses.size if addresses is not None else 0
    if length < address_size:
        raise ProxyProtocolError(f"PROXY v2 length {length} is too short for its addresses")
    return command, family, addresses, V2_FIXED.size + length


def _parse_v2(buffer: bytes) -> tuple[ProxyHeader, int] | None:
    fixed = _v2_fixed(buffer)
    if fixed is None or len(buffer) < fixed[3]:
        return None
    command, family, addresses, end = fixed
    address_size = addresses.size if addresses is not None else 0
    payload = memoryview(buffer)[V2_FIXED.size : end]
    tlvs = _parse_tlvs(payload[address_size:])
    if command == V2_LOCAL or family in (V2_UNSPEC, V2_UNIX_STREAM):
        return ProxyHeader(2, command == V2_LOCAL, None, None, tlvs), end
    assert addresses is not None
    src, dst, sport, dport = addresses.unpack_from(payload)
    kind = ipaddress.IPv4Address if family == V2_TCP4 else ipaddress.IPv6Address
    return ProxyHeader(2, False, (str(kind(src)), sport), (str(kind(dst)), dport), tlvs), end


def _parse_tlvs(view: memoryview) -> tuple[tuple[int, bytes], ...]:
    tlvs = []
    offset = 0
    while offset < len(view):
        if len(view) - offset < V2_TLV.size:
            raise ProxyProtocolError("PROXY v2 TLV header cut short")
        kind, size = V2_TLV.unpack_from(view, offset)
        offset += V2_TLV.size
        if len(view) - offset < size:
            raise ProxyProtocolError(f"PROXY v2 TLV {kind:#04x} longer than the header")
        tlvs.append((kind, bytes(view[offset : offset + size])))
        offset += size
    return tuple(tlvs)


def encode_v1(source: Address, destination: Address) -> bytes:
    """`PROXY TCP4|TCP6 src dst sport dport\\r\\n` (§2.1); both addresses of one family."""
    family = "TCP6" if ipaddress.ip_address(source[0]).version == 6 else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def encode_v2(
    source: Address, destination: Address, tlvs: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """A v2 PROXY header (§2.2) for a TCP connection, with TLVs after the addresses."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = V2_TCP6 if src.version == 6 else V2_TCP4
    body = V2_ADDRESSES[family].pack(src.packed, dst.packed, source[1], destination[1])
    body += encode_tlvs(tlvs)
    return V2_FIXED.pack(V2_SIGNATURE, V2_VERSION | V2_PROXY, family, len(body)) + body


def encode_tlvs(tlvs: Sequence[tuple[int, bytes]]) -> bytes:
    return b"".join(V2_TLV.pack(kind, len(value)) + value for kind, value in tlvs)


def ssl_tlv(version: str, cipher: str, client_cn: str | None) -> tuple[int, bytes]:
    """PP2_TYPE_SSL (§2.2.5): the client spoke TLS, with this version and (OpenSSL-named) cipher;
    `client_cn` is the common name of the certificate it presented, which the server verified
    (None: it presented none, and `verify` is then non-zero)."""
    subtlvs = [
        (PP2_SUBTYPE_SSL_VERSION, version.encode()),
        (PP2_SUBTYPE_SSL_CIPHER, cipher.encode()),
    ]
    if client_cn is None:
        return PP2_TYPE_SSL, PP2_SSL.pack(PP2_CLIENT_SSL, NOT_VERIFIED) + encode_tlvs(subtlvs)
    subtlvs.append((PP2_SUBTYPE_SSL_CN, client_cn.encode()))
    flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN
    return PP2_TYPE_SSL, PP2_SSL.pack(flags, VERIFIED) + encode_tlvs(subtlvs)
