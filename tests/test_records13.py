"""TLS 1.3 record protection: RFC 8448's encrypted records byte for byte, the inner content type
and padding, every error with its alert, and skipping a refused client's early data.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from trio_tls.engine.crypto.suites import TLS13_SUITES, TLS13_SUITES_BY_ID, Tls13Suite
from trio_tls.engine.record.framing import RecordReader
from trio_tls.engine.record.protection import NullProtection
from trio_tls.engine.record.protection13 import (
    AES_GCM_RECORD_LIMIT,
    CHACHA20_RECORD_LIMIT,
    SKIPPED,
    SkipEarlyData,
    Tls13Protection,
)
from trio_tls.engine.wire.errors import (
    BadRecordMac,
    InternalError,
    LocalProtocolError,
    RecordOverflow,
    UnexpectedMessage,
)

from . import rfc8448 as v

HANDSHAKE, CCS, ALERT, APPLICATION_DATA = 22, 20, 21, 23
AES128 = TLS13_SUITES_BY_ID[0x1301]
SUITE_IDS = [suite.id for suite in TLS13_SUITES]


def raises_exactly(error: type[LocalProtocolError], action: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError) as info:
        action()
    assert type(info.value) is error


def seal(protection: Tls13Protection, content_type: int, plaintext: bytes) -> bytes:
    out: list[bytes] = []
    protection.seal_into(out, content_type, plaintext)
    assert len(out) == 2  # header and ciphertext, never joined
    return b"".join(out)


def pair(suite: Tls13Suite, **kwargs: bool) -> tuple[Tls13Protection, Tls13Protection]:
    secret = os.urandom(48 if suite.hash_name == "sha384" else 32)
    return suite.make_protection(secret), suite.make_protection(secret, **kwargs)


def open_record(protection: Tls13Protection, wire: bytes) -> tuple[int, bytes]:
    content_type, version, length = struct.unpack("!BHH", wire[:5])
    assert length == len(wire) - 5
    got_type, content = protection.open(content_type, version, wire[5:])
    return got_type, bytes(content)


def inner_record(protection: Tls13Protection, inner: bytes) -> bytes:
    """A record whose TLSInnerPlaintext is `inner` as given (padding, no type, any length):
    what a peer may send and our seal_into never makes."""
    sequence = protection.next_sequence
    header = struct.pack("!BHH", APPLICATION_DATA, 0x0303, len(inner) + 16)
    nonce = protection.parameters(sequence, 0, len(inner) - 1).nonce
    return header + protection._aead.encrypt(nonce, inner, header)


def test_suites_table() -> None:
    assert [(s.id, s.name, s.hash_name, s.key_length) for s in TLS13_SUITES] == [
        (0x1301, "TLS_AES_128_GCM_SHA256", "sha256", 16),
        (0x1303, "TLS_CHACHA20_POLY1305_SHA256", "sha256", 32),
        (0x1302, "TLS_AES_256_GCM_SHA384", "sha384", 32),
    ]
    assert all(s.openssl_name == s.name for s in TLS13_SUITES)
    assert [s.aead for s in TLS13_SUITES] == [AESGCM, ChaCha20Poly1305, AESGCM]


# -- RFC 8448 §3: records sealed by another implementation ----------------------------------


@pytest.mark.parametrize(
    ("secret", "records"),
    [
        # The server's whole encrypted flight, EncryptedExtensions first, in one record.
        (v.SERVER_HS_TRAFFIC, [(HANDSHAKE, v.SERVER_FLIGHT, v.SERVER_FLIGHT_RECORD)]),
        (v.CLIENT_HS_TRAFFIC, [(HANDSHAKE, v.CLIENT_FINISHED, v.CLIENT_FINISHED_RECORD)]),
        (
            v.CLIENT_AP_TRAFFIC,
            [
                (APPLICATION_DATA, v.APPLICATION_DATA, v.CLIENT_DATA_RECORD),
                (ALERT, b"\x01\x00", v.CLIENT_ALERT_RECORD),
            ],
        ),
    ],
)
def test_rfc8448_records_seal_and_open(
    secret: bytes, records: list[tuple[int, bytes, bytes]]
) -> None:
    sealer, opener = AES128.make_protection(secret), AES128.make_protection(secret)
    for content_type, payload, wire in records:
        assert seal(sealer, content_type, payload) == wire
        assert open_record(opener, wire) == (content_type, payload)


def test_rfc8448_server_records_after_the_ticket() -> None:
    """The server's application data and alert follow its NewSessionTicket (sequence 0)."""
    sealer = AES128.make_protection(v.SERVER_AP_TRAFFIC)
    seal(sealer, HANDSHAKE, b"the ticket")
    assert seal(sealer, APPLICATION_DATA, v.APPLICATION_DATA) == v.SERVER_DATA_RECORD
    assert seal(sealer, ALERT, b"\x01\x00") == v.SERVER_ALERT_RECORD


def test_parameters_for_the_trace() -> None:
    protection = AES128.make_protection(v.SERVER_HS_TRAFFIC)
    nonce, explicit, aad = protection.parameters(0, HANDSHAKE, len(v.SERVER_FLIGHT))
    assert nonce == v.SERVER_HS_IV
    assert explicit == b""
    assert aad == v.SERVER_FLIGHT_RECORD[:5]
    assert protection.parameters(1, HANDSHAKE, 0).nonce[-1] == v.SERVER_HS_IV[-1] ^ 1


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", SUITE_IDS)
def test_round_trip_through_the_record_reader(suite_id: int) -> None:
    sealer, opener = pair(TLS13_SUITES_BY_ID[suite_id])
    records = [
        (HANDSHAKE, b"\x08\x00\x00\x02\x00\x00"),
        (APPLICATION_DATA, b""),
        (APPLICATION_DATA, os.urandom(2**14)),
        (ALERT, b"\x01\x00"),
    ]
    out: list[bytes] = []
    for content_type, payload in records:
        sealer.seal_into(out, content_type, payload)
    wire = b"".join(out)
    assert all(wire[i] == APPLICATION_DATA for i in (0, 5 + 6 + 17))  # every outer type hidden
    reader = RecordReader(opener)
    reader.feed(wire)
    got = []
    while (record := reader.next_record()) is not None:
        got.append((record[0], bytes(record[1])))
    assert got == records
    assert sealer.next_sequence == opener.next_sequence == 4


@pytest.mark.parametrize("suite_id", SUITE_IDS)
def test_padding_up_to_the_maximum_is_accepted(suite_id: int) -> None:
    """A peer may pad (§5.4); the whole inner plaintext may be 2^14 + 1 bytes."""
    _, opener = pair(TLS13_SUITES_BY_ID[suite_id])
    assert open_record(opener, inner_record(opener, b"hi\x17" + bytes(2**14 - 2))) == (23, b"hi")
    full = os.urandom(2**14)
    assert open_record(opener, inner_record(opener, full + b"\x16")) == (22, full)
    assert open_record(opener, inner_record(opener, b"\x15" + bytes(2**14))) == (21, b"")


def test_record_limits() -> None:
    assert AES_GCM_RECORD_LIMIT == 2**24
    assert CHACHA20_RECORD_LIMIT == 2**48
    limits = {s.name: s.make_protection(bytes(48)).record_limit for s in TLS13_SUITES}
    assert limits == {
        "TLS_AES_128_GCM_SHA256": 2**24,
        "TLS_CHACHA20_POLY1305_SHA256": 2**48,
        "TLS_AES_256_GCM_SHA384": 2**24,
    }


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", SUITE_IDS)
def test_a_flipped_bit_or_wrong_sequence_is_a_bad_record_mac(suite_id: int) -> None:
    sealer, opener = pair(TLS13_SUITES_BY_ID[suite_id])
    wire = bytearray(seal(sealer, APPLICATION_DATA, b"data"))
    wire[7] ^= 1
    raises_exactly(BadRecordMac, lambda: open_record(opener, bytes(wire)))
    second = seal(sealer, APPLICATION_DATA, b"second")  # sequence 1, opener still at 0
    raises_exactly(BadRecordMac, lambda: open_record(opener, second))
    assert opener.next_sequence == 0  # a failed open leaves the sequence number alone


def test_the_header_is_authenticated() -> None:
    sealer, opener = pair(AES128)
    wire = seal(sealer, APPLICATION_DATA, b"data")
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0301, wire[5:]))


def test_a_fragment_shorter_than_the_tag_is_a_bad_record_mac() -> None:
    _, opener = pair(AES128)
    raises_exactly(BadRecordMac, lambda: opener.open(APPLICATION_DATA, 0x0303, bytes(15)))


def test_a_fragment_over_2_14_plus_256_is_a_record_overflow() -> None:
    _, opener = pair(AES128)
    big = bytes(2**14 + 257)
    raises_exactly(RecordOverflow, lambda: opener.open(APPLICATION_DATA, 0x0303, big))


def test_an_inner_plaintext_over_2_14_plus_1_is_a_record_overflow() -> None:
    _, opener = pair(AES128)
    wire = inner_record(opener, bytes(2**14 + 1) + b"\x17")
    raises_exactly(RecordOverflow, lambda: open_record(opener, wire))


def test_all_zero_inner_plaintext_is_an_unexpected_message() -> None:
    _, opener = pair(AES128)
    for inner in (b"", bytes(100)):
        wire = inner_record(opener, inner)
        raises_exactly(UnexpectedMessage, lambda wire=wire: open_record(opener, wire))


def test_change_cipher_spec_passes_through_untouched() -> None:
    _, opener = pair(AES128)
    assert opener.open(CCS, 0x0303, b"\x01") == (CCS, b"\x01")
    assert opener.open(CCS, 0x0303, b"junk") == (CCS, b"junk")  # the connection judges it
    assert opener.next_sequence == 0


def test_a_protected_change_cipher_spec_is_an_unexpected_message() -> None:
    """RFC 8446 §5: only the unprotected CCS may be dropped; sealed, it is refused."""
    sealer, opener = pair(AES128)
    wire = seal(sealer, CCS, b"\x01")
    raises_exactly(UnexpectedMessage, lambda: open_record(opener, wire))


@pytest.mark.parametrize("content_type", [HANDSHAKE, 24, 0, 255])
def test_other_unprotected_types_are_unexpected_messages(content_type: int) -> None:
    _, opener = pair(AES128)
    raises_exactly(UnexpectedMessage, lambda: opener.open(content_type, 0x0303, b"\x01\x00"))


def test_a_plaintext_alert_only_when_allowed_and_before_the_first_record() -> None:
    sealer, strict = pair(AES128)
    raises_exactly(UnexpectedMessage, lambda: strict.open(ALERT, 0x0303, b"\x02\x32"))
    secret = os.urandom(32)
    sealer, lenient = (
        AES128.make_protection(secret),
        AES128.make_protection(secret, allow_plaintext_alerts=True),
    )
    assert lenient.open(ALERT, 0x0303, b"\x02\x32") == (ALERT, b"\x02\x32")
    assert open_record(lenient, seal(sealer, HANDSHAKE, b"\x14")) == (HANDSHAKE, b"\x14")
    raises_exactly(UnexpectedMessage, lambda: lenient.open(ALERT, 0x0303, b"\x02\x32"))


def test_a_sequence_number_never_wraps() -> None:
    sealer, _ = pair(AES128)
    sealer._sequence = 2**64 - 1  # white-box: 2^64 records would take too long
    with pytest.raises(InternalError, match=r"^record sequence number exhausted$"):
        for _ in range(2):
            seal(sealer, APPLICATION_DATA, b"late")


# -- skipping refused early data (§4.2.10) ------------------------------------------------------


def test_trial_skips_records_of_another_key_until_one_opens() -> None:
    early_sealer, _ = pair(AES128)  # the client's early key, which the server refused
    sealer, opener = pair(AES128)  # the client's handshake key
    skip = SkipEarlyData(opener, 100, trial=True)
    early = [seal(early_sealer, APPLICATION_DATA, b"x" * 20) for _ in range(2)]
    for wire in early:
        assert skip.open(APPLICATION_DATA, 0x0303, wire[5:]) == (SKIPPED, b"")
    assert skip.open(CCS, 0x0303, b"\x01") == (CCS, b"\x01")  # other types reach the inner
    finished = seal(sealer, HANDSHAKE, b"\x14\x00\x00\x00")
    content_type, content = skip.open(APPLICATION_DATA, 0x0303, finished[5:])
    assert (content_type, bytes(content)) == (HANDSHAKE, b"\x14\x00\x00\x00")
    # From here on it is transparent: a record that fails is a bad_record_mac.
    late = seal(early_sealer, APPLICATION_DATA, b"late")
    raises_exactly(BadRecordMac, lambda: skip.open(APPLICATION_DATA, 0x0303, late[5:]))


def test_trial_budget_counts_fragments() -> None:
    early_sealer, _ = pair(AES128)
    _, opener = pair(AES128)
    wire = seal(early_sealer, APPLICATION_DATA, b"x" * 20)  # fragment: 20 + 1 + 16 bytes
    skip = SkipEarlyData(opener, 2 * 37, trial=True)
    for _ in range(2):
        assert skip.open(APPLICATION_DATA, 0x0303, wire[5:]) == (SKIPPED, b"")
    with pytest.raises(UnexpectedMessage, match="too much early data"):
        skip.open(APPLICATION_DATA, 0x0303, wire[5:])


def test_without_trial_every_application_data_record_is_skipped() -> None:
    """After a HelloRetryRequest the client's early data is skipped whole; its second
    ClientHello comes in plaintext through the null protection."""
    skip = SkipEarlyData(NullProtection(), 50, trial=False)
    assert skip.open(APPLICATION_DATA, 0x0303, bytes(30)) == (SKIPPED, b"")
    assert skip.open(HANDSHAKE, 0x0303, b"\x01\x00\x00\x00") == (HANDSHAKE, b"\x01\x00\x00\x00")
    assert skip.open(APPLICATION_DATA, 0x0303, bytes(20)) == (SKIPPED, b"")
    raises_exactly(UnexpectedMessage, lambda: skip.open(APPLICATION_DATA, 0x0303, b"x"))
