"""Record protection, one object per direction (Go's halfConn): RFC 5246 §6.2.3.3 AEAD records.

Each object holds its AEAD (made once per key), its IV and its own sequence number. AES-GCM
(RFC 5288 §3) sends an 8-byte explicit nonce — we use the sequence number, so the nonce is
salt ‖ seq and never repeats; ChaCha20-Poly1305 (RFC 7905 §2) sends none and uses iv XOR seq.
The additional data is seq ‖ type ‖ version ‖ plaintext length. A record goes onto the outgoing
queue as two pieces, its header (with the explicit nonce) and its ciphertext, never copied.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..wire.enums import TLS12
from ..wire.errors import BadRecordMac, InternalError, RecordOverflow

MAX_PLAINTEXT = 2**14
TAG_LENGTH = 16
_HEADER = struct.Struct("!BHH")
_AAD = struct.Struct("!QBHH")
_SEQ = struct.Struct("!Q")
_MAX_SEQUENCE = 2**64 - 1

Aead = AESGCM | ChaCha20Poly1305


class RecordParameters(NamedTuple):
    """How one record was protected, for a trace: the nonce, its explicit part, the AAD."""

    nonce: bytes
    explicit_nonce: bytes
    additional_data: bytes


Buffer = bytes | bytearray | memoryview


class RecordProtection(Protocol):
    """What the record layer needs from either the null or an AEAD protection."""

    def seal_into(self, out: list[bytes], content_type: int, plaintext: Buffer) -> None:
        """Append to `out` the pieces of a whole record (header included) carrying `plaintext`.

        The outgoing queue is a list of pieces joined once per transport write: growing one
        buffer record by record instead re-copies it at every reallocation, which cost more
        than the encryption for bulk data."""
        ...

    def open(self, content_type: int, version: int, fragment: Buffer) -> tuple[int, Buffer]:
        """Return the content type and plaintext of a record's fragment, or raise the matching
        alert. The type is the header's in TLS 1.2; TLS 1.3 hides the real one inside the
        encrypted record (RFC 8446 §5.2), so only the protection can say what a record is."""
        ...


class NullProtection:
    """TLS_NULL_WITH_NULL_NULL: the state before ChangeCipherSpec."""

    def seal_into(self, out: list[bytes], content_type: int, plaintext: Buffer) -> None:
        out.append(_HEADER.pack(content_type, TLS12, len(plaintext)) + plaintext)

    def open(self, content_type: int, version: int, fragment: Buffer) -> tuple[int, Buffer]:
        if len(fragment) > MAX_PLAINTEXT:
            raise RecordOverflow(f"plaintext record of {len(fragment)} bytes")
        return content_type, fragment


class _AEADRecords:
    """What both nonce constructions share: the AEAD, the sequence number, the checks."""

    __slots__ = ("_aead", "_sequence")

    def __init__(self, aead: Aead) -> None:
        self._aead = aead
        self._sequence = 0

    @property
    def next_sequence(self) -> int:
        return self._sequence

    def _next_sequence(self) -> int:
        sequence = self._sequence
        if sequence >= _MAX_SEQUENCE:
            raise InternalError("record sequence number exhausted")
        self._sequence = sequence + 1
        return sequence

    @staticmethod
    def _plaintext_length(fragment: Buffer, overhead: int) -> int:
        length = len(fragment) - overhead
        if length < 0:
            raise BadRecordMac("record too short to hold its nonce and tag")
        if length > MAX_PLAINTEXT:
            raise RecordOverflow(f"ciphertext for {length} bytes of plaintext")
        return length

    def _decrypt(self, nonce: bytes, ciphertext: Buffer, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise BadRecordMac("record authentication failed") from None


class ExplicitNonceAEAD(_AEADRecords):
    """AES-GCM records (RFC 5288): nonce = 4-byte salt ‖ 8-byte explicit part carried in clear."""

    __slots__ = ("_salt",)

    def __init__(self, aead: Aead, salt: bytes) -> None:
        super().__init__(aead)
        self._salt = salt

    def parameters(self, sequence: int, content_type: int, length: int) -> RecordParameters:
        explicit = _SEQ.pack(sequence)
        aad = _AAD.pack(sequence, content_type, TLS12, length)
        return RecordParameters(self._salt + explicit, explicit, aad)

    def seal_into(self, out: list[bytes], content_type: int, plaintext: Buffer) -> None:
        sequence = self._next_sequence()
        explicit = _SEQ.pack(sequence)
        aad = _AAD.pack(sequence, content_type, TLS12, len(plaintext))
        ciphertext = self._aead.encrypt(self._salt + explicit, plaintext, aad)
        out.append(_HEADER.pack(content_type, TLS12, 8 + len(ciphertext)) + explicit)
        out.append(ciphertext)

    def open(self, content_type: int, version: int, fragment: Buffer) -> tuple[int, Buffer]:
        sequence = self._next_sequence()
        length = self._plaintext_length(fragment, 8 + TAG_LENGTH)
        aad = _AAD.pack(sequence, content_type, version, length)
        view = memoryview(fragment)
        return content_type, self._decrypt(self._salt + bytes(view[:8]), view[8:], aad)


class XorNonceAEAD(_AEADRecords):
    """ChaCha20-Poly1305 records (RFC 7905 §2): nonce = iv XOR padded sequence number."""

    __slots__ = ("_iv",)

    def __init__(self, aead: Aead, iv: bytes) -> None:
        super().__init__(aead)
        self._iv = int.from_bytes(iv, "big")

    def _nonce(self, sequence: int) -> bytes:
        return (self._iv ^ sequence).to_bytes(12, "big")

    def parameters(self, sequence: int, content_type: int, length: int) -> RecordParameters:
        aad = _AAD.pack(sequence, content_type, TLS12, length)
        return RecordParameters(self._nonce(sequence), b"", aad)

    def seal_into(self, out: list[bytes], content_type: int, plaintext: Buffer) -> None:
        sequence = self._next_sequence()
        aad = _AAD.pack(sequence, content_type, TLS12, len(plaintext))
        ciphertext = self._aead.encrypt(self._nonce(sequence), plaintext, aad)
        out.append(_HEADER.pack(content_type, TLS12, len(ciphertext)))
        out.append(ciphertext)

    def open(self, content_type: int, version: int, fragment: Buffer) -> tuple[int, Buffer]:
        sequence = self._next_sequence()
        length = self._plaintext_length(fragment, TAG_LENGTH)
        aad = _AAD.pack(sequence, content_type, version, length)
        return content_type, self._decrypt(self._nonce(sequence), fragment, aad)
