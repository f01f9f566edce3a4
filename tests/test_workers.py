"""`trio-tls serve --workers N`: several processes, one socket, shared and rotated ticket keys."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from trio_tls.engine.sessions import TicketKey
from trio_tls.ops.ticketfile import RELOAD_INTERVAL, KeyFile, KeyLine, read_key_file, write_key_file

from .cli_server import EXIT_TIMEOUT, Server, child_env, command, running_server

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
    assert response.endswith(b"Hello from Python TLS!\n"), response
    return tls


def served_by(server: Server, client_port: int) -> int:
    """The worker that served the client on `client_port`: the pid on the connection's log
    line, written when it closed."""
    pattern = re.compile(rf"\[(\d+)\] 127\.0\.0\.1:{client_port} sni=")
    deadline = time.monotonic() + EXIT_TIMEOUT
    while not (found := pattern.search(server.stderr)):
        assert time.monotonic() < deadline, f"no log line for port {client_port}:\n{server.stderr}"
        time.sleep(0.02)
    return int(found[1])


def test_workers_share_the_port_and_ticket_keys(tmp_path: Path) -> None:
    """Each worker takes at most one connection at a time here (--max-connections 1), so while
    one holds a connection open the other must accept the next: two workers certainly serve,
    and a ticket issued by one resumes on the other."""
    with running_server(tmp_path, "--workers", "2", "--max-connections", "1") as server:
        assert "with 2 workers" in server.stdout
        pids = worker_pids(server, 2)
        ctx = client_context()
        first = get(server.port, ctx)  # the server closes it (Connection: close)
        session = first.session
        issuer = served_by(server, first.getsockname()[1])
        first.close()
        # A keep-alive connection held open: its worker is at its cap and stops accepting.
        holder = ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", server.port), timeout=10),
            server_hostname="localhost",
            session=session,
        )
        holder.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert holder.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert holder.session_reused
        # Whichever worker holds it, the next connections land on the other one, and resume.
        others = []
        for _ in range(3):
            tls = get(server.port, ctx, session)
            assert tls.session_reused
            others.append(tls.getsockname()[1])
            tls.close()
        others_served_by = {served_by(server, port) for port in others}
        holder_port = holder.getsockname()[1]
        holder.close()
        held_by = served_by(server, holder_port)
        assert others_served_by == pids - {held_by}
        # So the ticket `issuer` sealed resumed on both workers: on one that did not seal it.
        assert {held_by, *others_served_by} == pids
        assert issuer in pids
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


def new_session(port: int, ctx: ssl.SSLContext) -> ssl.SSLSession:
    tls = get(port, ctx)
    session = tls.session
    tls.close()
    assert session is not None
    return session


def resumes(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession) -> bool:
    tls = get(port, ctx, session)
    reused = tls.session_reused
    tls.close()
    return reused


def ticket_keys_rotate(path: Path) -> None:
    result = subprocess.run(
        command("ticket-keys", "rotate", str(path)),
        env=child_env(),
        capture_output=True,
        timeout=20,
        check=True,
    )
    assert result.stdout


def test_the_supervisor_rotates_the_key_file_and_workers_only_read_it(tmp_path: Path) -> None:
    path = tmp_path / "tickets.keys"
    old = TicketKey.generate()
    path.write_text((old.name + old.secret).hex() + "\n")  # the first format, two hours old
    path.chmod(0o600)
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    with running_server(tmp_path, "--workers", "2", "--ticket-key-file", str(path)) as server:
        for pid in worker_pids(server, 2):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert argv[argv.index(b"--ticket-key-rotation") + 1] == b"external"
        deadline = time.monotonic() + 10
        while (rotated := read_key_file(path)[0]).sealing.key == old:
            assert time.monotonic() < deadline, "the supervisor did not rotate the stale file"
            time.sleep(0.05)
        assert [line.role for line in rotated.lines] == ["next", "seal", "open"]
        time.sleep(RELOAD_INTERVAL + 0.1)
        ctx = client_context()
        session = new_session(server.port, ctx)
        for _ in range(6):
            assert resumes(server.port, ctx, session)
        assert server.stop() == 0


def test_workers_follow_a_key_file_rotated_by_another_program(tmp_path: Path) -> None:
    """The fleet setup: `ticket-keys rotate` (from cron, say) rotates; every worker reloads."""
    path = tmp_path / "tickets.keys"
    ticket_keys_rotate(path)  # makes it
    args = ("--workers", "2", "--ticket-key-file", str(path), "--ticket-key-rotation", "external")
    with running_server(tmp_path, *args) as server:
        worker_pids(server, 2)
        ctx = client_context()
        before = new_session(server.port, ctx)
        ticket_keys_rotate(path)
        rotated, _ = read_key_file(path)
        time.sleep(RELOAD_INTERVAL + 0.1)
        after = new_session(server.port, ctx)
        for _ in range(4):
            assert resumes(server.port, ctx, before)  # its key is retired, not gone
            assert resumes(server.port, ctx, after)

        # Take away the key that sealed since the rotation: if the workers use it, as they
        # must, `after` stops resuming while `before` still does.
        (retired,) = [line for line in rotated.lines if line.role == "open"]
        write_key_file(path, KeyFile((KeyLine("seal", retired.key, retired.since),)))
        time.sleep(RELOAD_INTERVAL + 0.1)
        for _ in range(4):
            assert resumes(server.port, ctx, before)
            assert not resumes(server.port, ctx, after)
        assert server.stop() == 0
