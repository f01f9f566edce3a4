"""Ephemeral ECDH (RFC 8422 §5.4, §5.7; RFC 7748 for X25519) and handshake signatures.

Peer points are validated before use: uncompressed form only (RFC 8422 §5.1.2), on the curve
(cryptography checks this when it loads the point), and an all-zero X25519 result is refused
(RFC 7748 §6.1). Any failure is illegal_parameter. The signature schemes a key can make are a
table, in server preference order: PSS before PKCS#1 v1.5 (RFC 8446 deprecates the latter's use
in handshakes), and for ECDSA the scheme that matches the key's curve first.
"""

from __future__ import annotations

from typing import Literal

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..wire.enums import NamedGroup, SignatureScheme
from ..wire.errors import DecryptError, IllegalParameter

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
# Below 2048 bits RSA is breakable (NIST SP 800-57), and RSA-PSS with SHA-512 cannot sign with
# a key under 1040 bits: our key either serves every scheme we offer or is refused; a client's
# is refused too.
MIN_RSA_BITS = 2048

_CURVES: dict[int, ec.EllipticCurve] = {
    NamedGroup.secp256r1: ec.SECP256R1(),
    NamedGroup.secp384r1: ec.SECP384R1(),
}
# The reverse: which group an ECDSA certificate's curve is (RFC 8422 §5.1 matches them).
CURVE_GROUPS = {curve.name: group for group, curve in _CURVES.items()}
# The ECDHE groups of TLS 1.2 (RFC 8422); TLS 1.3 adds a hybrid (keyshare.py).
TLS12_GROUPS = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)


class EphemeralKey:
    """One ECDHE key pair of `group`, used for a single handshake."""

    __slots__ = ("_private", "group", "public")

    def __init__(self, group: int) -> None:
        self.group = group
        self._private: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
        if group == NamedGroup.x25519:
            self._private = x25519.X25519PrivateKey.generate()
            self.public = self._private.public_key().public_bytes_raw()
        else:
            self._private = ec.generate_private_key(_CURVES[group])
            self.public = self._private.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )

    def exchange(self, peer_public: bytes) -> bytes:
        """The pre-master secret (RFC 8422 §5.10: the x coordinate for NIST curves)."""
        private = self._private
        if isinstance(private, x25519.X25519PrivateKey):
            if len(peer_public) != 32:
                raise IllegalParameter("X25519 public key is not 32 bytes")
            try:
                return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
            except ValueError:  # all-zero shared secret: a small-order point
                raise IllegalParameter("X25519 public key of small order") from None
        if len(peer_public) != len(self.public) or peer_public[0] != 4:
            raise IllegalParameter("EC point is not an uncompressed point of the curve")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, peer_public)
        except ValueError:
            raise IllegalParameter("EC point is not on the curve") from None
        return private.exchange(ec.ECDH(), peer)


@attrs.frozen
class SchemeInfo:
    kind: Literal["rsa_pss", "rsa_pkcs1", "ecdsa"]
    hash: type[hashes.HashAlgorithm]
    curve: str | None = None  # the ECDSA curve name the scheme is meant for


SCHEMES: dict[int, SchemeInfo] = {
    SignatureScheme.rsa_pss_rsae_sha256: SchemeInfo("rsa_pss", hashes.SHA256),
    SignatureScheme.rsa_pss_rsae_sha384: SchemeInfo("rsa_pss", hashes.SHA384),
    SignatureScheme.rsa_pss_rsae_sha512: SchemeInfo("rsa_pss", hashes.SHA512),
    SignatureScheme.rsa_pkcs1_sha256: SchemeInfo("rsa_pkcs1", hashes.SHA256),
    SignatureScheme.rsa_pkcs1_sha384: SchemeInfo("rsa_pkcs1", hashes.SHA384),
    SignatureScheme.rsa_pkcs1_sha512: SchemeInfo("rsa_pkcs1", hashes.SHA512),
    SignatureScheme.ecdsa_secp256r1_sha256: SchemeInfo("ecdsa", hashes.SHA256, "secp256r1"),
    SignatureScheme.ecdsa_secp384r1_sha384: SchemeInfo("ecdsa", hashes.SHA384, "secp384r1"),
    # In TLS 1.2 the hash is not tied to the curve (RFC 8422 §5.1.3): any ECDSA key can sign
    # with any of these, though the key's own curve's scheme comes first.
    SignatureScheme.ecdsa_secp521r1_sha512: SchemeInfo("ecdsa", hashes.SHA512, "secp521r1"),
}


def schemes_for_key(key: PrivateKey) -> tuple[int, ...]:
    """The schemes `key` can sign with, most preferred first."""
    if isinstance(key, rsa.RSAPrivateKey):
        return tuple(s for s, info in SCHEMES.items() if info.kind != "ecdsa")
    matching = [s for s, info in SCHEMES.items() if info.curve == key.curve.name]
    others = [s for s, info in SCHEMES.items() if info.kind == "ecdsa" and s not in matching]
    return (*matching, *others)


def tls13_schemes_for_key(key: PrivateKey) -> tuple[int, ...]:
    """What TLS 1.3 lets `key` sign a CertificateVerify with (RFC 8446 §4.2.3, §4.4.3): never
    PKCS#1 v1.5, and ECDSA only with the hash its curve is paired with."""
    return tuple(scheme for scheme in schemes_for_key(key) if _tls13_allows(SCHEMES[scheme], key))


def _tls13_allows(info: SchemeInfo, key: PrivateKey | PublicKey) -> bool:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return info.kind == "rsa_pss"
    return info.kind == "ecdsa" and info.curve == key.curve.name


def choose_scheme(ours: tuple[int, ...], offered: frozenset[int]) -> int | None:
    """Our most preferred scheme (of `schemes_for_key`) the client offered, or None."""
    for scheme in ours:
        if scheme in offered:
            return scheme
    return None


def _rsa_padding(info: SchemeInfo) -> padding.AsymmetricPadding:
    algorithm = info.hash()
    if info.kind == "rsa_pss":
        return padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
    return padding.PKCS1v15()


def sign(key: PrivateKey, scheme: int, data: bytes) -> bytes:
    info = SCHEMES[scheme]
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _rsa_padding(info), info.hash())
    return key.sign(data, ec.ECDSA(info.hash()))


# What a client may sign its CertificateVerify with: every scheme we can check, none with SHA-1
# (RFC 9155 §2), offered in CertificateRequest and nothing else accepted.
CLIENT_SCHEMES: tuple[int, ...] = tuple(SCHEMES)
# In TLS 1.3: no PKCS#1 v1.5 (RFC 8446 §4.4.3).
TLS13_CLIENT_SCHEMES: tuple[int, ...] = tuple(
    s for s, i in SCHEMES.items() if i.kind != "rsa_pkcs1"
)


def verify(key: PublicKey, scheme: int, data: bytes, signature: bytes) -> None:
    """Check a client's signature: illegal_parameter for a scheme we did not offer or that
    does not fit the key (RFC 5246 §7.4.8), decrypt_error for a signature that fails."""
    info = SCHEMES.get(scheme)  # CLIENT_SCHEMES is all of them
    if info is None:
        raise IllegalParameter(f"CertificateVerify with scheme {scheme:#06x}, not offered")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if info.kind == "ecdsa":
                raise IllegalParameter("an ECDSA signature scheme with an RSA key")
            key.verify(signature, data, _rsa_padding(info), info.hash())
        else:
            if info.kind != "ecdsa":
                raise IllegalParameter("an RSA signature scheme with an ECDSA key")
            key.verify(signature, data, ec.ECDSA(info.hash()))
    except InvalidSignature:
        raise DecryptError("the client's CertificateVerify signature does not verify") from None


def verify_tls13(key: PublicKey, scheme: int, data: bytes, signature: bytes) -> None:
    """`verify` under TLS 1.3's narrower rules: a PKCS#1 v1.5 scheme, or an ECDSA scheme of
    another curve than the key's, is illegal_parameter (RFC 8446 §4.4.3)."""
    info = SCHEMES.get(scheme)
    if info is None or not _tls13_allows(info, key):
        raise IllegalParameter(f"CertificateVerify with scheme {scheme:#06x}, not allowed here")
    verify(key, scheme, data, signature)
