"""The record layer (RFC 5246 §6.2): framing over one buffer, size limits, reassembly.

RecordReader takes TCP bytes in any chunking and yields whole records; the header is checked as
soon as its 5 bytes arrive, so an oversized or non-TLS record is refused before its body is
buffered (memory stays bounded by one maximal record). HandshakeAssembler rebuilds handshake
messages that span records and splits records that carry several (§6.2.1); it refuses a message
type the handshake does not expect on its first byte, and one longer than its type allows on its
header, so memory stays bounded by the largest message expected (a ClientHello, 128 KiB).
Writing fragments to 2^14-byte records, each sealed in one piece by the direction's protection.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from .enums import TLS12, ContentType
from .errors import (
    DecodeError,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
)
from .messages import ClientMessage
from .protection import MAX_PLAINTEXT, Buffer, RecordProtection

HEADER_LENGTH = 5
MAX_CIPHERTEXT = MAX_PLAINTEXT + 2048  # RFC 5246 §6.2.3
_HEADER = struct.Struct("!BHH")
_CONTENT_TYPES = frozenset(ContentType)


class RecordReader:
    """Splits a byte stream into (content type, plaintext) records."""

    __slots__ = ("_buffer", "protection", "strict_version")

    def __init__(self, protection: RecordProtection) -> None:
        self._buffer = bytearray()
        self.protection = protection
        # Before ServerHello a ClientHello may come in a record of any 3.x version (App. E.1).
        self.strict_version = False

    def feed(self, data: Buffer) -> None:
        self._buffer += data

    def buffered(self) -> int:
        return len(self._buffer)

    def next_record(self) -> tuple[int, Buffer] | None:
        buffer = self._buffer
        if len(buffer) < HEADER_LENGTH:
            return None
        content_type, version, length = _HEADER.unpack_from(buffer)
        if content_type not in _CONTENT_TYPES:
            raise UnexpectedMessage(f"unknown record content type {content_type}")
        if version != TLS12 and (self.strict_version or version >> 8 != 3):
            raise ProtocolVersionError(f"record version {version:#06x}")
        if length > MAX_CIPHERTEXT:
            raise RecordOverflow(f"record of {length} bytes")
        end = HEADER_LENGTH + length
        if len(buffer) < end:
            return None
        fragment = buffer[HEADER_LENGTH:end]
        del buffer[:end]
        return content_type, self.protection.open(content_type, version, fragment)


class HandshakeAssembler:
    """Reassembles handshake messages from the payloads of handshake records.

    The caller says which message types it accepts now and how long each may be; a type it
    does not accept is refused on its first byte and an over-long message on its header, so
    neither order nor size ever depends on buffering or decoding a hostile body.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def is_empty(self) -> bool:
        return not self._buffer

    def feed(self, payload: Buffer) -> None:
        if not payload:
            # RFC 5246 §6.2.1: zero-length handshake fragments MUST NOT be sent.
            raise UnexpectedMessage("empty handshake record")
        self._buffer += payload

    def next_message(
        self, accepted: Mapping[int, type[ClientMessage]]
    ) -> tuple[type[ClientMessage], bytes] | None:
        """(message class, whole message with its 4-byte header), or None if incomplete.

        `accepted` maps each handshake type acceptable now to its class, whose `max_length`
        bounds the body.
        """
        buffer = self._buffer
        if not buffer:
            return None
        handshake_type = buffer[0]
        message_class = accepted.get(handshake_type)
        if message_class is None:
            raise UnexpectedMessage(f"handshake message of type {handshake_type} here")
        if len(buffer) < 4:
            return None
        length = int.from_bytes(buffer[1:4], "big")
        if length > message_class.max_length:
            raise DecodeError(f"handshake message type {handshake_type} of {length} bytes")
        end = 4 + length
        if len(buffer) < end:
            return None
        message = bytes(buffer[:end])
        del buffer[:end]
        return message_class, message


def write_records(
    out: bytearray,
    protection: RecordProtection,
    content_type: int,
    data: Buffer,
) -> None:
    """Append `data` to `out` as records of at most 2^14 plaintext bytes each."""
    if len(data) <= MAX_PLAINTEXT:
        out += protection.seal(content_type, data)
        return
    view = memoryview(data)
    for start in range(0, len(view), MAX_PLAINTEXT):
        out += protection.seal(content_type, view[start : start + MAX_PLAINTEXT])
