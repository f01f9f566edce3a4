"""Server CPU to read the largest PROXY v2 header when it comes one byte per read.

A v2 header may be 16 + 65,535 bytes (HAProxy's proxy-protocol.txt §2.2), and a client (or a
balancer's slow link) decides how it is cut. This feeds serve()'s header reader
(`trio_tls.server.lifecycle._read_first`) one byte per `receive_some`, inside trio, and reports the
median CPU time per header over a few runs, beside two floors: the header in one read, and
the same reads drained without looking at them (trio's cost per read, which a real socket's
system call only adds to). The reader's own cost is the difference.

    python -m bench.proxy_header [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio

from trio_tls.server import lifecycle
from trio_tls.server.proxy_protocol import Version, encode_v2

HEADER = encode_v2(("203.0.113.7", 40123), ("198.51.100.1", 443), [(0xE0, bytes(0xFFFF - 15))])


class Pieces:
    """A stream that hands out `data` in pieces of `size` bytes, then the first TLS byte."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data + b"\x16"
        self.size = size
        self.at = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.at += self.size
        return self.data[self.at - self.size : self.at]


async def cpu_seconds(size: int) -> float:
    stream: Any = Pieces(HEADER, size)
    versions: tuple[Version] = (2,)
    start = time.process_time()
    _, header = await lifecycle._read_first(stream, versions)
    seconds = time.process_time() - start
    assert header is not None and header.source == ("203.0.113.7", 40123)
    return seconds


async def drain_seconds(size: int) -> float:
    stream = Pieces(HEADER, size)
    start = time.process_time()
    while await stream.receive_some() != b"\x16":
        pass
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"PROXY v2 header of {len(HEADER)} bytes, median CPU of {args.runs} runs")
    rows = (
        (cpu_seconds, len(HEADER), "in one read"),
        (drain_seconds, 1, "drained byte by byte"),
        (cpu_seconds, 1, "one byte per read"),
    )
    for measure, size, name in rows:
        runs = [trio.run(measure, size) for _ in range(args.runs)]
        print(f"{name:22} {statistics.median(runs) * 1000:10.1f} ms")


if __name__ == "__main__":
    main()
