"""`python -m bench.proxy`: the `proxy` handler beside stunnel4, in front of the same upstream.

stunnel is what a user would run instead of `trio-tls serve --handler proxy` (Debian's stunnel4,
OpenSSL in C, a thread per connection), so it is the anchor. Both terminate TLS with the same
certificate, suite (ECDHE-RSA-AES128-GCM-SHA256) and group (P-256), with TCP_NODELAY on both
sides as trio sets it, each alone on the first CPU (taskset); the upstream and the client share
the others. The upstream is a small threaded service speaking a one-byte protocol:
`U` + u64 n: read n bytes, answer `k`; `D` + u64 n: send n bytes; `P`: answer `p`.

Measured per round, the two proxies interleaved, over ROUNDS rounds (median, min..max):
upload and download MiB/s on one connection; the server's CPU per MiB moved (from /proc);
latency of a one-byte request through both hops (p50 and p99); and memory per idle proxied
connection (RSS growth over IDLE_CONNECTIONS connections, each with its upstream connection
open). Not part of `python -m bench`, because it needs stunnel4 (`apt-get install stunnel4`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import socketserver
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from trio_tls.ops.certs import make_self_signed

from .common import HOST, SUITE, client_context
from .procs import (
    SERVE_READY,
    START_TIMEOUT,
    Placement,
    _stop,
    _wait_for_line,
    cpu_seconds,
    rss_bytes,
)

ROUNDS = 3
TRANSFER = 64 * 1024 * 1024
BLOCK = 1024 * 1024
PINGS = 500
IDLE_CONNECTIONS = 200
COMMAND = struct.Struct("!cQ")
STUNNEL_CONFIG = """\
foreground = yes
pid =
debug = 0
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[proxy]
accept = {host}:{port}
connect = {host}:{upstream}
cert = {cert}
key = {key}
sslVersion = TLSv1.2
ciphers = {suite}
curves = prime256v1
"""


class _Upstream(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        zeros = bytes(BLOCK)
        while header := sock.recv(COMMAND.size, socket.MSG_WAITALL):
            kind, size = COMMAND.unpack(header)
            if kind == b"U":
                while size:
                    size -= len(sock.recv(min(size, BLOCK)))
                sock.sendall(b"k")
            elif kind == b"D":
                while size:
                    sock.sendall(zeros[: min(size, BLOCK)])
                    size -= min(size, BLOCK)
            else:
                sock.sendall(b"p")


def serve_upstream() -> None:
    """The upstream service (run as `python -m bench.proxy --upstream`): prints its port."""
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer((HOST, 0), _Upstream) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _pinned(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


@contextlib.contextmanager
def _process(
    command: list[str], ready: Callable[[subprocess.Popen[bytes]], int]
) -> Iterator[tuple[int, int]]:
    """Run a command in its own process group until the block ends: (pid, port)."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, bufsize=0, process_group=0
    )
    try:
        yield process.pid, ready(process)
    finally:
        _stop(process, group=True)


def _port_line(process: subprocess.Popen[bytes]) -> int:
    assert process.stdout is not None
    return int(_wait_for_line(process.stdout.fileno(), SERVE_READY, START_TIMEOUT, "server")[1])


def _listening(port: int) -> Callable[[subprocess.Popen[bytes]], int]:
    def ready(process: subprocess.Popen[bytes]) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                return port
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on port {port} (exit status {process.poll()})")

    return ready


def _trio_tls(
    cert: Path, key: Path, upstream: int, cpu: int | None
) -> contextlib.AbstractContextManager[tuple[int, int]]:
    command = [*_pinned(cpu), sys.executable, "-m", "trio_tls", "serve", "--host", HOST]
    command += ["--port", "0", "--log-level", "warning", "--handler", "proxy"]
    command += ["--handler-opt", f"upstream={HOST}:{upstream}", "--ciphers", SUITE]
    command += ["--groups", "secp256r1", "--certfile", str(cert), "--keyfile", str(key)]
    command += ["--max-connections", str(IDLE_CONNECTIONS * 2)]
    return _process(command, _port_line)


def _stunnel(
    cert: Path, key: Path, upstream: int, cpu: int | None, directory: Path
) -> contextlib.AbstractContextManager[tuple[int, int]]:
    port = _free_port()
    config = directory / "stunnel.conf"
    config.write_text(
        STUNNEL_CONFIG.format(
            host=HOST, port=port, upstream=upstream, cert=cert, key=key, suite=SUITE
        )
    )
    return _process([*_pinned(cpu), "stunnel4", str(config)], _listening(port))


def _connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    return context.wrap_socket(socket.create_connection((HOST, port)), server_hostname="localhost")


def _ping(tls: ssl.SSLSocket) -> None:
    tls.sendall(COMMAND.pack(b"P", 0))
    assert tls.recv(1) == b"p"


def _measure(pid: int, port: int) -> dict[str, float]:
    context = client_context()
    results: dict[str, float] = {}
    with _connect(port, context) as tls:
        _ping(tls)
        block = bytes(BLOCK)
        for name, kind in (("upload", b"U"), ("download", b"D")):
            cpu, start = cpu_seconds(pid), time.perf_counter()
            tls.sendall(COMMAND.pack(kind, TRANSFER))
            if kind == b"U":
                for _ in range(TRANSFER // BLOCK):
                    tls.sendall(block)
                assert tls.recv(1) == b"k"
            else:
                left = TRANSFER
                while left:
                    left -= len(tls.recv(min(left, BLOCK)))
            seconds = time.perf_counter() - start
            mib = TRANSFER / 2**20
            results[f"{name} MiB/s"] = mib / seconds
            results[f"{name} server CPU ms/MiB"] = (cpu_seconds(pid) - cpu) * 1000 / mib
        times = []
        for _ in range(PINGS):
            start = time.perf_counter()
            _ping(tls)
            times.append(time.perf_counter() - start)
        quantiles = statistics.quantiles(times, n=100)
        results["request latency p50 ms"] = quantiles[49] * 1000
        results["request latency p99 ms"] = quantiles[98] * 1000
    before = rss_bytes(pid)
    idle = [_connect(port, context) for _ in range(IDLE_CONNECTIONS)]
    try:
        for tls in idle:
            _ping(tls)  # the upstream connection exists too
        time.sleep(0.5)
        results["memory per idle connection KiB"] = (
            (rss_bytes(pid) - before) / IDLE_CONNECTIONS / 1024
        )
    finally:
        for tls in idle:
            tls.close()
    return results


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.upstream:
        serve_upstream()
        return
    if shutil.which("stunnel4") is None:
        sys.exit("bench.proxy needs stunnel4 (apt-get install stunnel4)")
    placement = Placement.pin()
    samples: dict[str, dict[str, list[float]]] = {"trio-tls": {}, "stunnel4": {}}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        dev = make_self_signed(directory, "rsa")
        cert, key = Path(dev.cert_path), Path(dev.key_path)
        upstream_command = [sys.executable, "-m", "bench.proxy", "--upstream"]
        with _process(upstream_command, lambda p: int(p.stdout.readline())) as (_, upstream):  # type: ignore[union-attr]
            for _ in range(args.rounds):
                for name, measured in samples.items():
                    server = (
                        _trio_tls(cert, key, upstream, placement.server_cpu)
                        if name == "trio-tls"
                        else _stunnel(cert, key, upstream, placement.server_cpu, directory)
                    )
                    with server as (pid, port):
                        for metric, value in _measure(pid, port).items():
                            measured.setdefault(metric, []).append(value)
    print(
        f"python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION} (client), "
        f"{os.cpu_count()} CPUs, server on CPU {placement.server_cpu}, {args.rounds} rounds, "
        f"{TRANSFER >> 20} MiB each way"
    )
    width = max(map(len, samples["trio-tls"]))
    print(f"{'metric':{width}}  {'trio-tls proxy':>24}  {'stunnel4':>24}  ratio")
    for metric, values in samples["trio-tls"].items():
        theirs = samples["stunnel4"][metric]
        ratio = statistics.median(values) / statistics.median(theirs)
        print(f"{metric:{width}}  {_cell(values):>24}  {_cell(theirs):>24}  {ratio:5.2f}")


if __name__ == "__main__":
    main()
