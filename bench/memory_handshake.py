"""One full handshake in memory: trio-tls's ServerConnection vs OpenSSL's server, same client.

Both servers face the same OpenSSL client over ssl.MemoryBIO, with the same RSA-2048
certificate, suite (ECDHE-RSA-AES128-GCM-SHA256) and group (P-256) as the socket benchmarks
(bench.common), interleaved run by run so machine noise hits both alike. "server" times only the
server's own calls; "total" includes the client's work. With no sockets and no event loop this
isolates the protocol engine: the difference to the socket benchmarks is what trio, TLSStream
or SSLStream, and the kernel add. Only ratios within one run mean anything.
"""

from __future__ import annotations

import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trio_tls import ServerConfig, ServerConnection
from trio_tls.certs import make_self_signed
from trio_tls.events import NEED_DATA

from .common import SUITE, client_context, stdlib_server_context, trio_tls_config

RUNS = 200
# name -> (total seconds per handshake, server-side seconds per handshake), one pair per run
Samples = dict[str, tuple[list[float], list[float]]]


def trio_tls_handshake(client_ctx: ssl.SSLContext, config: ServerConfig) -> tuple[float, float]:
    start = time.perf_counter()
    server_time = 0.0
    to_client, to_server = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, to_server)
    t = time.perf_counter()
    server = ServerConnection(config)
    server_time += time.perf_counter() - t
    while True:
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            pass
        t = time.perf_counter()
        server.receive_data(to_server.read())
        while server.next_event() is not NEED_DATA:
            pass
        to_client.write(server.data_to_send())
        server_time += time.perf_counter() - t
    return time.perf_counter() - start, server_time


def openssl_handshake(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext
) -> tuple[float, float]:
    start = time.perf_counter()
    server_time = 0.0
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out)
    t = time.perf_counter()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    server_time += time.perf_counter() - t
    client_done = server_done = False
    while not (client_done and server_done):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            t = time.perf_counter()
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            server_time += time.perf_counter() - t
        c_in.write(s_out.read())
    return time.perf_counter() - start, server_time


def measure(certfile: Path, keyfile: Path, runs: int = RUNS) -> Samples:
    """Interleaved in-memory handshakes; keys are "trio-tls" and "openssl"."""
    config = trio_tls_config(certfile, keyfile)
    server_ctx = stdlib_server_context(certfile, keyfile)
    client_ctx = client_context()
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "trio-tls": lambda: trio_tls_handshake(client_ctx, config),
        "openssl": lambda: openssl_handshake(client_ctx, server_ctx),
    }
    samples: Samples = {name: ([], []) for name in runners}
    for run in runners.values():  # warm up
        run()
    for _ in range(runs):
        for name, run in runners.items():
            total, server = run()
            samples[name][0].append(total)
            samples[name][1].append(server)
    return samples


def main(runs: int = RUNS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dev = make_self_signed(Path(tmp), "rsa")
        samples = measure(dev.cert_path, dev.key_path, runs)
    print(f"full handshake in memory, {SUITE}, P-256, RSA-2048; median of {runs} runs")
    print(f"  {'server':10} {'total':>10} {'server side':>12}")
    for name, (total, server) in samples.items():
        ms = [statistics.median(total) * 1e3, statistics.median(server) * 1e3]
        print(f"  {name:10} {ms[0]:7.3f} ms {ms[1]:9.3f} ms")
    ratio = statistics.median(samples["trio-tls"][1]) / statistics.median(samples["openssl"][1])
    print(f"  server side ratio trio-tls / openssl: {ratio:.2f}")


if __name__ == "__main__":
    main()
