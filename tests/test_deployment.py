"""The deployment guide's set-ups (README, "Deployment"), each started as the guide shows it:
`trio-tls serve --handler proxy` with curl in front and a plain TCP service behind, and HAProxy
passing real client addresses with PROXY v2."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_tls.server.proxy_protocol import parse_header

from .cli_server import running_server

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="needs haproxy (.ci/run installs it)"
)
pytestmark = [pytest.mark.interop, needs_curl]


@contextlib.contextmanager
def http_upstream() -> Iterator[int]:
    """A plain HTTP service (the standard library's) on loopback; yields its port."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"plain service says hi\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def proxy_protocol_upstream() -> Iterator[int]:
    """A TCP service that reads the PROXY v1 header and answers, in HTTP, whom it names."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                        data += chunk
                    parsed = parse_header(data, [1])
                    assert parsed is not None
                    source = parsed[0].source
                    body = f"client {source[0]}:{source[1]}\n".encode() if source else b"?"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    conn.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def curl(url: str, *options: str) -> str:
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--insecure", "--max-time", "10", *options, url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "exited early"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"nothing listening on port {port} after {timeout} s")


HAPROXY_CONFIG = """\
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend tls_in
    bind 127.0.0.1:{front}
    default_backend trio_tls

backend trio_tls
    server tls1 127.0.0.1:{back} send-proxy-v2 check inter 200ms check-send-proxy
"""


@contextlib.contextmanager
def haproxy(tmp_path: Path, back: int) -> Iterator[int]:
    """HAProxy in TCP mode in front of port `back`, with the guide's configuration."""
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(front=front, back=back))
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(front, process)
        yield front
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_curl_reaches_a_plain_service_through_proxy(tmp_path: Path) -> None:
    with (
        http_upstream() as upstream,
        running_server(
            tmp_path, "--handler", "proxy", "--handler-opt", f"upstream=127.0.0.1:{upstream}"
        ) as server,
    ):
        assert curl(f"https://127.0.0.1:{server.port}/") == "plain service says hi\n"
        server.wait_for_stderr(": closed", 5)
        assert server.stop() == 0
        assert "Traceback" not in server.stderr


@needs_haproxy
def test_haproxy_passes_the_real_client_address(tmp_path: Path) -> None:
    """curl from 127.0.0.7 -> HAProxy (send-proxy-v2) -> trio-tls --proxy-protocol v2 -> proxy
    handler (PROXY v1) -> a service that answers with the client address it was told."""
    with (
        proxy_protocol_upstream() as upstream,
        running_server(
            tmp_path,
            "--proxy-protocol",
            "v2",
            "--handler",
            "proxy",
            "--handler-opt",
            f"upstream=127.0.0.1:{upstream}",
            "--handler-opt",
            "proxy-protocol=v1",
        ) as server,
        haproxy(tmp_path, server.port) as front,
    ):
        answer = curl(f"https://localhost:{front}/", "--interface", "127.0.0.7")
        assert answer.startswith("client 127.0.0.7:"), answer
        curl_port = answer.split(":")[1].strip()
        server.wait_for_stderr(f"127.0.0.7:{curl_port} sni=localhost", 5)
        # HAProxy's health checks announce themselves with PROXY LOCAL and are let go quietly.
        server.wait_for_stderr("health check (PROXY LOCAL)", 5)
        assert server.stop() == 0
        assert "Traceback" not in server.stderr
