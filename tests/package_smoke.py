"""Serve each built-in handler from an installed `trio-tls` and talk to it as a client would.

`nox -s package` runs this against a fresh venv that holds only the built wheel (and what pip
resolves for it), in an empty directory outside the checkout: the one way to learn that the
wheel carries every module, the entry points and the package data, since the test suite runs
on an editable install that sees the whole tree. Standard library only, so it needs nothing
from the venv it checks.

    python tests/package_smoke.py /path/to/venv/bin/trio-tls
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

TIMEOUT = 30.0
_SERVING = re.compile(r"serving handler '[a-z]+' on https://127\.0\.0\.1:(\d+)/")


@contextlib.contextmanager
def running(command: str, workdir: Path, *options: str) -> Iterator[int]:
    """A `trio-tls serve` on a free port; yields the port it printed, stops it with SIGTERM."""
    server = subprocess.Popen(
        [command, "serve", "--port", "0", *options],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    printed = []
    for line in server.stdout:  # a first run prints the dev certificate it made, then this
        printed.append(line)
        if match := _SERVING.search(line):
            break
    else:
        _, errors = server.communicate(timeout=TIMEOUT)
        raise SystemExit(f"{' '.join(options)}: no server: {''.join(printed)}{errors}")
    try:
        yield int(match.group(1))
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=TIMEOUT)
    if server.returncode != 0:
        raise SystemExit(f"{' '.join(options)}: exit status {server.returncode}: {errors}")


def tls_exchange(port: int, request: bytes) -> bytes:
    """Send `request` over TLS (certificate not checked: a dev certificate) and read to EOF."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        chunks = []
        with contextlib.suppress(ssl.SSLEOFError, ConnectionResetError):
            while chunk := tls.recv(65536):
                chunks.append(chunk)
                if request.startswith(b"ECHO") and b"".join(chunks) == request:
                    break
        return b"".join(chunks)


@contextlib.contextmanager
def tcp_upstream() -> Iterator[int]:
    """A plain TCP server that answers each connection with a fixed line: the proxy's upstream."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"upstream says hi\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


GET = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def check(name: str, reply: bytes, ok: Callable[[bytes], bool]) -> None:
    if not ok(reply):
        raise SystemExit(f"{name}: unexpected reply {reply[:300]!r}")
    print(f"{name}: ok ({len(reply)} bytes)")


def main(command: str) -> None:
    with tempfile.TemporaryDirectory(prefix="trio-tls-wheel-") as tmp:
        workdir = Path(tmp)
        listed = subprocess.run(
            [command, "handlers"], cwd=workdir, capture_output=True, text=True, check=True
        ).stdout
        for name in ("hello", "echo", "inspect", "proxy"):
            if not re.search(rf"^{name}\s", listed, re.MULTILINE):
                raise SystemExit(f"handler {name} is not installed:\n{listed}")
        with running(command, workdir, "--handler", "hello") as port:
            check("hello", tls_exchange(port, GET), lambda r: b"Hello from Python TLS!" in r)
        key = workdir / "certs" / "server.key"
        if key.stat().st_mode & 0o777 != 0o600:
            raise SystemExit(f"{key} has mode {key.stat().st_mode & 0o777:o}, not 600")
        with running(command, workdir, "--handler", "echo") as port:
            check("echo", tls_exchange(port, b"ECHO 123\n"), lambda r: r == b"ECHO 123\n")
        with running(command, workdir, "--handler", "inspect") as port:
            check("inspect", tls_exchange(port, GET), lambda r: b"ClientHello" in r)
        with (
            tcp_upstream() as upstream,
            running(
                command,
                workdir,
                "--handler",
                "proxy",
                "--handler-opt",
                f"upstream=127.0.0.1:{upstream}",
            ) as port,
        ):
            check("proxy", tls_exchange(port, b"hi\n"), lambda r: r == b"upstream says hi\n")


if __name__ == "__main__":
    main(sys.argv[1])
