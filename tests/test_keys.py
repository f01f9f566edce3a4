"""The TLS 1.2 key schedule against published vectors, an independent PRF, and OpenSSL itself.

Expected values never come from trio_tls.keys: the PRF answers are the published vectors (IETF
TLS list, msg03416, as carried by GnuTLS's tests/tls12-prf.c and other stacks; re-checked with
`openssl kdf ... TLS1-PRF`), the derivations are checked against a separate P_hash written here
with the standard library's hmac, and the last tests let OpenSSL's own records be the judge.
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib

import pytest
import trustme
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.key_schedule import (
    MASTER_SECRET_LENGTH,
    VERIFY_DATA_LENGTH,
    Transcript,
    extended_master_secret,
    key_block,
    master_secret,
    prf,
    verify_data,
)
from trio_tls.engine.crypto.suites import ALL_SUITES, CipherSuite, suite_by_name
from trio_tls.engine.events import (
    HandshakeComplete,
    MessageObserved,
    Observation,
    SecretsEstablished,
)
from trio_tls.engine.record.protection import Buffer
from trio_tls.engine.wire.messages import ServerHello, encode_handshake

from .openssl_peer import OpenSSLClient, client_context

# (hash, secret, seed, expected output); label "test label" throughout.
PRF_VECTORS = [
    pytest.param(
        "sha256",
        "9bbe436ba940f017b17652849a71db35",
        "a0ba9f936cda311827a6f796ffd5198c",
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66",
        id="ietf-sha256-100",
    ),
    pytest.param(
        "sha384",
        "b80b733d6ceefcdc71566ea48e5567df",
        "cd665cf6a8447dd6ff8b27555edb7465",
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
        "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
        "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
        "91c8f3a26854308d5eaa3be85e0990703d73e56f",
        id="ietf-sha384-148",
    ),
    # GnuTLS tests/tls12-prf.c sha256_test1 and sha256_test2 (other output lengths).
    pytest.param(
        "sha256",
        "0450b0ea9ecd3602ee0d76c5c3c86f4a",
        "207acc0254b867f5b925b45a33601d8b",
        "ae679e0e714f5975763768b166979e1d",
        id="gnutls-sha256-16",
    ),
    pytest.param(
        "sha256",
        "34204a9df0be6eb4e925a8027cf6c602",
        "98b2c40bcd664c83bb920c18201a6395",
        "afa9312453c22fa83d2b511b372d73a402a2a62873239a51fade45082faf3fd2"
        "bb7ffb3e9bf36e28b3141aaba484005332a9f9e388a4d329f1587a4b317da077"
        "08ea1ba95a53f8786724bd83ce4b03af",
        id="gnutls-sha256-80",
    ),
]


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """RFC 5246 §5 written out again, independently of trio_tls.keys:

    P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...
    A(0) = seed, A(i) = HMAC(secret, A(i-1)).
    """
    output = b""
    a = seed
    while len(output) < length:
        a = hmac.new(secret, a, hash_name).digest()
        output += hmac.new(secret, a + seed, hash_name).digest()
    return output[:length]


@pytest.mark.parametrize(("hash_name", "secret", "seed", "expected"), PRF_VECTORS)
def test_prf_known_answers(hash_name: str, secret: str, seed: str, expected: str) -> None:
    out = prf(
        hash_name, bytes.fromhex(secret), b"test label", bytes.fromhex(seed), len(expected) // 2
    )
    assert out.hex() == expected


@pytest.mark.parametrize(("hash_name", "secret", "seed", "expected"), PRF_VECTORS)
def test_reference_p_hash_matches_the_vectors_too(
    hash_name: str, secret: str, seed: str, expected: str
) -> None:
    # The independent P_hash used as an oracle below is itself held to the published vectors.
    out = p_hash(hash_name, bytes.fromhex(secret), b"test label" + bytes.fromhex(seed), 200)
    assert out[: len(expected) // 2].hex() == expected


@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 64, 65, 100, 1000])
def test_prf_output_length_and_prefix_property(length: int) -> None:
    secret, seed = b"s" * 48, b"r" * 64
    out = prf("sha256", secret, b"label", seed, length)
    assert len(out) == length
    # P_hash is a stream: a shorter request is a prefix of a longer one.
    assert prf("sha256", secret, b"label", seed, 1000)[:length] == out


CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(100, 132))
PRE_MASTER = bytes.fromhex("8f" * 32)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_master_secret(hash_name: str) -> None:
    master = master_secret(hash_name, PRE_MASTER, CLIENT_RANDOM, SERVER_RANDOM)
    assert len(master) == MASTER_SECRET_LENGTH == 48
    # RFC 5246 §8.1: seed is ClientHello.random + ServerHello.random, in that order.
    assert master == p_hash(
        hash_name, PRE_MASTER, b"master secret" + CLIENT_RANDOM + SERVER_RANDOM, 48
    )
    assert master != master_secret(hash_name, PRE_MASTER, SERVER_RANDOM, CLIENT_RANDOM)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_extended_master_secret_uses_its_own_label_and_the_session_hash(hash_name: str) -> None:
    session_hash = hashlib.new(hash_name, b"ClientHello...ClientKeyExchange").digest()
    ems = extended_master_secret(hash_name, PRE_MASTER, session_hash)
    # RFC 7627 §4: PRF(pre_master_secret, "extended master secret", session_hash)[0..47]
    label = b"extended master secret"
    assert ems == p_hash(hash_name, PRE_MASTER, label + session_hash, 48)
    assert len(ems) == 48
    assert ems != prf(hash_name, PRE_MASTER, b"master secret", session_hash, 48)


@pytest.mark.parametrize("suite", ALL_SUITES, ids=lambda s: s.name)
def test_key_block_splits_in_rfc_order(suite: CipherSuite) -> None:
    master = bytes(range(48))
    keys = key_block(
        suite.prf_hash, master, CLIENT_RANDOM, SERVER_RANDOM, suite.key_length, suite.iv_length
    )
    k, i = suite.key_length, suite.iv_length
    # RFC 5246 §6.3: seed is server_random + client_random; the block is cut as
    # client_write_key, server_write_key, client_write_IV, server_write_IV (no MAC keys: AEAD).
    block = p_hash(
        suite.prf_hash, master, b"key expansion" + SERVER_RANDOM + CLIENT_RANDOM, 2 * (k + i)
    )
    assert keys.client_key == block[:k]
    assert keys.server_key == block[k : 2 * k]
    assert keys.client_iv == block[2 * k : 2 * k + i]
    assert keys.server_iv == block[2 * k + i :]
    assert (len(keys.client_key), len(keys.server_key)) == (k, k)
    assert (len(keys.client_iv), len(keys.server_iv)) == (i, i)
    assert len({keys.client_key, keys.server_key}) == 2


def test_suite_key_lengths_match_their_rfcs() -> None:
    lengths = {s.id: (s.key_length, s.iv_length, s.prf_hash) for s in ALL_SUITES}
    assert lengths == {
        0xC02B: (16, 4, "sha256"),  # RFC 5289 / RFC 5288 §3: 4-byte salt
        0xC02F: (16, 4, "sha256"),
        0xC02C: (32, 4, "sha384"),
        0xC030: (32, 4, "sha384"),
        0xCCA9: (32, 12, "sha256"),  # RFC 7905 §2: 12-byte fixed IV
        0xCCA8: (32, 12, "sha256"),
    }


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("label", [b"client finished", b"server finished"])
def test_verify_data(hash_name: str, label: bytes) -> None:
    master = bytes(range(48))
    handshake_hash = hashlib.new(hash_name, b"all the handshake messages").digest()
    out = verify_data(hash_name, master, label, handshake_hash)
    assert len(out) == VERIFY_DATA_LENGTH == 12
    assert out == p_hash(hash_name, master, label + handshake_hash, 12)
    other = b"server finished" if label == b"client finished" else b"client finished"
    assert out != verify_data(hash_name, master, other, handshake_hash)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_transcript_digest_is_a_snapshot(hash_name: str) -> None:
    messages = [b"\x01\x00\x00\x03abc", b"\x02\x00\x00\x01d", b"\x0b" + bytes(1000)]
    transcript = Transcript(hash_name)
    assert transcript.digest() == hashlib.new(hash_name).digest()
    digests = []
    for message in messages:
        transcript.update(message)
        digests.append(transcript.digest())
    first = digests[0]
    transcript.update(b"more")
    assert first == hashlib.new(hash_name, messages[0]).digest()  # unchanged by later updates
    for n, digest in enumerate(digests, start=1):
        assert digest == hashlib.new(hash_name, b"".join(messages[:n])).digest()
    assert transcript.digest() == hashlib.new(hash_name, b"".join(messages) + b"more").digest()
    assert transcript.digest() == transcript.digest()  # digest() does not consume the state
    assert len(first) == hashlib.new(hash_name).digest_size


# -- OpenSSL as the judge -----------------------------------------------------------------------


class RecordingServer(ServerConnection):
    """A ServerConnection that keeps a copy of every byte in and out."""

    def __init__(self, config: ServerConfig, observer: list[Observation]) -> None:
        super().__init__(config, observer=observer.append)
        self.received = bytearray()
        self.sent = bytearray()

    def receive_data(self, data: Buffer) -> None:
        self.received += data
        super().receive_data(data)

    def data_to_send(self) -> bytearray:
        out = super().data_to_send()
        self.sent += out
        return out


def split_records(stream: bytes) -> list[tuple[int, bytes]]:
    """(content type, fragment) of each record, parsed here rather than by trio_tls.records."""
    records = []
    pos = 0
    while pos < len(stream):
        content_type = stream[pos]
        assert stream[pos + 1 : pos + 3] in (b"\x03\x01", b"\x03\x03")
        length = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        records.append((content_type, stream[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(stream)
    return records


def open_record(
    suite: CipherSuite, key: bytes, iv: bytes, sequence: int, content_type: int, fragment: bytes
) -> bytes:
    """Decrypt one TLS 1.2 AEAD record straight from RFC 5288 §3 / RFC 7905 §2."""
    seq = sequence.to_bytes(8, "big")
    if "CHACHA20" in suite.name:
        nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + seq, strict=True))
        ciphertext = fragment
        aead: AESGCM | ChaCha20Poly1305 = ChaCha20Poly1305(key)
    else:
        nonce = iv + fragment[:8]  # salt || explicit nonce from the record
        ciphertext = fragment[8:]
        aead = AESGCM(key)
    aad = seq + bytes([content_type]) + b"\x03\x03" + (len(ciphertext) - 16).to_bytes(2, "big")
    return aead.decrypt(nonce, ciphertext, aad)


@pytest.mark.parametrize(
    "openssl_name",
    [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ],
)
@pytest.mark.parametrize("ems", [True, False], ids=["ems", "no-ems"])
def test_keys_from_openssl_keylog_open_openssl_records(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    tmp_path: pathlib.Path,
    openssl_name: str,
    ems: bool,
) -> None:
    keylog = tmp_path / "keys.log"
    ctx = client_context(ca, openssl_name, ems=ems)
    ctx.keylog_filename = str(keylog)
    seen: list[Observation] = []
    server = RecordingServer(rsa_config, seen)
    client = OpenSSLClient(server, ctx)
    assert [type(e) for e in client.handshake()] == [HandshakeComplete]
    cipher = client.ssl.cipher()
    assert cipher is not None
    assert cipher[0] == openssl_name
    message = b"the first application data OpenSSL sent"
    client.send(message)

    # The master secret as OpenSSL logged it (NSS key log format), not as we computed it.
    lines = [line.split() for line in keylog.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1
    tag, client_random_hex, master_hex = lines[0]
    assert tag == "CLIENT_RANDOM"
    client_random, master = bytes.fromhex(client_random_hex), bytes.fromhex(master_hex)

    # What OpenSSL sent: ClientHello, ClientKeyExchange, CCS, Finished, application data.
    client_records = split_records(bytes(server.received))
    assert [t for t, _ in client_records] == [22, 22, 20, 22, 23]
    (_, hello), (_, key_exchange), _, (_, finished_record), (_, data_record) = client_records
    # And our answer: the first flight in plaintext, then CCS and Finished.
    server_records = split_records(bytes(server.sent))
    assert [t for t, _ in server_records] == [22, 20, 22]
    (_, server_flight), _, (_, server_finished_record) = server_records
    assert hello[6:38] == client_random
    assert server_flight[0] == 2  # ServerHello first: type, length, version, then the random
    server_random = server_flight[6:38]
    # The observer saw the ServerHello that went out, byte for byte.
    observed = [
        o.message
        for o in seen
        if isinstance(o, MessageObserved) and isinstance(o.message, ServerHello)
    ]
    assert len(observed) == 1
    sent_hello = encode_handshake(observed[0])
    assert server_flight.startswith(sent_hello)
    assert len([o for o in seen if isinstance(o, SecretsEstablished)]) == 1

    suite = suite_by_name(openssl_name)
    keys = key_block(
        suite.prf_hash, master, client_random, server_random, suite.key_length, suite.iv_length
    )

    # Our key block opens OpenSSL's records: its Finished (sequence 0) and data (sequence 1).
    assert open_record(suite, keys.client_key, keys.client_iv, 1, 23, data_record) == message
    client_finished = open_record(suite, keys.client_key, keys.client_iv, 0, 22, finished_record)
    # OpenSSL's verify_data is our verify_data over the transcript as it went over the wire.
    handshake_messages = hello + server_flight + key_exchange
    expected_client = verify_data(
        suite.prf_hash,
        master,
        b"client finished",
        hashlib.new(suite.prf_hash, handshake_messages).digest(),
    )
    assert client_finished == b"\x14\x00\x00\x0c" + expected_client

    # And the server direction: our Finished opens with the server half of the key block.
    server_finished = open_record(
        suite, keys.server_key, keys.server_iv, 0, 22, server_finished_record
    )
    expected_server = verify_data(
        suite.prf_hash,
        master,
        b"server finished",
        hashlib.new(suite.prf_hash, handshake_messages + client_finished).digest(),
    )
    assert server_finished == b"\x14\x00\x00\x0c" + expected_server

    # Keys cut from the wrong half do not open OpenSSL's record.
    with pytest.raises(InvalidTag):
        open_record(suite, keys.server_key, keys.server_iv, 1, 23, data_record)
