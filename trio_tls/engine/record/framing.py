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

from ..wire.enums import TLS12, ContentType
from ..wire.errors import (
    DecodeError,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
)
from ..wire.messages import ClientMessage
from .protection import MAX_PLAINTEXT, Buffer, RecordProtection

HEADER_LENGTH = 5
MAX_CIPHERTEXT = MAX_PLAINTEXT + 2048  # RFC 5246 §6.2.3
_HEADER = struct.Struct("!BHH")
_CONTENT_TYPES = frozenset(ContentType)


class RecordReader:
    """Splits a byte stream into (content type, plaintext) records.

    Records are read in place from the bytes last fed, without copying them into a buffer
    first: a 256 KiB read holds sixteen full records, and each is handed to its protection as
    a view. Only a record split between two reads is gathered (`_carry`), up to its end.
    """

    __slots__ = ("_carry", "_data", "_pos", "protection", "strict_version")

    def __init__(self, protection: RecordProtection) -> None:
        self._data: bytes = b""  # the bytes fed last, read from `_pos` on
        self._pos = 0
        self._carry = bytearray()  # what came before `_data` and is not yet a whole record
        self.protection = protection
        # Before ServerHello a ClientHello may come in a record of any 3.x version (App. E.1).
        self.strict_version = False

    def feed(self, data: Buffer) -> None:
        if self._pos < len(self._data):
            self._carry += memoryview(self._data)[self._pos :]
        # Records are handed out as views of these bytes: they must not change under them.
        self._data = data if isinstance(data, bytes) else bytes(data)
        self._pos = 0

    def buffered(self) -> int:
        return len(self._carry) + len(self._data) - self._pos

    def next_record(self) -> tuple[int, Buffer] | None:
        if self._carry:
            return self._next_carried_record()
        data, pos = self._data, self._pos
        if len(data) - pos < HEADER_LENGTH:
            return None
        content_type, version, length = _HEADER.unpack_from(data, pos)
        self._check_header(content_type, version, length)
        end = pos + HEADER_LENGTH + length
        if len(data) < end:
            return None
        self._pos = end
        fragment = memoryview(data)[pos + HEADER_LENGTH : end]
        return self.protection.open(content_type, version, fragment)

    def _next_carried_record(self) -> tuple[int, Buffer] | None:
        """The record that begins in `_carry`, completed from `_data` (copying only its rest)."""
        carry = self._carry
        if len(carry) < HEADER_LENGTH and not self._move_to_carry(HEADER_LENGTH - len(carry)):
            return None
        content_type, version, length = _HEADER.unpack_from(carry)
        self._check_header(content_type, version, length)
        end = HEADER_LENGTH + length
        if len(carry) < end and not self._move_to_carry(end - len(carry)):
            return None
        fragment = bytes(carry[HEADER_LENGTH:end])
        del carry[:end]
        return self.protection.open(content_type, version, fragment)

    def _move_to_carry(self, wanted: int) -> bool:
        """Move up to `wanted` bytes from `_data` to `_carry`; whether all of them were there."""
        taken = min(wanted, len(self._data) - self._pos)
        self._carry += memoryview(self._data)[self._pos : self._pos + taken]
        self._pos += taken
        return taken == wanted

    def _check_header(self, content_type: int, version: int, length: int) -> None:
        """Refuse a record on its header, before its body is waited for or buffered."""
        if content_type not in _CONTENT_TYPES:
            raise UnexpectedMessage(f"unknown record content type {content_type}")
        if version != TLS12 and (self.strict_version or version >> 8 != 3):
            raise ProtocolVersionError(f"record version {version:#06x}")
        if length > MAX_CIPHERTEXT:
            raise RecordOverflow(f"record of {length} bytes")


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
    out: list[bytes],
    protection: RecordProtection,
    content_type: int,
    data: Buffer,
) -> None:
    """Append `data` to `out` as records of at most 2^14 plaintext bytes each."""
    if len(data) <= MAX_PLAINTEXT:
        protection.seal_into(out, content_type, data)
        return
    with memoryview(data) as view:
        for start in range(0, len(view), MAX_PLAINTEXT):
            protection.seal_into(out, content_type, view[start : start + MAX_PLAINTEXT])
