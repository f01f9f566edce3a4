"""The server's side of a TLS 1.3 key share (RFC 8446 §4.2.8), classical or post-quantum hybrid.

For x25519, P-256 and P-384 the server answers with its own ephemeral public key and the
shared secret is the ECDH result, exactly as in TLS 1.2 (asymmetric.EphemeralKey, which
validates the client's point). X25519MLKEM768 (draft-ietf-tls-ecdhe-mlkem) is a KEM: the
client's share is an ML-KEM-768 encapsulation key (1,184 bytes) then an X25519 public key
(32); the server encapsulates to the first and answers with the ciphertext (1,088 bytes) then
its own X25519 public key; the shared secret is the ML-KEM secret then the X25519 secret, 64
bytes. ML-KEM comes first everywhere, unlike the older hybrids that put the classical part
first. Anything malformed in a share is illegal_parameter (RFC 8446 §4.2.8 and the draft).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import mlkem

from ..wire.enums import NamedGroup
from ..wire.errors import IllegalParameter
from .asymmetric import EphemeralKey

# Server preference order: the post-quantum hybrid first, then the classical groups as in 1.2.
TLS13_GROUPS: tuple[int, ...] = (
    NamedGroup.X25519MLKEM768,
    NamedGroup.x25519,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
)
MLKEM768_ENCAPSULATION_KEY_LENGTH = 1184
_X25519_LENGTH = 32


def exchange_key_share(group: int, client_share: bytes) -> tuple[bytes, bytes]:
    """Our key_exchange bytes for the ServerHello and the shared secret, for one of
    TLS13_GROUPS; raises IllegalParameter for a share that is not a valid one of `group`."""
    if group == NamedGroup.X25519MLKEM768:
        return _x25519_mlkem768(client_share)
    key = EphemeralKey(group)
    return key.public, key.exchange(client_share)


def _x25519_mlkem768(client_share: bytes) -> tuple[bytes, bytes]:
    if len(client_share) != MLKEM768_ENCAPSULATION_KEY_LENGTH + _X25519_LENGTH:
        raise IllegalParameter(f"X25519MLKEM768 key share of {len(client_share)} bytes")
    encapsulation_key = client_share[:MLKEM768_ENCAPSULATION_KEY_LENGTH]
    try:
        # Checks FIPS 203 §7.2's modulus condition: every coefficient below q.
        public = mlkem.MLKEM768PublicKey.from_public_bytes(encapsulation_key)
    except ValueError:
        raise IllegalParameter("ML-KEM-768 encapsulation key fails its modulus check") from None
    x25519 = EphemeralKey(NamedGroup.x25519)
    x25519_secret = x25519.exchange(client_share[MLKEM768_ENCAPSULATION_KEY_LENGTH:])
    mlkem_secret, ciphertext = public.encapsulate()
    return ciphertext + x25519.public, mlkem_secret + x25519_secret
