"""`trio-tls serve --workers N`: several processes, one socket, shared and rotated ticket keys."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import trustme

from trio_tls.engine.sessions import TicketKey
from trio_tls.ops.ticketfile import RELOAD_INTERVAL, KeyFile, KeyLine, read_key_file, write_key_file
from trio_tls.ops.workers import HEALTHY_RUN, RESTART_DELAY, Backoff

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
        server.wait_for_stderr(f"(pid {victim}) exited with -9 after", EXIT_TIMEOUT)
        assert "; restarting in 0.5 s" in server.stderr
        worker_pids(server, 3)  # the replacement announced itself
        for _ in range(4):
            get(server.port, client_context()).close()
        assert server.stop(signal.SIGINT) == 0


def test_the_restart_delay_doubles_while_workers_fail_and_resets_after_one_ran_well() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay(ran_for=1.0) for _ in range(10)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert backoff.next_delay(ran_for=HEALTHY_RUN) == RESTART_DELAY
    assert backoff.next_delay(ran_for=HEALTHY_RUN - 1) == 2 * RESTART_DELAY


RESTART = re.compile(
    r"(\d\d):(\d\d),(\d{3}) WARNING \[\d+\] worker 0 \(pid \d+\) exited with 1 after "
    r"[\d.]+ s; restarting in ([\d.]+) s"
)


def test_workers_that_fail_at_start_are_restarted_ever_more_slowly(
    tmp_path: Path, ca: trustme.CA
) -> None:
    """A certificate broken after the start (a renewal gone wrong) fails every new worker: the
    pause before each restart doubles, where it used to be half a second every time."""
    certfile = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(certfile))
    with running_server(tmp_path, "--workers", "2", "--certfile", str(certfile)) as server:
        pids = worker_pids(server, 2)
        certfile.write_text("not a certificate\n")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(restarts := RESTART.findall(server.stderr)) < 3:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        # The SIGKILL's restart came after 0.5 s; then each failure doubles the pause...
        delays = [float(found[3]) for found in restarts[:3]]
        assert delays == [1, 2, 4], server.stderr
        # ...and each came at least the pause announced before it after the one before.
        times = [int(m) * 60 + int(s) + int(ms) / 1000 for m, s, ms, _ in restarts[:3]]
        for before, after, delay in zip(times, times[1:], delays, strict=False):
            assert (after - before) % 3600 >= delay
        assert server.stop() == 0


MALICIOUS = """\
import pathlib, sys
pathlib.Path("HIJACKED").write_text(sys.argv[0])
raise SystemExit(3)
"""


@pytest.mark.parametrize("module", ["trio_tls.py", "trio_tls/__init__.py", "trio_tls_handlers.py"])
def test_a_module_in_the_working_directory_never_runs_in_a_worker(
    tmp_path: Path, module: str
) -> None:
    """Workers used to run `python -m trio_tls`, which puts the working directory first on
    sys.path: a `trio_tls.py` there, or a module named like the handlers' package, ran in every
    worker. The supervisor runs as the `trio-tls` script does, without the directory (-P)."""
    (tmp_path / module).parent.mkdir(exist_ok=True)
    (tmp_path / module).write_text(MALICIOUS)
    with running_server(tmp_path, "--workers", "2", python_flags=["-P"]) as server:
        worker_pids(server, 2)
        for _ in range(4):
            get(server.port, client_context()).close()
        assert server.stop() == 0
    assert not (tmp_path / "HIJACKED").exists()


def key_directory(tmp_path: Path) -> Path:
    """The supervisor's private directory, in the TMPDIR the test gave it."""
    (found,) = (tmp_path / "tmp").glob("trio-tls-*")
    return found


def test_the_key_directory_is_removed_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """The file's keys open every ticket issued: they must not stay in /tmp for the next
    reboot. A janitor process removes the directory when the supervisor dies, however."""
    (tmp_path / "tmp").mkdir()
    env = child_env(TMPDIR=str(tmp_path / "tmp"))
    with running_server(tmp_path, "--workers", "2", env=env) as server:
        pids = worker_pids(server, 2)
        directory = key_directory(tmp_path)
        assert (directory / "tickets.keys").exists()
        server.proc.kill()
        deadline = time.monotonic() + 10
        while directory.exists() or any(Path(f"/proc/{pid}").exists() for pid in pids):
            assert time.monotonic() < deadline, "the key directory or a worker outlived it"
            time.sleep(0.05)

    with running_server(tmp_path, "--workers", "1", env=env) as server:
        assert server.stop() == 0
    assert list((tmp_path / "tmp").iterdir()) == []  # one process keeps its keys in memory


def test_a_vanished_key_directory_is_made_again_with_its_keys(tmp_path: Path) -> None:
    """Removed under a running server (by a cleaner of /tmp): the supervisor makes it again
    with the keys it held, so workers started afterwards can start, and open old tickets."""
    (tmp_path / "tmp").mkdir()
    env = child_env(TMPDIR=str(tmp_path / "tmp"))
    with running_server(tmp_path, "--workers", "2", env=env) as server:
        pids = worker_pids(server, 2)
        directory = key_directory(tmp_path)
        ctx = client_context()
        before = new_session(server.port, ctx)
        shutil.rmtree(directory)
        server.wait_for_stderr("had vanished: made it again, with the keys it held", 20)
        assert directory.stat().st_mode & 0o777 == 0o700
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # their successors read the file afresh
        worker_pids(server, 4)
        for _ in range(4):
            assert resumes(server.port, ctx, before)
        assert server.stop() == 0


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


OPENSSL = shutil.which("openssl")
LOG_LINE = re.compile(r"\[(\d+)\] 127\.0\.0\.1:\d+ sni=\S+ alpn=\S+ suite=(\S+) resumed=(\w+) ")


def s_client(port: int, *args: str) -> str:
    assert OPENSSL is not None
    result = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", *args],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    return (result.stdout + result.stderr).decode("utf-8", "replace")


def wait_for_session_file(path: Path, holder: subprocess.Popen[bytes]) -> None:
    """s_client writes -sess_out when the NewSessionTicket arrives, after the handshake."""
    deadline = time.monotonic() + 20
    while not (path.exists() and b"END SSL SESSION PARAMETERS" in path.read_bytes()):
        assert holder.poll() is None, "s_client ended before a ticket arrived"
        assert time.monotonic() < deadline, "no TLS 1.3 ticket arrived"
        time.sleep(0.05)


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_a_tls13_ticket_resumes_on_the_worker_that_did_not_issue_it(tmp_path: Path) -> None:
    """The issuing connection is held open, so its worker (at --max-connections 1) leaves the
    next ones to the other: each of those resumes the ticket, over TLS 1.3, through the keys
    both read from --ticket-key-file."""
    session = tmp_path / "session.pem"
    args = ("--workers", "2", "--max-connections", "1", "--ticket-key-file", "tickets.keys")
    with running_server(tmp_path, *args) as server:
        pids = worker_pids(server, 2)
        assert OPENSSL is not None
        argv = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_3"]
        holder = subprocess.Popen(
            [*argv, "-sess_out", str(session)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_session_file(session, holder)
            for _ in range(3):
                output = s_client(server.port, "-sess_in", str(session))
                assert "Reused, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in output, output
        finally:
            out, _ = holder.communicate(b"", timeout=EXIT_TIMEOUT)
        assert b"New, TLSv1.3" in out, out
        server.wait_for_stderr(" resumed=", EXIT_TIMEOUT, count=4)
        served = [
            (int(pid), suite, resumed) for pid, suite, resumed in LOG_LINE.findall(server.stderr)
        ]
        (issuer,) = [pid for pid, _, resumed in served if resumed == "no"]
        resumers = {pid for pid, _, resumed in served if resumed == "yes"}
        assert resumers == pids - {issuer}, served
        assert {suite for _, suite, _ in served} == {"TLS_AES_128_GCM_SHA256"}
        assert server.stop() == 0
