"""`python -m bench.key_shares`: what each TLS 1.3 group costs the server per handshake.

The server's side of a key share (crypto/keyshare.exchange_key_share): for the classic groups an
ephemeral key pair and one ECDH; for X25519MLKEM768 also the ML-KEM-768 encapsulation against the
client's 1,184-byte key. The client's shares are made once, by `cryptography`, outside the timing.
Best of five repeats of 200, in microseconds, on this process's CPU; only the ratio between groups
means much on a shared machine.
"""

from __future__ import annotations

import argparse
import timeit
from functools import partial

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trio_tls.engine.crypto.keyshare import TLS13_GROUPS, exchange_key_share
from trio_tls.engine.wire.enums import NamedGroup


def client_share(group: int) -> bytes:
    if group == NamedGroup.X25519MLKEM768:
        kem = mlkem.MLKEM768PrivateKey.generate().public_key().public_bytes_raw()
        return kem + x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    if group == NamedGroup.x25519:
        return x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    curve = ec.SECP256R1() if group == NamedGroup.secp256r1 else ec.SECP384R1()
    public = ec.generate_private_key(curve).public_key()
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def measure(runs: int) -> dict[str, float]:
    """Microseconds per server key share, by group name."""
    results = {}
    for group in TLS13_GROUPS:
        share = client_share(group)
        timer = timeit.Timer(partial(exchange_key_share, group, share))
        best = min(timer.repeat(number=runs, repeat=5))
        results[NamedGroup(group).name] = best / runs * 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.key_shares", description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    results = measure(args.runs)
    baseline = results["x25519"]
    for name, micros in results.items():
        print(f"{name:16} {micros:8.1f} µs   {micros / baseline:5.2f}x x25519")


if __name__ == "__main__":
    main()
