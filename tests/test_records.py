"""The record layer: framing in any chunking, early header checks, reassembly, fragmentation,
and AEAD record protection checked against records built straight from RFC 5288 and RFC 7905.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Mapping
from functools import partial

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from trio_tls.engine.crypto.suites import SUITES_BY_ID, CipherSuite
from trio_tls.engine.record.framing import HandshakeAssembler, RecordReader, write_records
from trio_tls.engine.record.protection import (
    ExplicitNonceAEAD,
    NullProtection,
    RecordProtection,
    XorNonceAEAD,
)
from trio_tls.engine.wire.enums import AlertDescription
from trio_tls.engine.wire.errors import (
    BadRecordMac,
    DecodeError,
    InternalError,
    LocalProtocolError,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
)
from trio_tls.engine.wire.messages import ClientHello, ClientKeyExchange, ClientMessage, Finished

HANDSHAKE, CCS, ALERT, APPLICATION_DATA = 22, 20, 21, 23


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    """A record header (RFC 5246 §6.2.1) and its fragment, written out here."""
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def raises_exactly(error: type[LocalProtocolError], action: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError) as info:
        action()
    assert type(info.value) is error
    assert info.value.alert == error.alert


def read_all(reader: RecordReader, chunks: list[bytes]) -> list[tuple[int, bytes]]:
    out = []
    for chunk in chunks:
        reader.feed(chunk)
        while (got := reader.next_record()) is not None:
            content_type, payload = got
            out.append((content_type, bytes(payload)))
    assert reader.buffered() == 0
    return out


# -- RecordReader -------------------------------------------------------------------------------

PLAIN_RECORDS = [
    (HANDSHAKE, b"\x01\x00\x00\x02hi"),
    (CCS, b"\x01"),
    (ALERT, b"\x01\x00"),
    (APPLICATION_DATA, b""),  # an empty record is legal framing
    (APPLICATION_DATA, bytes(range(256)) * 64),  # exactly 2^14
    (HANDSHAKE, b"x" * 300),
]
PLAIN_STREAM = b"".join(record(t, p) for t, p in PLAIN_RECORDS)


def random_chunks(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    chunks = []
    pos = 0
    while pos < len(data):
        n = rng.randint(1, largest)
        chunks.append(data[pos : pos + n])
        pos += n
    return chunks


@pytest.mark.parametrize("seed", range(5))
def test_any_chunking_gives_the_same_records(seed: int) -> None:
    whole = read_all(RecordReader(NullProtection()), [PLAIN_STREAM])
    assert whole == PLAIN_RECORDS
    one_by_one = [PLAIN_STREAM[i : i + 1] for i in range(len(PLAIN_STREAM))]
    assert read_all(RecordReader(NullProtection()), one_by_one) == PLAIN_RECORDS
    rng = random.Random(seed)
    for largest in (3, 7, 100, 5000, 20000):
        chunks = random_chunks(PLAIN_STREAM, rng, largest)
        assert b"".join(chunks) == PLAIN_STREAM
        assert read_all(RecordReader(NullProtection()), chunks) == PLAIN_RECORDS


def test_a_partial_record_waits_for_its_body() -> None:
    reader = RecordReader(NullProtection())
    reader.feed(record(HANDSHAKE, b"abcdef")[:-1])
    assert reader.next_record() is None
    assert reader.buffered() == 10
    reader.feed(b"f")
    got = reader.next_record()
    assert got is not None
    assert (got[0], bytes(got[1])) == (HANDSHAKE, b"abcdef")
    assert reader.next_record() is None


def test_records_of_any_3x_version_are_read_before_the_version_is_fixed() -> None:
    reader = RecordReader(NullProtection())
    stream = record(HANDSHAKE, b"a", 0x0301) + record(HANDSHAKE, b"b", 0x0300)
    assert read_all(reader, [stream]) == [(HANDSHAKE, b"a"), (HANDSHAKE, b"b")]


@pytest.mark.parametrize(
    ("header", "error", "strict"),
    [
        (struct.pack("!BHH", 24, 0x0303, 10), UnexpectedMessage, False),  # heartbeat: unknown
        (struct.pack("!BHH", 0, 0x0303, 10), UnexpectedMessage, False),
        (b"GET /", UnexpectedMessage, False),  # plain HTTP on a TLS port
        (struct.pack("!BHH", 22, 0x0203, 10), ProtocolVersionError, False),  # SSL 2-ish major
        (struct.pack("!BHH", 22, 0x0403, 10), ProtocolVersionError, False),
        (struct.pack("!BHH", 23, 0x0301, 10), ProtocolVersionError, True),
        (struct.pack("!BHH", 22, 0x0302, 10), ProtocolVersionError, True),
        (struct.pack("!BHH", 23, 0x0303, 2**14 + 2049), RecordOverflow, False),
        (struct.pack("!BHH", 23, 0x0303, 0xFFFF), RecordOverflow, True),
    ],
)
def test_a_bad_header_fails_as_soon_as_its_five_bytes_arrive(
    header: bytes, error: type[LocalProtocolError], strict: bool
) -> None:
    reader = RecordReader(NullProtection())
    reader.strict_version = strict
    for i in range(4):
        reader.feed(header[i : i + 1])
        assert reader.next_record() is None  # not yet: the header is incomplete
    reader.feed(header[4:])
    # No byte of the body has arrived, and the error is already raised.
    raises_exactly(error, reader.next_record)


def test_largest_allowed_ciphertext_header_is_accepted() -> None:
    reader = RecordReader(NullProtection())
    reader.strict_version = True
    reader.feed(struct.pack("!BHH", APPLICATION_DATA, 0x0303, 2**14 + 2048))
    assert reader.next_record() is None  # waiting for the body, no error


def test_plaintext_record_over_2_14_is_a_record_overflow() -> None:
    reader = RecordReader(NullProtection())
    reader.feed(record(HANDSHAKE, bytes(2**14 + 1)))
    raises_exactly(RecordOverflow, reader.next_record)


def test_plaintext_record_of_exactly_2_14_is_accepted() -> None:
    reader = RecordReader(NullProtection())
    reader.feed(record(HANDSHAKE, bytes(2**14)))
    got = reader.next_record()
    assert got is not None
    assert len(got[1]) == 2**14


# -- HandshakeAssembler -------------------------------------------------------------------------


def handshake_message(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


ANY_CLIENT_MESSAGE = {cls.handshake_type: cls for cls in (ClientHello, ClientKeyExchange, Finished)}
ONLY_CLIENT_HELLO = {ClientHello.handshake_type: ClientHello}


def drain(
    assembler: HandshakeAssembler, accepted: Mapping[int, type[ClientMessage]] = ANY_CLIENT_MESSAGE
) -> list[tuple[int, bytes]]:
    messages = []
    while (message := assembler.next_message(accepted)) is not None:
        messages.append((message[0].handshake_type, message[1]))
    return messages


def test_one_message_split_across_three_records() -> None:
    message = handshake_message(1, bytes(range(200)))
    assembler = HandshakeAssembler()
    for part in (message[:2], message[2:100], message[100:]):
        assembler.feed(part)
    assert drain(assembler) == [(1, message)]
    assert assembler.is_empty()


def test_three_messages_packed_in_one_record() -> None:
    messages = [
        handshake_message(1, b"client hello"),
        handshake_message(16, b"\x04" * 65),
        handshake_message(20, b"v" * 12),
    ]
    assembler = HandshakeAssembler()
    assembler.feed(b"".join(messages))
    assert drain(assembler) == [(1, messages[0]), (16, messages[1]), (20, messages[2])]
    assert assembler.is_empty()


def test_a_message_boundary_inside_a_record() -> None:
    first, second = handshake_message(16, b"k" * 33), handshake_message(20, b"v" * 12)
    assembler = HandshakeAssembler()
    assembler.feed(first + second[:5])
    assert drain(assembler) == [(16, first)]
    assert not assembler.is_empty()
    assembler.feed(second[5:])
    assert drain(assembler) == [(20, second)]


def test_an_empty_handshake_record_is_an_unexpected_message() -> None:
    assembler = HandshakeAssembler()
    raises_exactly(UnexpectedMessage, lambda: assembler.feed(b""))


@pytest.mark.parametrize("handshake_type", [0, 2, 11, 16, 20, 99, 255])
def test_a_type_not_accepted_fails_on_its_first_byte(handshake_type: int) -> None:
    # Order before content: no length, no body is needed to know it is out of place.
    assembler = HandshakeAssembler()
    assembler.feed(bytes((handshake_type,)))
    raises_exactly(UnexpectedMessage, lambda: assembler.next_message(ONLY_CLIENT_HELLO))


@pytest.mark.parametrize(
    ("message_class", "limit"),
    [(ClientHello, 131_396), (ClientKeyExchange, 256), (Finished, 12)],
)
def test_each_type_is_bounded_on_its_header(message_class: type[ClientMessage], limit: int) -> None:
    at_limit = HandshakeAssembler()
    at_limit.feed(bytes((message_class.handshake_type,)) + limit.to_bytes(3, "big"))
    assert at_limit.next_message(ANY_CLIENT_MESSAGE) is None  # waits for the body
    over = HandshakeAssembler()
    over.feed(bytes((message_class.handshake_type,)) + (limit + 1).to_bytes(3, "big"))
    raises_exactly(DecodeError, lambda: over.next_message(ANY_CLIENT_MESSAGE))


def test_a_maximal_client_hello_reassembles_from_many_records() -> None:
    message = handshake_message(1, bytes(131_396))
    assembler = HandshakeAssembler()
    for start in range(0, len(message), 2**14):
        assembler.feed(message[start : start + 2**14])
    assert drain(assembler, ONLY_CLIENT_HELLO) == [(1, message)]


# -- write_records ------------------------------------------------------------------------------


def test_write_records_fragments_at_2_14() -> None:
    data = bytes(i % 251 for i in range(40000))
    out: list[bytes] = []
    write_records(out, NullProtection(), APPLICATION_DATA, data)
    expected = (
        record(APPLICATION_DATA, data[:16384])
        + record(APPLICATION_DATA, data[16384:32768])
        + record(APPLICATION_DATA, data[32768:])
    )
    assert b"".join(out) == expected
    assert [len(p) for _, p in read_all(RecordReader(NullProtection()), [b"".join(out)])] == [
        16384,
        16384,
        7232,
    ]


def test_write_records_appends_and_keeps_small_data_in_one_record() -> None:
    out = [b"already here"]
    write_records(out, NullProtection(), HANDSHAKE, b"abc")
    assert b"".join(out) == b"already here" + bytes.fromhex("16 0303 0003") + b"abc"
    out = []
    write_records(out, NullProtection(), HANDSHAKE, bytes(2**14))
    assert len(b"".join(out)) == 5 + 2**14


def test_records_are_read_in_place_and_a_split_record_is_carried() -> None:
    """A read that ends inside a record: the whole records before it are views of that read
    (no copy), and the split record is completed from the next read, byte for byte."""
    first, second = record(APPLICATION_DATA, b"x" * 100), record(HANDSHAKE, b"y" * 300)
    stream = first + second
    reader = RecordReader(NullProtection())
    reader.feed(stream[: len(first) + 7])
    content_type, fragment = reader.next_record() or (0, b"")
    assert (content_type, bytes(fragment)) == (APPLICATION_DATA, b"x" * 100)
    assert isinstance(fragment, memoryview)
    assert reader.next_record() is None
    assert reader.buffered() == 7
    reader.feed(bytearray(stream[len(first) + 7 : -1]))  # a mutable buffer is copied, not kept
    assert reader.next_record() is None
    reader.feed(stream[-1:])
    assert reader.next_record() == (HANDSHAKE, b"y" * 300)
    assert reader.buffered() == 0


# -- AEAD protection ----------------------------------------------------------------------------

AEAD_SUITES = [0xC02F, 0xC030, 0xCCA8]


def make_pair(
    suite_id: int,
) -> tuple[CipherSuite, bytes, bytes, RecordProtection, RecordProtection]:
    suite = SUITES_BY_ID[suite_id]
    key = bytes(range(suite.key_length))
    iv = bytes(range(0xA0, 0xA0 + suite.iv_length))
    return suite, key, iv, suite.make_protection(key, iv), suite.make_protection(key, iv)


def fragment_of(sealed: bytes) -> bytes:
    assert int.from_bytes(sealed[3:5], "big") == len(sealed) - 5
    return sealed[5:]


def seal(protection: RecordProtection, content_type: int, payload: bytes) -> bytes:
    """One record, as `protection.seal_into` appends it to an outgoing buffer."""
    out: list[bytes] = []
    protection.seal_into(out, content_type, payload)
    return b"".join(out)


def test_suites_build_the_protection_their_rfc_describes() -> None:
    assert isinstance(SUITES_BY_ID[0xC02F].make_protection(bytes(16), bytes(4)), ExplicitNonceAEAD)
    assert isinstance(SUITES_BY_ID[0xC02C].make_protection(bytes(32), bytes(4)), ExplicitNonceAEAD)
    assert isinstance(SUITES_BY_ID[0xCCA9].make_protection(bytes(32), bytes(12)), XorNonceAEAD)


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_aead_seal_open_round_trip_across_objects(suite_id: int) -> None:
    _, _, _, sealer, opener = make_pair(suite_id)
    payloads = [
        (HANDSHAKE, b"\x14\x00\x00\x0c" + bytes(12)),
        (APPLICATION_DATA, b""),
        (APPLICATION_DATA, b"x" * 2**14),
        (ALERT, b"\x01\x00"),
    ]
    for content_type, payload in payloads:
        sealed = seal(sealer, content_type, payload)
        assert sealed[:3] == bytes([content_type]) + b"\x03\x03"
        assert bytes(opener.open(content_type, 0x0303, fragment_of(sealed))[1]) == payload


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_aead_records_through_the_record_reader_in_any_chunking(suite_id: int) -> None:
    _, _, _, sealer, opener = make_pair(suite_id)
    stream = b"".join(seal(sealer, t, p) for t, p in PLAIN_RECORDS)
    chunks = random_chunks(stream, random.Random(suite_id), 777)
    assert read_all(RecordReader(opener), chunks) == PLAIN_RECORDS


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
@pytest.mark.parametrize("position", [0, 5, 8, -17, -1])
def test_a_flipped_bit_is_a_bad_record_mac(suite_id: int, position: int) -> None:
    # Positions in the fragment: explicit nonce (GCM), ciphertext, tag.
    _, _, _, sealer, opener = make_pair(suite_id)
    fragment = bytearray(fragment_of(seal(sealer, APPLICATION_DATA, b"attack at dawn")))
    fragment[position] ^= 0x01
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0303, bytes(fragment)))


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_header_fields_are_authenticated(suite_id: int) -> None:
    _, _, _, sealer, _ = make_pair(suite_id)
    fragment = fragment_of(seal(sealer, APPLICATION_DATA, b"data"))
    for content_type, version in [(HANDSHAKE, 0x0303), (APPLICATION_DATA, 0x0301)]:
        _, _, _, _, opener = make_pair(suite_id)
        raises_exactly(BadRecordMac, partial(opener.open, content_type, version, fragment))


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_a_record_out_of_sequence_is_a_bad_record_mac(suite_id: int) -> None:
    _, _, _, sealer, opener = make_pair(suite_id)
    first = fragment_of(seal(sealer, APPLICATION_DATA, b"one"))
    second = fragment_of(seal(sealer, APPLICATION_DATA, b"two"))
    # The opener expects sequence 0; the second record was sealed with sequence 1.
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0303, second))
    # A replay of the first record, now at sequence 1, fails too.
    _, _, _, _, opener = make_pair(suite_id)
    assert bytes(opener.open(APPLICATION_DATA, 0x0303, first)[1]) == b"one"
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0303, first))


@pytest.mark.parametrize(
    ("suite_id", "overhead"), [(0xC02F, 8 + 16), (0xC030, 8 + 16), (0xCCA8, 16)]
)
def test_a_fragment_too_short_for_nonce_and_tag_is_a_bad_record_mac(
    suite_id: int, overhead: int
) -> None:
    for length in (0, 1, overhead - 1):
        _, _, _, _, opener = make_pair(suite_id)
        raises_exactly(BadRecordMac, partial(opener.open, APPLICATION_DATA, 0x0303, bytes(length)))
    # Exactly the overhead is an empty record's size: it gets as far as the tag check.
    _, _, _, sealer, opener = make_pair(suite_id)
    assert len(fragment_of(seal(sealer, APPLICATION_DATA, b""))) == overhead
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0303, bytes(overhead)))


@pytest.mark.parametrize("suite_id", [0xC02F, 0xC02C])
def test_gcm_explicit_nonce_is_the_sequence_number(suite_id: int) -> None:
    _, _, _, sealer, _ = make_pair(suite_id)
    for sequence in range(5):
        sealed = seal(sealer, APPLICATION_DATA, b"payload")
        assert sealed[5:13] == sequence.to_bytes(8, "big")
        assert len(sealed) == 5 + 8 + len(b"payload") + 16


def aad(sequence: int, content_type: int, length: int) -> bytes:
    """RFC 5246 §6.2.3.3: seq_num + TLSCompressed.type + TLSCompressed.version + length."""
    return sequence.to_bytes(8, "big") + bytes([content_type]) + b"\x03\x03" + length.to_bytes(2)


@pytest.mark.parametrize("suite_id", [0xC02F, 0xC02B, 0xC030, 0xC02C])
def test_gcm_record_matches_rfc_5288(suite_id: int) -> None:
    _, key, salt, sealer, opener = make_pair(suite_id)
    assert len(salt) == 4
    gcm = AESGCM(key)
    for sequence, (content_type, payload) in enumerate(PLAIN_RECORDS):
        explicit = sequence.to_bytes(8, "big")
        # RFC 5288 §3: nonce = salt (4, from the key block) || nonce_explicit (8, on the wire).
        ciphertext = gcm.encrypt(
            salt + explicit, payload, aad(sequence, content_type, len(payload))
        )
        expected = record(content_type, explicit + ciphertext)
        assert seal(sealer, content_type, payload) == expected
        assert bytes(opener.open(content_type, 0x0303, expected[5:])[1]) == payload


def test_gcm_opener_takes_the_explicit_nonce_from_the_record() -> None:
    # The peer may choose any explicit nonce (RFC 5288 §3); only the AAD uses our sequence.
    _, key, salt, _, opener = make_pair(0xC02F)
    explicit = bytes.fromhex("0123456789abcdef")
    ciphertext = AESGCM(key).encrypt(salt + explicit, b"hello", aad(0, APPLICATION_DATA, 5))
    assert bytes(opener.open(APPLICATION_DATA, 0x0303, explicit + ciphertext)[1]) == b"hello"


@pytest.mark.parametrize("suite_id", [0xCCA8, 0xCCA9])
def test_chacha20_record_matches_rfc_7905(suite_id: int) -> None:
    _, key, iv, sealer, opener = make_pair(suite_id)
    assert len(iv) == 12
    chacha = ChaCha20Poly1305(key)
    for sequence, (content_type, payload) in enumerate(PLAIN_RECORDS):
        # RFC 7905 §2: the 64-bit sequence number, left-padded to 96 bits, XORed with the IV.
        padded = bytes(4) + sequence.to_bytes(8, "big")
        nonce = bytes(a ^ b for a, b in zip(iv, padded, strict=True))
        ciphertext = chacha.encrypt(nonce, payload, aad(sequence, content_type, len(payload)))
        expected = record(content_type, ciphertext)  # no explicit nonce on the wire
        assert seal(sealer, content_type, payload) == expected
        assert bytes(opener.open(content_type, 0x0303, expected[5:])[1]) == payload


def test_chacha20_nonce_xor_reaches_the_high_sequence_bytes() -> None:
    # Skip ahead to a large sequence number so the XOR touches all eight of its bytes.
    suite = SUITES_BY_ID[0xCCA8]
    key, iv = bytes(32), bytes(range(1, 13))
    sealer = suite.make_protection(key, iv)
    assert isinstance(sealer, XorNonceAEAD)
    sequence = 0x0102030405060708
    sealer._sequence = sequence  # a white-box shortcut past 2^56 records
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + sequence.to_bytes(8), strict=True))
    expected = ChaCha20Poly1305(key).encrypt(nonce, b"late", aad(sequence, APPLICATION_DATA, 4))
    assert seal(sealer, APPLICATION_DATA, b"late") == record(APPLICATION_DATA, expected)


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_an_aead_record_over_2_14_plaintext_is_a_record_overflow(suite_id: int) -> None:
    _, _, _, sealer, opener = make_pair(suite_id)
    # Our sealer is not asked to make such a record (write_records fragments), so seal the
    # oversized plaintext through it only to get valid framing, then open it.
    sealed = seal(sealer, APPLICATION_DATA, bytes(2**14 + 1))
    raises_exactly(RecordOverflow, lambda: opener.open(APPLICATION_DATA, 0x0303, sealed[5:]))


def test_alert_of_each_error_matches_rfc_5246() -> None:
    # The table the assertions above rely on (errors.py is the one place deciding it).
    assert BadRecordMac.alert == AlertDescription.bad_record_mac
    assert RecordOverflow.alert == AlertDescription.record_overflow
    assert UnexpectedMessage.alert == AlertDescription.unexpected_message
    assert ProtocolVersionError.alert == AlertDescription.protocol_version
    assert DecodeError.alert == AlertDescription.decode_error


@pytest.mark.parametrize("suite_id", AEAD_SUITES)
def test_a_sequence_number_never_wraps(suite_id: int) -> None:
    """Guards the sequence number's end (RFC 5246 §6.1: it "may not exceed 2^64-1", and a
    wrapped one would reuse a nonce): sealing past it is an internal_error that says why,
    raised before a record is made with a number out of range. (Opening counts with the same
    code.)"""
    _, _, _, sealer, _ = make_pair(suite_id)
    assert isinstance(sealer, ExplicitNonceAEAD | XorNonceAEAD)
    sealer._sequence = 2**64 - 1  # white-box: 2^64 records would take too long
    with pytest.raises(InternalError, match=r"^record sequence number exhausted$"):
        for _ in range(2):  # the last number may be used or kept unused; never one past it
            seal(sealer, APPLICATION_DATA, b"late")
    assert sealer.next_sequence <= 2**64


def test_records_read_in_place_do_not_change_with_the_callers_buffer() -> None:
    """Guards the copy RecordReader makes of a mutable buffer it is fed: records are handed out
    as views of the bytes fed, so a caller that reuses its bytearray for the next read (as a
    receive-into loop does) must not change a record already read or still to be read."""
    reader = RecordReader(NullProtection())
    buffer = bytearray(record(APPLICATION_DATA, b"first") + record(APPLICATION_DATA, b"second"))
    reader.feed(buffer)
    first = reader.next_record()
    buffer[:] = bytes(len(buffer))  # the caller's next read lands in the same buffer
    second = reader.next_record()
    assert first is not None and second is not None
    assert (first[0], bytes(first[1])) == (APPLICATION_DATA, b"first")
    assert (second[0], bytes(second[1])) == (APPLICATION_DATA, b"second")
