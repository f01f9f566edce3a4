"""Bounded reading and length-prefixed writing of TLS structures (RFC 5246 §4).

A Reader walks a memoryview with an offset; every variable-length vector is read through a
sub-Reader bounded to exactly the vector's length, so a length that runs past its parent, or bytes
left over inside it, is caught where it happens (`end()`), not as a confusing failure later.
Every failure is a DecodeError, which the connection turns into a decode_error alert.
"""

from __future__ import annotations

import struct

from .errors import DecodeError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Reader:
    """A cursor over a bounded slice of bytes; never reads outside [start, stop)."""

    __slots__ = ("_data", "_pos", "_stop")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._stop = len(self._data)

    def _take(self, n: int) -> int:
        pos = self._pos
        if pos + n > self._stop:
            raise DecodeError(f"truncated: need {n} bytes, have {self._stop - pos}")
        self._pos = pos + n
        return pos

    def remaining(self) -> int:
        return self._stop - self._pos

    def at_end(self) -> bool:
        return self._pos == self._stop

    def end(self) -> None:
        """Assert the structure is finished: trailing bytes are a decode_error."""
        if self._pos != self._stop:
            raise DecodeError(f"{self._stop - self._pos} trailing bytes")

    def u8(self) -> int:
        pos = self._take(1)
        return self._data[pos]

    def u16(self) -> int:
        pos = self._take(2)
        return _U16.unpack_from(self._data, pos)[0]  # type: ignore[no-any-return]

    def u24(self) -> int:
        pos = self._take(3)
        d = self._data
        return (d[pos] << 16) | (d[pos + 1] << 8) | d[pos + 2]

    def u32(self) -> int:
        pos = self._take(4)
        return _U32.unpack_from(self._data, pos)[0]  # type: ignore[no-any-return]

    def raw(self, n: int) -> bytes:
        pos = self._take(n)
        return bytes(self._data[pos : pos + n])

    def rest(self) -> bytes:
        return self.raw(self._stop - self._pos)

    def _sub(self, length: int, minimum: int, maximum: int) -> Reader:
        if not minimum <= length <= maximum:
            raise DecodeError(f"vector length {length} outside {minimum}..{maximum}")
        pos = self._take(length)
        sub = Reader.__new__(Reader)
        sub._data = self._data
        sub._pos = pos
        sub._stop = pos + length
        return sub

    def vec8(self, minimum: int = 0, maximum: int = 0xFF) -> Reader:
        return self._sub(self.u8(), minimum, maximum)

    def vec16(self, minimum: int = 0, maximum: int = 0xFFFF) -> Reader:
        return self._sub(self.u16(), minimum, maximum)

    def vec24(self, minimum: int = 0, maximum: int = 0xFFFFFF) -> Reader:
        return self._sub(self.u24(), minimum, maximum)

    def opaque8(self, minimum: int = 0, maximum: int = 0xFF) -> bytes:
        return self.vec8(minimum, maximum).rest()

    def opaque16(self, minimum: int = 0, maximum: int = 0xFFFF) -> bytes:
        return self.vec16(minimum, maximum).rest()

    def opaque24(self, minimum: int = 0, maximum: int = 0xFFFFFF) -> bytes:
        return self.vec24(minimum, maximum).rest()

    def u16_list(self) -> tuple[int, ...]:
        """The rest of this reader as a list of uint16, e.g. cipher suites (odd length fails)."""
        n = self.remaining()
        if n % 2:
            raise DecodeError("odd length for a list of uint16")
        pos = self._take(n)
        return struct.unpack_from(f"!{n // 2}H", self._data, pos)

    def u8_list(self) -> tuple[int, ...]:
        return tuple(self.rest())


class Writer:
    """Appends to one bytearray; `prefixed(n)` back-fills a vector's length when it closes."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def u8(self, value: int) -> None:
        self.buffer.append(value)

    def u16(self, value: int) -> None:
        self.buffer += _U16.pack(value)

    def u24(self, value: int) -> None:
        self.buffer += _U32.pack(value)[1:]

    def u32(self, value: int) -> None:
        self.buffer += _U32.pack(value)

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        self.buffer += data

    def u16_list(self, values: tuple[int, ...] | list[int]) -> None:
        self.buffer += struct.pack(f"!{len(values)}H", *values)

    def prefixed(self, size: int) -> _LengthPrefix:
        """`with w.prefixed(n):` writes an n-byte length, runs the body, then fills it in."""
        return _LengthPrefix(self.buffer, size)

    def opaque8(self, data: bytes) -> None:
        self._opaque(1, data)

    def opaque16(self, data: bytes) -> None:
        self._opaque(2, data)

    def opaque24(self, data: bytes) -> None:
        self._opaque(3, data)

    def _opaque(self, size: int, data: bytes) -> None:
        if len(data) >= 1 << (8 * size):
            raise ValueError(f"{len(data)} bytes do not fit a {size}-byte length")
        self.buffer += len(data).to_bytes(size, "big")
        self.buffer += data

    def getvalue(self) -> bytes:
        return bytes(self.buffer)


class _LengthPrefix:
    """The context manager behind Writer.prefixed: a class, since a generator-based one costs
    several times more, and handshake encoding opens a couple of dozen per connection."""

    __slots__ = ("_buffer", "_size", "_start")

    def __init__(self, buffer: bytearray, size: int) -> None:
        self._buffer = buffer
        self._size = size
        self._start = 0

    def __enter__(self) -> None:
        self._start = len(self._buffer)
        self._buffer += bytes(self._size)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            return
        start, size = self._start, self._size
        length = len(self._buffer) - start - size
        if length >= 1 << (8 * size):
            raise ValueError(f"vector of {length} bytes does not fit a {size}-byte length")
        self._buffer[start : start + size] = length.to_bytes(size, "big")
