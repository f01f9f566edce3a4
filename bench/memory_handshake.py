"""One full handshake in memory: trio-tls's ServerConnection vs OpenSSL's server, same client.

Both servers face the same OpenSSL client over ssl.MemoryBIO, with the same RSA-2048
certificate, suite (ECDHE-RSA-AES128-GCM-SHA256) and group (P-256), interleaved run by run so
machine noise hits both alike. "server" times only the server's own calls; "total" includes the
client's work. Only ratios within one run mean anything.
"""

from __future__ import annotations

import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trio_tls import CertifiedKey, ServerConfig, ServerConnection
from trio_tls.certs import load_certificate_chain, load_private_key, make_self_signed
from trio_tls.events import NEED_DATA
from trio_tls.suites import suite_by_name

SUITE = "ECDHE-RSA-AES128-GCM-SHA256"
RUNS = 200


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(SUITE)
    ctx.set_ecdh_curve("prime256v1")
    return ctx


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


def _summary(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.3f} ms"


def main(runs: int = RUNS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dev = make_self_signed(Path(tmp), "rsa")
        chain = load_certificate_chain(dev.cert_path)
        config = ServerConfig(
            [CertifiedKey(tuple(chain), load_private_key(dev.key_path))],
            cipher_suites=[suite_by_name(SUITE)],
        )
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(dev.cert_path, dev.key_path)
        server_ctx.minimum_version = server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        server_ctx.set_ciphers(SUITE)
    client_ctx = client_context()
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "trio-tls": lambda: trio_tls_handshake(client_ctx, config),
        "openssl": lambda: openssl_handshake(client_ctx, server_ctx),
    }
    totals: dict[str, list[float]] = {name: [] for name in runners}
    servers: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm up
        run()
    for _ in range(runs):
        for name, run in runners.items():
            total, server = run()
            totals[name].append(total)
            servers[name].append(server)
    print(f"full handshake in memory, {SUITE}, P-256, RSA-2048; median of {runs} runs")
    print(f"  {'server':10} {'total':>12} {'server side':>14}")
    for name in runners:
        print(f"  {name:10} {_summary(totals[name]):>12} {_summary(servers[name]):>14}")
    ratio = statistics.median(servers["trio-tls"]) / statistics.median(servers["openssl"])
    print(f"  server side ratio trio-tls / openssl: {ratio:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
