"""A TLS 1.3 client assembled from tlslite-ng's parts, that can misbehave at every step.

Its ClientHello and extensions are tlslite-ng's classes, its key shares tlslite-ng's key exchange
(pure-Python X25519 and python-ecdsa's curves, kyber-py's ML-KEM), its key schedule tlslite-ng's
HKDF-Expand-Label, and its records are sealed and opened by tlslite-ng's AEADs: the bytes the
server checks come from another implementation than the engine's. With `fast`, the ECDH and the
AEADs are `cryptography`'s instead (the fuzz harness runs a million of these).

The client stops wherever a test wants: `hello()` builds a ClientHello to bend, `read_flight()`
takes the server's answer and derives the handshake keys, `sealed()` protects any record under
the client's current write key, `finished()` moves to the application keys. Nothing is checked
that the tests do not ask for, except the server's Finished, which must verify.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tlslite.constants import GroupName, SignatureScheme
from tlslite.extensions import (
    ClientKeyShareExtension,
    KeyShareEntry,
    PreSharedKeyExtension,
    PskIdentity,
    PskKeyExchangeModesExtension,
    SignatureAlgorithmsExtension,
    SNIExtension,
    SupportedGroupsExtension,
    SupportedVersionsExtension,
    TLSExtension,
)
from tlslite.keyexchange import ECDHKeyExchange, KEMKeyExchange
from tlslite.mathtls import HKDF_expand_label
from tlslite.messages import ClientHello
from tlslite.utils.cipherfactory import createAESGCM, createCHACHA20

HANDSHAKE, CCS, ALERT, APPLICATION_DATA = 22, 20, 21, 23
SUITES = {0x1301: ("sha256", 16), 0x1302: ("sha384", 32), 0x1303: ("sha256", 32)}
SCHEMES = (
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
)
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
X25519MLKEM768 = 0x11EC
FAST_CURVES = {GroupName.secp256r1: ec.SECP256R1(), GroupName.secp384r1: ec.SECP384R1()}


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def raw_extension(extension_type: int, data: bytes) -> TLSExtension:
    """An extension of any type with `data` as its body, as it is."""
    return TLSExtension(extType=extension_type).create(bytearray(data))


def split_records(data: bytes | bytearray) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    while offset < len(data):
        content_type, _, length = struct.unpack_from("!BHH", data, offset)
        out.append((content_type, bytes(data[offset + 5 : offset + 5 + length])))
        offset += 5 + length
    assert offset == len(data), "a partial record"
    return out


def split_messages(data: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(data):
        length = int.from_bytes(data[offset + 1 : offset + 4], "big")
        out.append(data[offset : offset + 4 + length])
        offset += 4 + length
    assert offset == len(data), "a partial handshake message"
    return out


class Direction:
    """One direction's traffic secret, AEAD and sequence number (RFC 8446 §5.3, §7.3)."""

    def __init__(self, hash_name: str, key_length: int, secret: bytes, *, fast: bool) -> None:
        self.hash_name, self.key_length, self.fast = hash_name, key_length, fast
        self.secret = secret
        key = bytes(HKDF_expand_label(secret, b"key", b"", key_length, hash_name))
        self.iv = int.from_bytes(HKDF_expand_label(secret, b"iv", b"", 12, hash_name), "big")
        chacha = key_length == 32 and hash_name == "sha256"
        if fast:
            self.aead: Any = ChaCha20Poly1305(key) if chacha else AESGCM(key)
        else:
            self.aead = (createCHACHA20 if chacha else createAESGCM)(bytearray(key))
        self.sequence = 0

    def next(self) -> Direction:
        """The next generation after a KeyUpdate (§7.2)."""
        size = hashlib.new(self.hash_name).digest_size
        secret = bytes(HKDF_expand_label(self.secret, b"traffic upd", b"", size, self.hash_name))
        return Direction(self.hash_name, self.key_length, secret, fast=self.fast)

    def _nonce(self) -> bytes:
        nonce = (self.iv ^ self.sequence).to_bytes(12, "big")
        self.sequence += 1
        return nonce

    def seal(self, inner: bytes, *, tamper: bool = False) -> bytes:
        header = struct.pack("!BHH", APPLICATION_DATA, 0x0303, len(inner) + 16)
        nonce = self._nonce()
        if self.fast:
            sealed = self.aead.encrypt(nonce, inner, header)
        else:
            sealed = bytes(self.aead.seal(bytearray(nonce), bytearray(inner), bytearray(header)))
        if tamper:
            sealed = sealed[:-1] + bytes((sealed[-1] ^ 1,))
        return header + sealed

    def open(self, fragment: bytes) -> tuple[int, bytes]:
        header = struct.pack("!BHH", APPLICATION_DATA, 0x0303, len(fragment))
        nonce = self._nonce()
        if self.fast:
            inner = self.aead.decrypt(nonce, fragment, header)
        else:
            opened = self.aead.open(bytearray(nonce), bytearray(fragment), bytearray(header))
            assert opened is not None, "a server record does not open"
            inner = bytes(opened)
        content = inner.rstrip(b"\0")
        return content[-1], content[:-1]


class KeyShare:
    """A client key share by tlslite-ng (or, fast, `cryptography`'s X25519 and ECDH)."""

    def __init__(self, group: int, *, fast: bool) -> None:
        self.group = group
        self._fast: Any = None
        if fast and group == GroupName.x25519:
            self._fast = X25519PrivateKey.generate()
            self.public = self._fast.public_key().public_bytes_raw()
            return
        if fast and group in FAST_CURVES:
            self._fast = ec.generate_private_key(FAST_CURVES[group])
            self.public = self._fast.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
            return
        self._kex: Any = (
            KEMKeyExchange(group, (3, 4))
            if group == X25519MLKEM768
            else ECDHKeyExchange(group, (3, 4))
        )
        self._private = self._kex.get_random_private_key()
        self.public = bytes(self._kex.calc_public_value(self._private))

    def shared(self, server_share: bytes) -> bytes:
        if isinstance(self._fast, X25519PrivateKey):
            return self._fast.exchange(X25519PublicKey.from_public_bytes(server_share))
        if self._fast is not None:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self._fast.curve, server_share)
            return self._fast.exchange(ec.ECDH(), peer)
        return bytes(self._kex.calc_shared_key(self._private, bytearray(server_share)))


class Client13:
    """One TLS 1.3 client connection; see the module docstring."""

    def __init__(
        self,
        *,
        groups: Sequence[int] = (GroupName.x25519, GroupName.secp256r1),
        share_groups: Sequence[int] | None = None,
        suites: Sequence[int] = (0x1301, 0x1302, 0x1303),
        session_id: bytes = b"",
        fast: bool = False,
        random: bytes | None = None,
    ) -> None:
        self.groups = tuple(groups)
        self.fast = fast
        self.shares = {
            g: KeyShare(g, fast=fast)
            for g in (self.groups[:1] if share_groups is None else share_groups)
        }
        self.suites = tuple(suites)
        self.session_id = session_id
        self.random = os.urandom(32) if random is None else random
        self.messages: list[bytes] = []  # the transcript, raw
        self.suite: int | None = None
        self.hash_name = "sha256"
        self.read_dir: Direction | None = None
        self.write_dir: Direction | None = None
        self.retry_group: int | None = None  # the group a HelloRetryRequest asked for
        self._psk: tuple[bytes, str] | None = None
        self.server_messages: list[bytes] = []
        self.client_handshake_secret = b""
        self.master_secret = b""
        self.server_ap: Direction | None = None
        self.client_ap: Direction | None = None
        self.key_updates_received = 0

    # -- the ClientHello ----------------------------------------------------------------------

    def extensions(
        self,
        *,
        versions: Sequence[tuple[int, int]] = ((3, 4), (3, 3)),
        schemes: Sequence[int] | None = SCHEMES,
        groups: Sequence[int] | None = None,
        shares: Sequence[tuple[int, bytes]] | None = None,
        server_name: bytes | None = b"localhost",
        key_share: bool = True,
    ) -> list[TLSExtension]:
        """A TLS 1.3 client's extensions: None (no versions, no groups) leaves one out, `shares`
        replaces the real shares, and key_share=False leaves that extension out."""
        out: list[TLSExtension] = []
        if server_name is not None:
            out.append(SNIExtension().create(bytearray(server_name)))
        if versions:
            out.append(SupportedVersionsExtension().create(list(versions)))
        if groups is None:
            groups = self.groups
        if groups:
            out.append(SupportedGroupsExtension().create(list(groups)))
        if schemes is not None:
            out.append(SignatureAlgorithmsExtension().create(list(schemes)))
        if shares is None:
            shares = [(g, s.public) for g, s in self.shares.items()]
        if key_share:
            entries = [KeyShareEntry().create(g, bytearray(k)) for g, k in shares]
            out.append(ClientKeyShareExtension().create(entries))
        return out

    def hello(
        self,
        *,
        extensions: Sequence[TLSExtension] | None = None,
        suites: Sequence[int] | None = None,
        version: tuple[int, int] = (3, 3),
        compression: Sequence[int] = (0,),
        session_id: bytes | None = None,
    ) -> ClientHello:
        hello = ClientHello().create(
            version,
            bytearray(self.random),
            bytearray(self.session_id if session_id is None else session_id),
            list(self.suites if suites is None else suites),
            extensions=self.extensions() if extensions is None else list(extensions),
        )
        hello.compression_methods = list(compression)
        return hello

    def hello_record(self, hello: ClientHello | None = None, *, version: int = 0x0301) -> bytes:
        """The hello framed (it becomes the start of the transcript, or follows the retry)."""
        message = bytes((self.hello() if hello is None else hello).write())
        self.messages.append(message)
        return record(HANDSHAKE, message, version)

    def psk_extensions(
        self, identity: bytes, psk: bytes, hash_name: str, modes: Sequence[int] = (1,)
    ) -> list[TLSExtension]:
        """psk_key_exchange_modes and a pre_shared_key whose binder is made for `psk`, to go
        last in a hello built with them (call `bind()` on the hello then)."""
        self._psk = (psk, hash_name)
        size = hashlib.new(hash_name).digest_size
        offer = PreSharedKeyExtension().create(
            [PskIdentity().create(bytearray(identity), 0)], [bytearray(size)]
        )
        return [PskKeyExchangeModesExtension().create(list(modes)), offer]

    def bind(self, hello: ClientHello, *, tamper: bool = False) -> ClientHello:
        """Fill in the binder of the offer made by psk_extensions() (RFC 8446 §4.2.11.2)."""
        assert self._psk is not None, "psk_extensions() first"
        psk, hash_name = self._psk
        size = hashlib.new(hash_name).digest_size
        early = hmac.new(bytes(size), psk, hash_name).digest()
        empty = hashlib.new(hash_name).digest()
        binder_key = bytes(HKDF_expand_label(early, b"res binder", empty, size, hash_name))
        offer = hello.extensions[-1]
        truncated = bytes(hello.write())[: -(2 + 1 + size)]
        transcript = hashlib.new(hash_name, b"".join(self.messages) + truncated).digest()
        finished_key = HKDF_expand_label(binder_key, b"finished", b"", size, hash_name)
        binder = hmac.new(bytes(finished_key), transcript, hash_name).digest()
        if tamper:
            binder = bytes((binder[0] ^ 1,)) + binder[1:]
        offer.binders = [bytearray(binder)]
        return hello

    # -- the server's flight ------------------------------------------------------------------

    def _hash(self) -> bytes:
        return hashlib.new(self.hash_name, b"".join(self.messages)).digest()

    def _derive(self, secret: bytes, label: bytes, transcript: bytes | None = None) -> bytes:
        size = hashlib.new(self.hash_name).digest_size
        if transcript is None:
            transcript = self._hash()
        return bytes(HKDF_expand_label(secret, label, transcript, size, self.hash_name))

    def read_flight(self, data: bytes | bytearray) -> str:
        """The server's answer to a hello: "retry" after a HelloRetryRequest (the transcript is
        rewritten as §4.4.1 says), else "flight" with the handshake keys both ways in place
        and the server's Finished checked."""
        records = split_records(data)
        content_type, fragment = records[0]
        assert content_type == HANDSHAKE, records
        server_hello = split_messages(fragment)[0]
        assert server_hello[0] == 2, server_hello[:1]
        body = server_hello[4:]
        random = body[2:34]
        sid_length = body[34]
        offset = 35 + sid_length
        self.suite = int.from_bytes(body[offset : offset + 2], "big")
        self.hash_name, key_length = SUITES[self.suite]
        extensions = self._server_extensions(body[offset + 3 :])
        if random == HRR_RANDOM:
            first = hashlib.new(self.hash_name, b"".join(self.messages)).digest()
            self.messages = [handshake(254, first), server_hello]
            self.retry_group = int.from_bytes(extensions[51], "big")
            return "retry"
        self.messages.append(server_hello)
        share = extensions[51]
        group, length = struct.unpack_from("!HH", share)
        shared = self.shares[group].shared(share[4 : 4 + length])
        size = hashlib.new(self.hash_name).digest_size
        # pre_shared_key (41) in the ServerHello: the server took our PSK (§4.2.11).
        psk = self._psk[0] if self._psk is not None and 41 in extensions else bytes(size)
        early = hmac.new(bytes(size), psk, self.hash_name).digest()
        salt = self._derive(early, b"derived", hashlib.new(self.hash_name).digest())
        handshake_secret = hmac.new(salt, shared, self.hash_name).digest()
        self.client_handshake_secret = self._derive(handshake_secret, b"c hs traffic")
        server_secret = self._derive(handshake_secret, b"s hs traffic")
        self.read_dir = Direction(self.hash_name, key_length, server_secret, fast=self.fast)
        self.write_dir = Direction(
            self.hash_name, key_length, self.client_handshake_secret, fast=self.fast
        )
        salt = self._derive(handshake_secret, b"derived", hashlib.new(self.hash_name).digest())
        self.master_secret = hmac.new(salt, bytes(size), self.hash_name).digest()
        encrypted = bytearray()
        for content_type, fragment in records[1:]:
            if content_type == CCS:
                assert fragment == b"\x01"
                continue
            inner_type, content = self.read_dir.open(fragment)
            assert inner_type == HANDSHAKE, (inner_type, content)
            encrypted += content
        self.server_messages = split_messages(bytes(encrypted))
        for message in self.server_messages[:-1]:
            self.messages.append(message)
        finished = self.server_messages[-1]
        assert finished[0] == 20, finished[:1]
        finished_key = self._derive_sized(server_secret, b"finished")
        expected = hmac.new(finished_key, self._hash(), self.hash_name).digest()
        assert finished[4:] == expected, "the server's Finished does not verify"
        self.messages.append(finished)
        self.client_ap = Direction(
            self.hash_name, key_length, self._derive(self.master_secret, b"c ap traffic"),
            fast=self.fast,
        )  # fmt: skip
        self.server_ap = Direction(
            self.hash_name, key_length, self._derive(self.master_secret, b"s ap traffic"),
            fast=self.fast,
        )  # fmt: skip
        self.read_dir = self.server_ap  # the server's next records are under its application key
        return "flight"

    def _derive_sized(self, secret: bytes, label: bytes) -> bytes:
        size = hashlib.new(self.hash_name).digest_size
        return bytes(HKDF_expand_label(secret, label, b"", size, self.hash_name))

    @staticmethod
    def _server_extensions(data: bytes) -> dict[int, bytes]:
        out, offset = {}, 2
        while offset < len(data):
            ext_type, length = struct.unpack_from("!HH", data, offset)
            out[ext_type] = data[offset + 4 : offset + 4 + length]
            offset += 4 + length
        return out

    def server_sent(self, msg_type: int) -> bool:
        return any(m[0] == msg_type for m in self.server_messages)

    # -- the client's flight and after ----------------------------------------------------------

    def sealed(
        self, content_type: int, payload: bytes, *, padding: int = 0, tamper: bool = False
    ) -> bytes:
        """A record under the client's current write key, padded with `padding` zeros."""
        assert self.write_dir is not None, "read_flight() first"
        inner = payload + bytes((content_type,)) + bytes(padding)
        return self.write_dir.seal(inner, tamper=tamper)

    def sealed_inner(self, inner: bytes) -> bytes:
        """A record whose whole TLSInnerPlaintext is `inner` (an all-padding one, say)."""
        assert self.write_dir is not None
        return self.write_dir.seal(inner)

    def verify_data(self) -> bytes:
        finished_key = self._derive_sized(self.client_handshake_secret, b"finished")
        return hmac.new(finished_key, self._hash(), self.hash_name).digest()

    def finished_message(self, verify_data: bytes | None = None) -> bytes:
        return handshake(20, self.verify_data() if verify_data is None else verify_data)

    def finished(self, verify_data: bytes | None = None, *, extra: bytes = b"") -> bytes:
        """The client's Finished (with `extra` bytes after it in its record); the write and
        read keys become the application keys."""
        message = self.finished_message(verify_data)
        out = self.sealed(HANDSHAKE, message + extra)
        self.messages.append(message)
        self.write_dir = self.client_ap
        return out

    def key_update(self, request: int = 0, *, body: bytes | None = None) -> bytes:
        """A KeyUpdate under the current key; the write key moves on after it."""
        assert self.write_dir is not None
        out = self.sealed(HANDSHAKE, handshake(24, bytes((request,)) if body is None else body))
        self.write_dir = self.write_dir.next()
        return out

    def application_data(self, data: bytes) -> bytes:
        return self.sealed(APPLICATION_DATA, data)

    def read(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        """The server's records opened (a plaintext alert as it is), following its KeyUpdates."""
        out = []
        for content_type, fragment in split_records(data):
            if content_type != APPLICATION_DATA:
                out.append((content_type, fragment))
                continue
            assert self.read_dir is not None
            inner_type, content = self.read_dir.open(fragment)
            out.append((inner_type, content))
            if inner_type == HANDSHAKE and content[:1] == b"\x18":
                self.key_updates_received += 1
                self.read_dir = self.read_dir.next()
        return out
