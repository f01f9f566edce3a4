import pytest

from trio_tls.engine.wire.codec import Reader, Writer
from trio_tls.engine.wire.errors import DecodeError


def test_writer_prefixed_round_trip() -> None:
    w = Writer()
    with w.prefixed(2):
        w.u8(1)
        w.u24(0x010203)
        w.opaque8(b"ab")
    r = Reader(w.getvalue())
    sub = r.vec16()
    r.end()
    assert (sub.u8(), sub.u24(), sub.opaque8()) == (1, 0x010203, b"ab")
    sub.end()


def test_sub_reader_cannot_read_past_its_vector() -> None:
    r = Reader(b"\x01\xaa\xbb")
    sub = r.vec8()
    assert sub.u8() == 0xAA
    with pytest.raises(DecodeError):
        sub.u8()


@pytest.mark.parametrize("data", [b"", b"\x05abc", b"\x00"])
def test_truncated_vectors_fail(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Reader(data).opaque8(minimum=1)


def test_trailing_bytes_fail() -> None:
    r = Reader(b"\x00\x01\x02")
    r.u16()
    with pytest.raises(DecodeError, match="trailing"):
        r.end()


def test_length_bounds_are_checked() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x00").vec8(minimum=1)
    with pytest.raises(DecodeError):
        Reader(b"\x03abc").vec8(maximum=2)


def test_u16_list_rejects_odd_length() -> None:
    assert Reader(b"\x00\x01\x00\x02").u16_list() == (1, 2)
    with pytest.raises(DecodeError):
        Reader(b"\x00\x01\x00").u16_list()


def test_writer_rejects_oversized_vector() -> None:
    with pytest.raises(ValueError):
        Writer().opaque8(bytes(256))
