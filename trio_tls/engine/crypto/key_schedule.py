"""The TLS 1.2 key schedule: PRF, master secret, key block, Finished, transcript.

RFC 5246 §5 (PRF as P_hash with the suite's hash), §8.1 (master secret), §6.3 (key block),
§7.4.9 (verify_data); RFC 7627 §4 (extended master secret over the session hash). HMAC comes from
the standard library's OpenSSL binding: one C call per block, so the whole PRF for a handshake is
a few dozen microseconds.
"""

from __future__ import annotations

import hashlib
import hmac

import attrs

MASTER_SECRET_LENGTH = 48
VERIFY_DATA_LENGTH = 12


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) = P_<hash>(secret, label + seed), cut to `length` bytes."""
    label_seed = label + seed
    digest = hmac.digest
    output = bytearray()
    a = label_seed
    while len(output) < length:
        a = digest(secret, a, hash_name)
        output += digest(secret, a + label_seed, hash_name)
    return bytes(output[:length])


def master_secret(
    hash_name: str, pre_master_secret: bytes, client_random: bytes, server_random: bytes
) -> bytes:
    return prf(
        hash_name,
        pre_master_secret,
        b"master secret",
        client_random + server_random,
        MASTER_SECRET_LENGTH,
    )


def extended_master_secret(hash_name: str, pre_master_secret: bytes, session_hash: bytes) -> bytes:
    """RFC 7627 §4: binds the master secret to the whole handshake up to ClientKeyExchange."""
    return prf(
        hash_name, pre_master_secret, b"extended master secret", session_hash, MASTER_SECRET_LENGTH
    )


@attrs.frozen
class TrafficKeys:
    """The AEAD keys and IVs of both directions (AEAD suites have no MAC keys)."""

    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def key_block(
    hash_name: str,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
    key_length: int,
    iv_length: int,
) -> TrafficKeys:
    """RFC 5246 §6.3: note the seed is server_random + client_random here."""
    block = prf(
        hash_name,
        master,
        b"key expansion",
        server_random + client_random,
        2 * (key_length + iv_length),
    )
    k, i = key_length, iv_length
    return TrafficKeys(
        client_key=block[:k],
        server_key=block[k : 2 * k],
        client_iv=block[2 * k : 2 * k + i],
        server_iv=block[2 * k + i : 2 * k + 2 * i],
    )


def verify_data(hash_name: str, master: bytes, label: bytes, handshake_hash: bytes) -> bytes:
    """RFC 5246 §7.4.9, label b"client finished" or b"server finished"."""
    return prf(hash_name, master, label, handshake_hash, VERIFY_DATA_LENGTH)


class Transcript:
    """Running hash of the handshake messages (headers included), with cheap snapshots.

    With `keep_messages`, the messages themselves are kept too: a client's CertificateVerify
    signs them whole (RFC 5246 §7.4.8), with a hash of its choosing, not the PRF's.
    """

    __slots__ = ("_hash", "_messages")

    def __init__(self, hash_name: str, *, keep_messages: bool = False) -> None:
        self._hash = hashlib.new(hash_name)
        self._messages: list[bytes] | None = [] if keep_messages else None

    def update(self, message: bytes) -> None:
        self._hash.update(message)
        if self._messages is not None:
            self._messages.append(message)

    def messages(self) -> bytes:
        """Every message so far, concatenated; only with `keep_messages`."""
        if self._messages is None:
            raise ValueError("this transcript keeps no messages")
        return b"".join(self._messages)

    def digest(self) -> bytes:
        return self._hash.copy().digest()

    def digest_with(self, more: bytes) -> bytes:
        """The hash of the transcript followed by `more`, leaving the transcript as it is: a
        PSK binder covers a ClientHello cut short (RFC 8446 §4.2.11.2)."""
        hash_ = self._hash.copy()
        hash_.update(more)
        return hash_.digest()
