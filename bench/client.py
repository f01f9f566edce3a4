"""`python -m bench.client MODE --port P ...`: the load generators, each run as a subprocess.

Clients are plain blocking Python `ssl` (OpenSSL) code in processes of their own, so that they
run on the CPUs the server is not pinned to and can be killed on a timeout without taking the
benchmark down. Each mode prints one JSON object on stdout; every socket has a timeout and every
loop a deadline, so a stuck server shows up as errors, never as a hang.

- `requests`: sequential connections, each a full handshake, one `GET /` with
  `Connection: close`, the whole response read, close. Several processes run this at once and
  start together at `--start-at` (a time.monotonic() value: CLOCK_MONOTONIC is system-wide on
  Linux), so the rate covers only the time they all run. Each successful connection's
  handshake time (connect() to handshake done) is returned too, rounded to the microsecond to
  keep the JSON small, so that the benchmark can pool every client's before taking quantiles.
- `latency`: sequential handshakes, each timed from connect() to handshake done; then
  close_notify both ways (untimed), so the server has finished one connection before the next.
- `echo`: one connection, `--size` bytes sent in `--record`-sized writes (one TLS record each)
  while the echo is read back, in one thread: an ssl.SSLObject over memory BIOs and a selector,
  because OpenSSL does not allow concurrent SSL_read and SSL_write from two threads. The echo is
  checked byte for byte against the pattern sent.
- `idle`: open `--count` connections, complete their handshakes, print that they are ready,
  then hold them idle until stdin closes or says anything, then close them. It raises its own
  descriptor limit first (bench.common.raise_descriptor_limit), for the thousands it may hold.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import selectors
import socket
import ssl
import sys
import time
from typing import Any

from .common import HOST, client_context, raise_descriptor_limit

TIMEOUT = 10.0
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _connect(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(sock)  # handshakes on connect
    except BaseException:
        sock.close()
        raise


def _request(port: int, ctx: ssl.SSLContext) -> float:
    """One request on a new connection; the seconds from connect() to the handshake done."""
    start = time.perf_counter()
    with _connect(port, ctx) as tls:
        handshake = time.perf_counter() - start
        tls.sendall(REQUEST)
        response = bytearray()
        while chunk := tls.recv(65536):
            response += chunk
    if not response.startswith(b"HTTP/1.1 200 "):
        raise ConnectionError(f"unexpected response {bytes(response[:40])!r}")
    return handshake


def requests(port: int, count: int, start_at: float, deadline: float) -> dict[str, Any]:
    ctx = client_context()
    time.sleep(max(0.0, start_at - time.monotonic()))
    start = time.monotonic()  # start_at, unless this process was late
    handshakes: list[float] = []
    errors = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            handshakes.append(round(_request(port, ctx), 6))
        except OSError:
            errors += 1
    return {
        "done": len(handshakes),
        "errors": errors,
        "start": start,
        "end": time.monotonic(),
        "handshakes": handshakes,
    }


def latency(port: int, count: int, deadline: float) -> dict[str, Any]:
    ctx = client_context()
    samples: list[float] = []
    errors = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        try:
            with _connect(port, ctx) as tls:
                samples.append(time.perf_counter() - start)
                tls.unwrap()
        except OSError:
            errors += 1
    return {"samples": samples, "errors": errors}


def _echo_pattern(record: int) -> tuple[bytes, bytes]:
    """One record of random bytes to send, and a longer copy to check any received slice."""
    block = os.urandom(record)
    return block, block * (65536 // record + 2)


def echo(port: int, size: int, record: int, deadline: float) -> dict[str, Any]:
    block, expected = _echo_pattern(record)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing)
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sock, selectors.DefaultSelector() as selector:
        while True:  # the handshake, blocking
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("echo: EOF during the handshake") from None
                incoming.write(data)
        sock.sendall(outgoing.read())
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        sent = received = 0
        pending = memoryview(b"")
        start = time.perf_counter()
        while received < size:
            if time.monotonic() > deadline:
                raise TimeoutError(f"echo: {received} of {size} bytes back before the deadline")
            want = selectors.EVENT_READ
            if not pending and sent < size:
                tls.write(block[: min(record, size - sent)])
                sent += min(record, size - sent)
                pending = memoryview(outgoing.read())
            if pending:
                want |= selectors.EVENT_WRITE
            selector.modify(sock, want)
            for _, events in selector.select(TIMEOUT):
                if events & selectors.EVENT_WRITE:
                    pending = pending[sock.send(pending) :]
                if events & selectors.EVENT_READ:
                    data = sock.recv(1 << 18)
                    if not data:
                        raise ConnectionError(f"echo: EOF after {received} of {size} bytes")
                    incoming.write(data)
                    received += _read_plaintext(tls, expected, received, record)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": received}


def _read_plaintext(tls: ssl.SSLObject, expected: bytes, offset: int, record: int) -> int:
    """Decrypt all complete records buffered; check them against the pattern; count bytes."""
    total = 0
    while True:
        try:
            chunk = tls.read(65536)
        except ssl.SSLWantReadError:
            return total
        if not chunk:
            raise ConnectionError("echo: close_notify before the echo was complete")
        start = (offset + total) % record
        if chunk != expected[start : start + len(chunk)]:
            raise ValueError(f"echo: wrong bytes at offset {offset + total}")
        total += len(chunk)


def idle(port: int, count: int, hold: float) -> dict[str, Any]:
    raise_descriptor_limit(count)
    ctx = client_context()
    connections: list[ssl.SSLSocket] = []
    try:
        for _ in range(count):
            connections.append(_connect(port, ctx))
        print(json.dumps({"open": len(connections)}), flush=True)
        # Hold until the benchmark writes a line or closes stdin, or `hold` seconds pass.
        select.select([sys.stdin], [], [], hold)
        return {"open": len(connections)}
    finally:
        for tls in connections:
            tls.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__)
    parser.add_argument("mode", choices=["requests", "latency", "echo", "idle"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=64 << 20)
    parser.add_argument("--record", type=int, default=16384)
    args = parser.parse_args()
    deadline = max(time.monotonic(), args.start_at) + args.max_seconds
    result: dict[str, Any]
    if args.mode == "requests":
        result = requests(args.port, args.count, args.start_at, deadline)
    elif args.mode == "latency":
        result = latency(args.port, args.count, deadline)
    elif args.mode == "echo":
        result = echo(args.port, args.size, args.record, deadline)
    else:
        result = idle(args.port, args.count, args.max_seconds)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
