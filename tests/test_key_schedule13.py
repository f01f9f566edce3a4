"""The TLS 1.3 key schedule against RFC 8448's traces: every secret, key, IV, Finished and binder
pinned byte for byte (§3 full handshake, §4 resumption binder, §5 HelloRetryRequest transcript).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trio_tls.engine.crypto import key_schedule13 as ks

from . import rfc8448 as v

H = "sha256"  # RFC 8448 negotiates TLS_AES_128_GCM_SHA256 throughout


def transcript(*messages: bytes) -> bytes:
    return hashlib.sha256(b"".join(messages)).digest()


def test_hash_lengths_and_empty_hash() -> None:
    assert ks.hash_length("sha256") == 32
    assert ks.hash_length("sha384") == 48
    assert ks.empty_transcript_hash("sha384") == hashlib.sha384(b"").digest()


def test_extract_with_empty_salt_is_zero_salt() -> None:
    assert ks.hkdf_extract(H, b"", b"ikm") == ks.hkdf_extract(H, bytes(32), b"ikm")


def test_expand_label_wire_format() -> None:
    # RFC 8448 §3 prints the HkdfLabel of the handshake key: 00 10 09 "tls13 key" 00.
    info_key = bytes.fromhex("001009746c733133206b657900")
    assert hmac.digest(v.SERVER_HS_TRAFFIC, info_key + b"\x01", H)[:16] == v.SERVER_HS_KEY
    assert ks.hkdf_expand_label(H, v.SERVER_HS_TRAFFIC, b"key", b"", 16) == v.SERVER_HS_KEY


def test_expand_beyond_one_block() -> None:
    """Lengths over HashLen chain blocks (RFC 5869 §2.3); TLS 1.3 itself never needs it."""
    long = ks.hkdf_expand_label(H, bytes(32), b"x", b"", 80)
    assert len(long) == 80
    assert long[:32] != long[32:64]


def test_simple_handshake_secrets() -> None:
    """§3: early, handshake and master secrets and the four traffic secrets."""
    early = ks.early_secret(H, None)
    assert early == v.EARLY_SECRET
    handshake = ks.handshake_secret(H, early, v.ECDHE_SHARED)
    assert handshake == v.HANDSHAKE_SECRET
    hello_hash = transcript(v.CLIENT_HELLO, v.SERVER_HELLO)
    assert hello_hash == v.HELLO_HASH
    assert ks.derive_secret(H, handshake, b"c hs traffic", hello_hash) == v.CLIENT_HS_TRAFFIC
    assert ks.derive_secret(H, handshake, b"s hs traffic", hello_hash) == v.SERVER_HS_TRAFFIC
    master = ks.master_secret(H, handshake)
    assert master == v.MASTER_SECRET
    finished_hash = transcript(
        v.CLIENT_HELLO,
        v.SERVER_HELLO,
        v.ENCRYPTED_EXTENSIONS,
        v.CERTIFICATE,
        v.CERTIFICATE_VERIFY,
        v.SERVER_FINISHED,
    )
    assert finished_hash == v.SERVER_FINISHED_HASH
    assert ks.derive_secret(H, master, b"c ap traffic", finished_hash) == v.CLIENT_AP_TRAFFIC
    assert ks.derive_secret(H, master, b"s ap traffic", finished_hash) == v.SERVER_AP_TRAFFIC


@pytest.mark.parametrize(
    ("secret", "key", "iv"),
    [
        (v.SERVER_HS_TRAFFIC, v.SERVER_HS_KEY, v.SERVER_HS_IV),
        (v.CLIENT_HS_TRAFFIC, v.CLIENT_HS_KEY, v.CLIENT_HS_IV),
        (v.SERVER_AP_TRAFFIC, v.SERVER_AP_KEY, v.SERVER_AP_IV),
        (v.CLIENT_AP_TRAFFIC, v.CLIENT_AP_KEY, v.CLIENT_AP_IV),
    ],
)
def test_traffic_keys(secret: bytes, key: bytes, iv: bytes) -> None:
    assert ks.traffic_key_iv(H, secret, 16) == (key, iv)


def test_finished() -> None:
    """§3: both Finished messages, each over its own transcript."""
    server_hash = transcript(
        v.CLIENT_HELLO, v.SERVER_HELLO, v.ENCRYPTED_EXTENSIONS, v.CERTIFICATE, v.CERTIFICATE_VERIFY
    )
    server = ks.finished_verify_data(H, v.SERVER_HS_TRAFFIC, server_hash)
    assert server == v.SERVER_FINISHED_VERIFY
    assert b"\x14\x00\x00\x20" + server == v.SERVER_FINISHED
    client = ks.finished_verify_data(H, v.CLIENT_HS_TRAFFIC, v.SERVER_FINISHED_HASH)
    assert client == v.CLIENT_FINISHED_VERIFY


def test_resumption_master_and_ticket_psk() -> None:
    client_finished_hash = transcript(
        v.CLIENT_HELLO,
        v.SERVER_HELLO,
        v.ENCRYPTED_EXTENSIONS,
        v.CERTIFICATE,
        v.CERTIFICATE_VERIFY,
        v.SERVER_FINISHED,
        v.CLIENT_FINISHED,
    )
    assert client_finished_hash == v.CLIENT_FINISHED_HASH
    resumption = ks.derive_secret(H, v.MASTER_SECRET, b"res master", client_finished_hash)
    assert resumption == v.RESUMPTION_MASTER
    assert ks.resumption_psk(H, resumption, v.TICKET_NONCE) == v.TICKET_PSK


def test_resumed_binder() -> None:
    """§4: the PSK's early secret, the binder key, and the binder over the ClientHello cut
    before its binders list."""
    early = ks.early_secret(H, v.TICKET_PSK)
    assert early == v.RESUMED_EARLY_SECRET
    key = ks.binder_key(H, early)
    assert key == v.BINDER_KEY
    binder_hash = transcript(v.RESUMED_CLIENT_HELLO_PREFIX)
    assert binder_hash == v.BINDER_HASH
    assert ks.finished_verify_data(H, key, binder_hash) == v.BINDER


def test_hello_retry_message_hash() -> None:
    """§5: with ClientHello1 replaced by message_hash, the transcript up to ServerHello hashes
    to the value the trace derives its handshake traffic secrets from."""
    synthetic = ks.message_hash(H, transcript(v.HRR_CLIENT_HELLO1))
    assert synthetic[:4] == bytes((254, 0, 0, 32))
    hello_hash = transcript(synthetic, v.HRR, v.HRR_CLIENT_HELLO2, v.HRR_SERVER_HELLO)
    assert hello_hash == v.HRR_HELLO_HASH


def test_key_update_chain() -> None:
    """§7.2: traffic upd is Expand-Label(secret, "traffic upd", "", HashLen), each step new."""
    first = ks.next_traffic_secret(H, v.SERVER_AP_TRAFFIC)
    expected = ks.hkdf_expand_label(H, v.SERVER_AP_TRAFFIC, b"traffic upd", b"", 32)
    assert first == expected
    assert ks.next_traffic_secret(H, first) not in (first, v.SERVER_AP_TRAFFIC)


def test_sha384_lengths() -> None:
    early = ks.early_secret("sha384", None)
    assert len(early) == 48
    handshake = ks.handshake_secret("sha384", early, bytes(32))
    assert len(ks.master_secret("sha384", handshake)) == 48
    key, iv = ks.traffic_key_iv("sha384", handshake, 32)
    assert (len(key), len(iv)) == (32, 12)
    assert ks.message_hash("sha384", bytes(48))[:4] == bytes((254, 0, 0, 48))
