"""Cipher suites as a table (Go's cipherSuites): each row carries its own record protection.

Only forward-secret AEAD suites exist here (RFC 5288 / RFC 5289 AES-GCM, RFC 7905 ChaCha20);
adding one is adding a row. DEFAULT_SUITES is the server's preference order: AES-128-GCM first
(fastest with AES-NI), then ChaCha20-Poly1305, then AES-256-GCM. TLS 1.3 suites (RFC 8446
§B.4) name only the AEAD and the hash, so they are a table of their own, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..record.protection import Aead, ExplicitNonceAEAD, RecordProtection, XorNonceAEAD
from ..record.protection13 import Tls13Protection
from .key_schedule13 import traffic_key_iv

AuthKind = Literal["rsa", "ecdsa"]


@attrs.frozen
class CipherSuite:
    id: int
    name: str  # IANA name
    openssl_name: str
    auth: AuthKind
    prf_hash: str
    key_length: int
    iv_length: int  # the fixed IV (salt) taken from the key block
    aead: Callable[[bytes], Aead]
    protection: Callable[[Aead, bytes], RecordProtection]

    def make_protection(self, key: bytes, iv: bytes) -> RecordProtection:
        return self.protection(self.aead(key), iv)


def _gcm(id_: int, name: str, openssl_name: str, auth: AuthKind, bits: int) -> CipherSuite:
    return CipherSuite(
        id_,
        name,
        openssl_name,
        auth,
        "sha256" if bits == 128 else "sha384",
        bits // 8,
        4,
        AESGCM,
        ExplicitNonceAEAD,
    )


def _chacha(id_: int, name: str, openssl_name: str, auth: AuthKind) -> CipherSuite:
    return CipherSuite(
        id_, name, openssl_name, auth, "sha256", 32, 12, ChaCha20Poly1305, XorNonceAEAD
    )


ALL_SUITES: tuple[CipherSuite, ...] = (
    _gcm(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256",
         "ecdsa", 128),
    _gcm(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
         "rsa", 128),
    _chacha(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305", "ecdsa"),
    _chacha(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305", "rsa"),
    _gcm(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384",
         "ecdsa", 256),
    _gcm(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
         "rsa", 256),
)  # fmt: skip

DEFAULT_SUITES = ALL_SUITES
SUITES_BY_ID = {suite.id: suite for suite in ALL_SUITES}


def suite_by_name(name: str) -> CipherSuite:
    """Look a suite up by its IANA or OpenSSL name."""
    for suite in ALL_SUITES:
        if name in (suite.name, suite.openssl_name):
            return suite
    known = ", ".join(suite.openssl_name for suite in ALL_SUITES)
    raise ValueError(f"unknown or unsupported cipher suite {name!r} (known: {known})")


@attrs.frozen
class Tls13Suite:
    id: int
    name: str  # IANA name, which OpenSSL uses too
    openssl_name: str
    hash_name: str
    key_length: int
    aead: Callable[[bytes], Aead]

    def make_protection(
        self, secret: bytes, *, allow_plaintext_alerts: bool = False
    ) -> Tls13Protection:
        """The record protection of one traffic secret (its key and IV per RFC 8446 §7.3)."""
        key, iv = traffic_key_iv(self.hash_name, secret, self.key_length)
        return Tls13Protection(self.aead(key), iv, allow_plaintext_alerts=allow_plaintext_alerts)


def _tls13(
    id_: int, name: str, hash_name: str, key_length: int, aead: Callable[[bytes], Aead]
) -> Tls13Suite:
    return Tls13Suite(id_, name, name, hash_name, key_length, aead)


TLS13_SUITES: tuple[Tls13Suite, ...] = (
    _tls13(0x1301, "TLS_AES_128_GCM_SHA256", "sha256", 16, AESGCM),
    _tls13(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "sha256", 32, ChaCha20Poly1305),
    _tls13(0x1302, "TLS_AES_256_GCM_SHA384", "sha384", 32, AESGCM),
)
TLS13_SUITES_BY_ID = {suite.id: suite for suite in TLS13_SUITES}
