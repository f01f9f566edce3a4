"""The TLS 1.3 key schedule (RFC 8446 §7.1), as pure functions of bytes.

In words, the diagram of §7.1 is three HKDF-Extract steps chained by "derived" secrets:

- Early Secret = HKDF-Extract(salt 0, IKM = the PSK, or HashLen zeros without one). From it come
  the binder key ("res binder"), the client's early traffic secret and the early exporter secret.
- Handshake Secret = HKDF-Extract(salt = Derive-Secret(Early Secret, "derived", ""), IKM = the
  (EC)DHE shared secret). From it, over ClientHello..ServerHello, come the client and server
  handshake traffic secrets ("c hs traffic", "s hs traffic").
- Master Secret = HKDF-Extract(salt = Derive-Secret(Handshake Secret, "derived", ""), IKM =
  HashLen zeros). From it, over ClientHello..server Finished, come the application traffic
  secrets ("c ap traffic", "s ap traffic") and the exporter secret; over ClientHello..client
  Finished, the resumption master secret ("res master").

Each traffic secret gives its record key and IV (§7.3) and, for the handshake ones, the
Finished key (§4.4.4); application secrets roll forward by "traffic upd" (§7.2). A "salt" of 0
is HashLen zero bytes. Derive-Secret here takes the transcript hash, not the messages: the
caller keeps one running hash per connection, and hashing the messages again would double the
work. HMAC is the standard library's one-C-call hmac.digest, as in the 1.2 PRF.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct

_LABEL_PREFIX = b"tls13 "
_IV_LENGTH = 12
_MESSAGE_HASH = 254  # HandshakeType message_hash (RFC 8446 §4.4.1)


@functools.cache
def hash_length(hash_name: str) -> int:
    return hashlib.new(hash_name).digest_size


@functools.cache
def empty_transcript_hash(hash_name: str) -> bytes:
    """Hash(""): the context of every "derived" secret."""
    return hashlib.new(hash_name).digest()


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 §2.2: HMAC(salt, IKM); an empty salt means HashLen zeros."""
    return hmac.digest(salt or bytes(hash_length(hash_name)), ikm, hash_name)


def _hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 §2.3. TLS 1.3 never asks for more than one block (at most HashLen bytes), so
    that case is a single HMAC; the loop is there for completeness."""
    if length <= hash_length(hash_name):
        return hmac.digest(prk, info + b"\x01", hash_name)[:length]
    output = b""
    block = b""
    counter = 1
    while len(output) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), hash_name)
        output += block
        counter += 1
    return output[:length]


@functools.cache
def _label_info(length: int, label: bytes) -> bytes:
    """HkdfLabel (§7.1) up to its context: the same few labels, encoded once."""
    full_label = _LABEL_PREFIX + label
    return struct.pack("!HB", length, len(full_label)) + full_label


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (§7.1); `label` without its b"tls13 " prefix."""
    info = _label_info(length, label) + bytes((len(context),)) + context
    return _hkdf_expand(hash_name, secret, info, length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret (§7.1), given Transcript-Hash(Messages) already computed."""
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, hash_length(hash_name))


def _derived(hash_name: str, secret: bytes) -> bytes:
    return derive_secret(hash_name, secret, b"derived", empty_transcript_hash(hash_name))


@functools.cache
def _early_secret_without_psk(hash_name: str) -> bytes:
    return hkdf_extract(hash_name, b"", bytes(hash_length(hash_name)))


@functools.cache
def _derived_without_psk(hash_name: str) -> bytes:
    return _derived(hash_name, _early_secret_without_psk(hash_name))


def early_secret(hash_name: str, psk: bytes | None) -> bytes:
    """Without a PSK the Early Secret, and the salt it gives the next step, are constants:
    computed once, and recognised by identity in handshake_secret."""
    if psk is None:
        return _early_secret_without_psk(hash_name)
    return hkdf_extract(hash_name, b"", psk)


def handshake_secret(hash_name: str, early: bytes, shared_secret: bytes) -> bytes:
    if early is _early_secret_without_psk(hash_name):
        salt = _derived_without_psk(hash_name)
    else:
        salt = _derived(hash_name, early)
    return hkdf_extract(hash_name, salt, shared_secret)


def master_secret(hash_name: str, handshake: bytes) -> bytes:
    return hkdf_extract(hash_name, _derived(hash_name, handshake), bytes(hash_length(hash_name)))


def traffic_key_iv(hash_name: str, secret: bytes, key_length: int) -> tuple[bytes, bytes]:
    """The record key and IV of a traffic secret (§7.3)."""
    key = hkdf_expand_label(hash_name, secret, b"key", b"", key_length)
    iv = hkdf_expand_label(hash_name, secret, b"iv", b"", _IV_LENGTH)
    return key, iv


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes) -> bytes:
    """Finished.verify_data (§4.4.4): HMAC(finished_key, transcript hash). The base key is the
    sender's handshake traffic secret, or the binder key for a PSK binder (§4.2.11.2)."""
    finished_key = hkdf_expand_label(hash_name, base_key, b"finished", b"", hash_length(hash_name))
    return hmac.digest(finished_key, transcript_hash, hash_name)


def next_traffic_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (§7.2)."""
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", hash_length(hash_name))


def resumption_psk(hash_name: str, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
    """The PSK a NewSessionTicket stands for (§4.6.1)."""
    return hkdf_expand_label(
        hash_name, resumption_master_secret, b"resumption", ticket_nonce, hash_length(hash_name)
    )


def binder_key(hash_name: str, early: bytes) -> bytes:
    """The binder key of a resumption PSK (§7.1; external PSKs, which we never accept, would use
    "ext binder")."""
    return derive_secret(hash_name, early, b"res binder", empty_transcript_hash(hash_name))


def message_hash(hash_name: str, client_hello_hash: bytes) -> bytes:
    """The synthetic message that replaces ClientHello1 in the transcript after a
    HelloRetryRequest (§4.4.1), so a stateless server need only remember its hash."""
    return bytes((_MESSAGE_HASH, 0, 0, hash_length(hash_name))) + client_hello_hash
