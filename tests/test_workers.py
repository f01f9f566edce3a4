"""`trio-tls serve --workers N`: several processes, one socket, shared ticket keys."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time
from pathlib import Path

from .cli_server import EXIT_TIMEOUT, Server, running_server

WORKER = re.compile(r"\[(\d+)\] listening on")


def worker_pids(server: Server, count: int, timeout: float = 20) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = {int(pid) for pid in WORKER.findall(server.stderr)}
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} workers started:\n{server.stderr}")


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    response = b""
    while chunk := tls.recv(65536):
        response += chunk
    assert response.endswith(b"Hello from Python TLS!"), response
    return tls


def test_workers_share_the_port_and_ticket_keys(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "2") as server:
        assert "with 2 workers" in server.stdout
        pids = worker_pids(server, 2)
        ctx = client_context()
        first = get(server.port, ctx)
        session = first.session
        first.close()
        # Whichever worker each connection lands on, the ticket resumes there.
        for _ in range(12):
            tls = get(server.port, ctx, session)
            assert tls.session_reused
            tls.close()
        served_by = set(map(int, re.findall(r"\[(\d+)\] 127\.0\.0\.1:\d+ TLS_", server.stderr)))
        assert served_by <= pids
        assert server.stop() == 0


def test_a_dead_worker_is_restarted(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "2") as server:
        victim = min(worker_pids(server, 2))
        os.kill(victim, signal.SIGKILL)
        server.wait_for_stderr(f"(pid {victim}) exited with -9; restarting", EXIT_TIMEOUT)
        worker_pids(server, 3)  # the replacement announced itself
        for _ in range(4):
            get(server.port, client_context()).close()
        assert server.stop(signal.SIGINT) == 0


def test_workers_write_the_key_log_and_warn_once(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "2", "--key-log-file", "server.keys") as server:
        worker_pids(server, 2)
        get(server.port, client_context()).close()
        assert server.stop() == 0
    assert server.stderr.count("writing TLS secrets to server.keys") == 1
    lines = (tmp_path / "server.keys").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CLIENT_RANDOM ")
    assert (tmp_path / "server.keys").stat().st_mode & 0o777 == 0o600
