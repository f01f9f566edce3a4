"""Server CPU for the largest ClientHellos the wire format allows, beside an ordinary one.

A ClientHello may carry 131,396 bytes (RFC 5246 §7.4.1.2 with every vector full), tens of
thousands of signature schemes or extensions. The server must answer those in time linear in
their size, so this measures the server's first flight (ServerHello to ServerHelloDone, RSA
signature and ECDHE key included) for each shape, in records of 2^14 bytes, and reports the
median CPU time per hello (this process's, so other work on the machine does not count) and
the cost over the ordinary hello.

    python -m bench.large_hello [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from trio_tls import ServerConfig, ServerConnection
from trio_tls.engine.events import NEED_DATA
from trio_tls.engine.wire.codec import Writer
from trio_tls.engine.wire.enums import ExtensionType, NamedGroup, SignatureScheme
from trio_tls.engine.wire.extensions import UnknownExtension
from trio_tls.engine.wire.messages import ClientHello, encode_handshake
from trio_tls.ops.certs import make_self_signed

from .common import trio_tls_config

SUITE = 0xC02F  # ECDHE-RSA-AES128-GCM-SHA256, what bench.common configures
PADDING = 21  # RFC 7685
Extensions = list[tuple[int, bytes]]


def u16s(values: list[int] | tuple[int, ...]) -> bytes:
    writer = Writer()
    with writer.prefixed(2):
        writer.u16_list(values)
    return writer.getvalue()


def ordinary_extensions() -> Extensions:
    return [
        (ExtensionType.supported_groups, u16s([NamedGroup.secp256r1])),
        (ExtensionType.ec_point_formats, b"\x01\x00"),
        (ExtensionType.signature_algorithms, u16s([SignatureScheme.rsa_pss_rsae_sha256])),
        (ExtensionType.extended_master_secret, b""),
        (ExtensionType.renegotiation_info, b"\x00"),
    ]


def fill(extensions: Extensions, extra: Callable[[int], Extensions]) -> Extensions:
    """`extensions` plus what `extra(room)` makes of the bytes left in a full block."""
    room = 0xFFFF - sum(4 + len(data) for _, data in extensions)
    return extensions + extra(room)


def hello_records(
    extensions: Extensions,
    suites: tuple[int, ...] = (SUITE,),
    session_id: bytes = b"",
    compression: bytes = b"\x00",
) -> bytes:
    hello = ClientHello(
        client_version=0x0303,
        random=os.urandom(32),
        session_id=session_id,
        cipher_suites=suites,
        compression_methods=compression,
        extensions=tuple(UnknownExtension(t, d) for t, d in extensions),
    )
    message = encode_handshake(hello)
    return b"".join(
        b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (message[i : i + 2**14] for i in range(0, len(message), 2**14))
    )


def shapes() -> dict[str, bytes]:
    padding = fill(ordinary_extensions(), lambda room: [(PADDING, bytes(room - 4))])
    fillers = tuple(value for value in range(0x1000, 0x1000 + 32767) if value != SUITE)
    others = [e for e in ordinary_extensions() if e[0] != ExtensionType.signature_algorithms]
    schemes = fill(
        others,
        lambda room: [
            (
                ExtensionType.signature_algorithms,
                u16s([*range(0x0A00, 0x0A00 + (room - 6) // 2 - 1), 0x0804]),
            )
        ],
    )
    many = fill(ordinary_extensions(), lambda room: [(0x4000 + i, b"") for i in range(room // 4)])
    return {
        "ordinary hello": hello_records(ordinary_extensions()),
        "maximal hello (131,396 B)": hello_records(
            padding, (*fillers[:32766], SUITE), bytes(32), bytes(range(255))
        ),
        f"{(len(schemes[-1][1]) - 2) // 2} signature schemes": hello_records(schemes),
        f"{len(many) - len(ordinary_extensions())} extensions": hello_records(many),
    }


def first_flight_seconds(config: ServerConfig, records: bytes) -> float:
    server = ServerConnection(config)
    start = time.process_time()
    server.receive_data(records)
    if server.next_event() is not NEED_DATA:
        raise AssertionError("the server did not answer with its first flight")
    server.data_to_send()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        dev = make_self_signed(directory)
        config = trio_tls_config(dev.cert_path, dev.key_path)
    hellos = shapes()
    samples: dict[str, list[float]] = {name: [] for name in hellos}
    for _ in range(args.runs):  # interleaved, so machine noise hits every shape alike
        for name, records in hellos.items():
            samples[name].append(first_flight_seconds(config, records))
    base = statistics.median(samples["ordinary hello"])
    print(f"server first flight, median of {args.runs} (RSA-2048, P-256, AES-128-GCM)")
    print(f"{'hello':34} {'bytes':>8} {'CPU ms':>8} {'over ordinary':>14}")
    for name, records in hellos.items():
        median = statistics.median(samples[name])
        extra = f"{(median - base) * 1000:+.3f} ms"
        print(f"{name:34} {len(records):>8} {median * 1000:>8.3f} {extra:>14}")


if __name__ == "__main__":
    main()
