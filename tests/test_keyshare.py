"""TLS 1.3 key shares against cryptography playing the client: each group agrees on the secret,
and each kind of malformed share is illegal_parameter.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trio_tls.engine.crypto.keyshare import TLS13_GROUPS, exchange_key_share
from trio_tls.engine.wire.enums import NamedGroup
from trio_tls.engine.wire.errors import IllegalParameter, LocalProtocolError

HYBRID = NamedGroup.X25519MLKEM768
CURVES = {NamedGroup.secp256r1: ec.SECP256R1(), NamedGroup.secp384r1: ec.SECP384R1()}
# A point of order 8 on Curve25519 (RFC 7748 §6.1 says to refuse the all-zero result it gives).
SMALL_ORDER_X25519 = bytes.fromhex(
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
)


class HybridClient:
    """A client's X25519MLKEM768 share, the client's half of the draft's construction."""

    def __init__(self) -> None:
        self.mlkem = mlkem.MLKEM768PrivateKey.generate()
        self.x25519 = x25519.X25519PrivateKey.generate()
        self.share = (
            self.mlkem.public_key().public_bytes_raw() + self.x25519.public_key().public_bytes_raw()
        )

    def secret(self, server_share: bytes) -> bytes:
        assert len(server_share) == 1088 + 32
        ciphertext, server_x25519 = server_share[:1088], server_share[1088:]
        peer = x25519.X25519PublicKey.from_public_bytes(server_x25519)
        return self.mlkem.decapsulate(ciphertext) + self.x25519.exchange(peer)


def raises_exactly(error: type[LocalProtocolError], group: int, share: bytes) -> None:
    with pytest.raises(LocalProtocolError) as info:
        exchange_key_share(group, share)
    assert type(info.value) is error


def test_groups_in_preference_order() -> None:
    assert TLS13_GROUPS == (0x11EC, 29, 23, 24)


def test_x25519mlkem768_agrees_with_the_client() -> None:
    client = HybridClient()
    server_share, secret = exchange_key_share(HYBRID, client.share)
    assert len(server_share) == 1120
    assert len(secret) == 64
    assert client.secret(server_share) == secret
    # ML-KEM first: the X25519 half is the last 32 bytes of the secret.
    peer = x25519.X25519PublicKey.from_public_bytes(server_share[1088:])
    assert secret[32:] == client.x25519.exchange(peer)


def test_x25519_agrees_with_the_client() -> None:
    client = x25519.X25519PrivateKey.generate()
    server_share, secret = exchange_key_share(
        NamedGroup.x25519, client.public_key().public_bytes_raw()
    )
    assert secret == client.exchange(x25519.X25519PublicKey.from_public_bytes(server_share))


@pytest.mark.parametrize("group", [NamedGroup.secp256r1, NamedGroup.secp384r1])
def test_nist_curve_agrees_with_the_client(group: int) -> None:
    client = ec.generate_private_key(CURVES[group])
    point = client.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    server_share, secret = exchange_key_share(group, point)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[group], server_share)
    assert secret == client.exchange(ec.ECDH(), peer)


def test_each_exchange_is_fresh() -> None:
    client = HybridClient()
    assert exchange_key_share(HYBRID, client.share) != exchange_key_share(HYBRID, client.share)


@pytest.mark.parametrize("length", [0, 32, 1184, 1215, 1217, 2400])
def test_hybrid_share_of_the_wrong_length(length: int) -> None:
    share = HybridClient().share
    raises_exactly(IllegalParameter, HYBRID, (share * 2)[:length])


def test_hybrid_encapsulation_key_failing_the_modulus_check() -> None:
    """FIPS 203 §7.2: a coefficient of q or more is refused (here the first, 0xFFF)."""
    share = bytearray(HybridClient().share)
    share[0], share[1] = 0xFF, share[1] | 0x0F
    raises_exactly(IllegalParameter, HYBRID, bytes(share))


def test_hybrid_with_a_small_order_x25519_part() -> None:
    share = HybridClient().share[:1184] + SMALL_ORDER_X25519
    raises_exactly(IllegalParameter, HYBRID, share)


@pytest.mark.parametrize(
    ("group", "share"),
    [
        (NamedGroup.x25519, bytes(31)),
        (NamedGroup.x25519, SMALL_ORDER_X25519),
        (NamedGroup.secp256r1, b"\x04" + bytes(64)),  # not on the curve
        (NamedGroup.secp256r1, b"\x02" + bytes(32)),  # compressed
        (NamedGroup.secp384r1, b"\x04" + bytes(95)),  # one byte short
    ],
)
def test_invalid_classical_shares(group: int, share: bytes) -> None:
    raises_exactly(IllegalParameter, group, share)
