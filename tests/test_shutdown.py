"""One shutdown, whoever sends the signal (issue #10): real signals to real process groups.

Each test starts `trio-tls serve` in its own session (as a shell starts a job) and signals it
the way the world does: os.killpg for a terminal's Ctrl+C, every process at once for systemd's
KillMode=control-group, one pid for `kill`. A request in flight is half a keep-alive request:
the server answers it once the rest arrives, so "in flight for 2 s" needs no slow handler.
Start-up is slowed where a test needs it by a sitecustomize module on PYTHONPATH, so no test
hook lives in the server itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from trio_tls.cli.serve import SHUTDOWN_GRACE
from trio_tls.ops import workers

from .cli_server import (
    EXIT_TIMEOUT,
    SERVING,
    STARTUP_TIMEOUT,
    Server,
    child_env,
    command,
    running_server,
)

HELLO_BODY = b"Hello from Python TLS!\n"
HEAD = b"GET / HTTP/1.1\r\nHost: localhost\r\n"
IN_FLIGHT = 2.0  # how long a request stays in flight after the signal: more than "at once"

# Loaded by every Python process started with it on PYTHONPATH, before anything else runs.
SITECUSTOMIZE = '''
import os
import subprocess
import sys
import time

SPAWN_DELAY = float(os.environ.get("TEST_SPAWN_DELAY", "0"))
START_DELAY = float(os.environ.get("TEST_START_DELAY", "0"))


class SlowSecondSpawn(subprocess.Popen):
    """The supervisor's second worker runs at once, but its spawn returns SPAWN_DELAY s later."""

    spawned = 0

    def __init__(self, args, *rest, **options):
        super().__init__(args, *rest, **options)
        if "--listen-fd" in args:
            SlowSecondSpawn.spawned += 1
            if SlowSecondSpawn.spawned == 2:
                time.sleep(SPAWN_DELAY)


if SPAWN_DELAY:
    subprocess.Popen = SlowSecondSpawn
if START_DELAY and "--listen-fd" in sys.argv:
    # A worker still starting, as while it imports; the file says it has got this far.
    open(f"starting.{os.getpid()}", "w").close()
    time.sleep(START_DELAY)
'''


@pytest.fixture
def slow_start_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes load SITECUSTOMIZE (set the delays in it)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return child_env(PYTHONPATH=path)


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (a worker in its own session included)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _stat(int(entry))[1:2] == [str(pid)]:
            found.add(int(entry))
    return found


def _stat(pid: int) -> list[str]:
    """State, parent pid, ... from /proc/PID/stat; [] once it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    fields = text.rsplit(")", 1)[1].split()
    return [] if fields[0] in "ZX" else fields


def workers_of(server: Server, count: int) -> set[int]:
    """The supervisor's `count` workers, once each is running trio-tls (exec'd, not forked)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        pids = {pid for pid in children(server.proc.pid) if b"--listen-fd" in _cmdline(pid)}
        if len(pids) >= count:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} workers:\n{server.stderr}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_starting(cwd: Path, pids: set[int]) -> None:
    """Each of `pids` sleeps in SITECUSTOMIZE now, with Python's SIGINT handler in place."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not all((cwd / f"starting.{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, "the workers did not reach sitecustomize"
        time.sleep(0.02)


def wait_gone(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive := {pid for pid in pids if _stat(pid)}:
        assert time.monotonic() < deadline, f"still running after {timeout} s: {alive}"
        time.sleep(0.02)


def wait_serving(server: Server, count: int) -> None:
    """All `count` workers listen (their log lines say so)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while server.stderr.count("listening on") < count:
        assert time.monotonic() < deadline, f"workers did not start:\n{server.stderr}"
        time.sleep(0.02)


def wait_count(server: Server, text: str, count: int) -> None:
    server.wait_for_stderr(text, EXIT_TIMEOUT, count)


def wait_match(server: Server, pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + EXIT_TIMEOUT
    while not (found := pattern.search(server.stderr)):
        assert time.monotonic() < deadline, f"{pattern.pattern!r} not logged:\n{server.stderr}"
        time.sleep(0.02)
    return found


def exit_code(server: Server, timeout: float) -> int:
    try:
        code = server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {timeout} s later\nstderr:\n{server.stderr}")
    server.finish_output()
    return code


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_to_eof(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while chunk := tls.recv(65536):
        data += chunk
    return data


class InFlight:
    """A keep-alive connection holding half a request, which a drain must let finish."""

    def __init__(self, port: int) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        # An unclean end (an alert, a reset, a killed worker) raises instead of reading as EOF.
        self.tls = client_context().wrap_socket(
            raw, server_hostname="localhost", suppress_ragged_eofs=False
        )
        # A whole request and the next one's head in one TLS record: once the first answer is
        # back, the server is reading the rest of the second, not idling between requests.
        self.tls.sendall(HEAD + b"\r\n" + HEAD)
        answer = b""
        while not answer.endswith(HELLO_BODY):
            answer += self.tls.recv(65536)

    def finish(self) -> bytes:
        """Send the rest of the request; the whole answer, closed cleanly (close_notify)."""
        with self.tls:
            self.tls.sendall(b"Connection: close\r\n\r\n")
            return read_to_eof(self.tls)


def assert_answered(response: bytes) -> None:
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response
    assert response.endswith(HELLO_BODY), response


def get(port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        client_context().wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(HEAD + b"Connection: close\r\n\r\n")
        return read_to_eof(tls)


def assert_drained_in_flight(tmp_path: Path, send: str) -> Server:
    """Start 2 workers, hold a request in flight, `send` the signal(s); check one drain."""
    with running_server(tmp_path, "--workers", "2") as server:
        pids = workers_of(server, 2)
        wait_serving(server, 2)
        in_flight = InFlight(server.port)
        if send == "group":  # Ctrl+C in a terminal
            os.killpg(server.proc.pid, signal.SIGINT)
        elif send == "every process":  # systemd's KillMode=control-group
            for pid in (server.proc.pid, *pids):
                os.kill(pid, signal.SIGTERM)
        elif send == "supervisor":  # `kill PID`, docker stop, KillMode=mixed
            os.kill(server.proc.pid, signal.SIGTERM)
        else:  # one worker
            os.kill(min(pids), signal.SIGTERM)
        server.wait_for_stderr("shutting down: 1 connection(s) open", EXIT_TIMEOUT)
        time.sleep(IN_FLIGHT)
        assert_answered(in_flight.finish())
        assert exit_code(server, SHUTDOWN_GRACE) == 0
        wait_gone(pids, 1)
    assert "stopping at once" not in server.stderr
    assert server.stderr.count(" connection(s) open") == 2  # each worker drained, once
    assert "restarting" not in server.stderr
    assert "Traceback" not in server.stderr
    return server


@pytest.mark.parametrize("send", ["group", "every process", "supervisor", "one worker"])
def test_one_signal_drains_every_worker_once(tmp_path: Path, send: str) -> None:
    server = assert_drained_in_flight(tmp_path, send)
    if send == "one worker":
        assert "is shutting down: shutting down all" in server.stderr


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    with running_server(tmp_path, "--workers", "2") as server:
        pids = workers_of(server, 2)
        wait_serving(server, 2)
        in_flight = InFlight(server.port)
        os.killpg(server.proc.pid, signal.SIGINT)
        server.wait_for_stderr("shutting down: 1 connection(s) open", EXIT_TIMEOUT)
        stopped = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGINT)
        assert exit_code(server, workers.STOP_MARGIN + 1) == 0
        wait_gone(pids, 1)
        assert time.monotonic() - stopped < workers.STOP_MARGIN + 1  # not the grace period
        with pytest.raises((ssl.SSLError, OSError)):  # the request was cut
            in_flight.finish()
    assert "received SIGINT again: stopping at once" in server.stderr
    assert "killing" not in server.stderr  # they stopped when told


def test_a_worker_signalled_twice_stops_them_all(tmp_path: Path) -> None:
    """Someone insists on one worker (`kill` twice): it stops at once, tells the supervisor,
    and the supervisor stops every worker and itself, cleanly and without the grace period."""
    with running_server(tmp_path, "--workers", "2") as server:
        pids = workers_of(server, 2)
        wait_serving(server, 2)
        in_flight = InFlight(server.port)
        os.kill(server.proc.pid, signal.SIGTERM)  # a drain: the idle worker exits at once
        line = re.compile(r"\[(\d+)\] shutting down: 1 connection\(s\) open")
        holder = int(wait_match(server, line)[1])
        assert holder in pids
        # The drain came from the supervisor, so the worker's own first signal is its first:
        # one at a time, as trio delivers a signal that comes again before it is read once.
        os.kill(holder, signal.SIGTERM)
        wait_count(server, f"[{holder}] received SIGTERM: shutting down", 1)
        stopped = time.monotonic()
        os.kill(holder, signal.SIGTERM)
        assert exit_code(server, workers.STOP_MARGIN + 1) == 0
        assert time.monotonic() - stopped < workers.STOP_MARGIN + 1  # not the grace period
        wait_gone(pids, 1)
        with pytest.raises((ssl.SSLError, OSError)):  # the request was cut
            in_flight.finish()
    assert f"[{holder}] received SIGTERM again: stopping at once" in server.stderr
    assert f"(pid {holder}) is stopping at once: stopping all" in server.stderr
    assert "killing" not in server.stderr
    assert "Traceback" not in server.stderr


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL (or the OOM killer): the port frees at once, requests in flight still finish."""
    with running_server(tmp_path, "--workers", "2") as server:
        pids = workers_of(server, 2)
        wait_serving(server, 2)
        in_flight = InFlight(server.port)
        server.proc.kill()
        server.proc.wait()
        deadline = time.monotonic() + 2
        while True:  # the next start can listen on the port
            try:
                workers.bind("127.0.0.1", server.port).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the port is still taken"
                time.sleep(0.05)
        assert_answered(in_flight.finish())
        wait_gone(pids, 2)
    assert server.stderr.count("the supervisor has exited: shutting down") == 2


@pytest.mark.parametrize("count", [1, 2], ids=["single", "workers"])
def test_sighup_reloads_and_never_stops(tmp_path: Path, count: int) -> None:
    """Whoever gets SIGHUP (the supervisor, a worker, the whole group) reloads and serves on;
    test_reload.py checks what a reload does."""
    with running_server(tmp_path, "--workers", str(count)) as server:
        targets = [server.proc.pid]
        if count > 1:
            targets += workers_of(server, count)
            wait_serving(server, count)
        logged = "received SIGHUP: reloading"
        # One at a time: trio delivers a signal that arrives again before it is read once.
        for sent, pid in enumerate(targets, 1):
            os.kill(pid, signal.SIGHUP)
            wait_count(server, logged, sent)
        os.killpg(server.proc.pid, signal.SIGHUP)  # a terminal hanging up
        wait_count(server, logged, len(targets) + 1)
        assert_answered(get(server.port))
        assert server.stop() == 0


def test_ctrl_c_while_workers_start_up(tmp_path: Path, slow_start_env: dict[str, str]) -> None:
    """No KeyboardInterrupt tracebacks from workers still importing, and none left behind."""
    env = {**slow_start_env, "TEST_START_DELAY": "2", "TEST_SPAWN_DELAY": "3"}
    with running_server(tmp_path, "--workers", "2", env=env) as server:
        pids = workers_of(server, 2)
        wait_starting(tmp_path, pids)
        os.killpg(server.proc.pid, signal.SIGINT)  # the supervisor knows only one of them yet
        assert exit_code(server, 3 + STARTUP_TIMEOUT) == 0
        wait_gone(pids, 1)
    for text in ("Traceback", "KeyboardInterrupt", "Fatal Python error", "killing"):
        assert text not in server.stderr


def test_sigterm_to_a_worker_still_starting_drains_all(
    tmp_path: Path, slow_start_env: dict[str, str]
) -> None:
    """Killed by SIGTERM before it could catch it: asked to stop, not crashed."""
    env = {**slow_start_env, "TEST_START_DELAY": "2"}
    with running_server(tmp_path, "--workers", "2", env=env) as server:
        pids = workers_of(server, 2)
        wait_starting(tmp_path, pids)
        os.kill(min(pids), signal.SIGTERM)
        assert exit_code(server, 2 + STARTUP_TIMEOUT) == 0
        wait_gone(pids, 1)
    assert f"(pid {min(pids)}) was stopped by a signal: shutting down all" in server.stderr
    assert "restarting" not in server.stderr


def test_a_worker_spawned_after_the_shutdown_began_exits(
    tmp_path: Path, slow_start_env: dict[str, str]
) -> None:
    """Worker 1's spawn returned only after the signal came: it drains all the same."""
    env = {**slow_start_env, "TEST_SPAWN_DELAY": "3"}
    with running_server(tmp_path, "--workers", "2", env=env) as server:
        pids = workers_of(server, 2)
        wait_serving(server, 2)
        os.kill(server.proc.pid, signal.SIGTERM)
        assert exit_code(server, 3 + STARTUP_TIMEOUT) == 0
        wait_gone(pids, 1)
    # Both workers drained by themselves: the late one was told, not killed at the deadline.
    assert server.stderr.count("shutting down: 0 connection(s) open") == 2
    assert "killing" not in server.stderr


@pytest.mark.parametrize("count", [10_000, 4 * workers.cpu_count() + 1])
def test_too_many_workers(tmp_path: Path, count: int) -> None:
    proc = subprocess.Popen(
        command("serve", "--port", "0", "--workers", str(count)),
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=STARTUP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"--workers {count} was accepted")
    cpus = workers.cpu_count()
    assert proc.returncode == 1
    assert not SERVING.search(out.decode())
    assert err.decode().splitlines() == [
        f"trio-tls: error: --workers {count} is too many for {cpus} CPU(s): at most "
        f"{4 * cpus} (4 per CPU; one per CPU is usually best)"
    ]
