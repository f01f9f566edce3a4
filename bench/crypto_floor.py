"""The crypto floor: the `cryptography` calls one full handshake makes the server do, timed alone.

For ECDHE-RSA-AES128-GCM-SHA256 with P-256 and an RSA-2048 certificate the server must: sign
the ServerKeyExchange parameters (client random + server random + curve + point, 133 bytes) with
RSA-PSS-SHA256; generate a P-256 key and encode its point; load the client's point and run
ECDH; compute 6 PRF blocks of HMAC-SHA256 (master secret 48 bytes and key block 40 bytes take
two blocks each, each Finished one), 2 hmac.digest calls per block; and build two AESGCM
objects, one per direction. Nothing else a handshake does is unavoidable, so a server's CPU
time per handshake divided by this floor says how much the rest (protocol code, the event
loop, the kernel) costs on top. `cryptography` carries its own OpenSSL, which may not be the
one the stdlib `ssl` module links: the report names both.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import statistics
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNED_LENGTH = 32 + 32 + 4 + 65
PRF_DIGESTS = 12


def _handshake_crypto(
    key: rsa.RSAPrivateKey, signed: bytes, client_point: bytes, secret: bytes
) -> None:
    key.sign(
        signed,
        padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), client_point)
    ephemeral.exchange(ec.ECDH(), peer)
    for _ in range(PRF_DIGESTS):
        hmac.digest(secret, secret + secret, "sha256")
    AESGCM(secret[:16])
    AESGCM(secret[16:32])


def measure(key: rsa.RSAPrivateKey, runs: int) -> list[float]:
    """Seconds per handshake's worth of crypto, one sample per run, after one warm-up."""
    client_point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    signed, secret = os.urandom(SIGNED_LENGTH), os.urandom(48)
    _handshake_crypto(key, signed, client_point, secret)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        _handshake_crypto(key, signed, client_point, secret)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    """Print {"floor_ms": median} for a fresh RSA-2048 key, optionally pinned to one CPU."""
    parser = argparse.ArgumentParser(prog="python -m bench.crypto_floor", description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cpu", type=int, help="pin to this CPU (the server's, to compare)")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    samples = measure(rsa.generate_private_key(65537, 2048), args.runs)
    print(json.dumps({"floor_ms": statistics.median(samples) * 1e3}))


if __name__ == "__main__":
    main()
