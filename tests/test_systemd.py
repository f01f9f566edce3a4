"""systemd: socket activation (with systemd-socket-activate, as a .socket unit would start us)
and sd_notify (a datagram socket standing in for systemd's NOTIFY_SOCKET)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_server import SERVING, STARTUP_TIMEOUT, Server, child_env, command, running_server
from .test_reload import served_by
from .test_workers import worker_pids


@contextlib.contextmanager
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(STARTUP_TIMEOUT)
        yield sock


@pytest.mark.parametrize("count", [1, 2], ids=["single", "workers"])
def test_sd_notify_ready_reloading_stopping(tmp_path: Path, count: int) -> None:
    with (
        notify_socket(tmp_path) as notify,
        running_server(
            tmp_path,
            "--workers",
            str(count),
            env=child_env(NOTIFY_SOCKET=str(tmp_path / "notify")),
        ) as server,
    ):
        assert notify.recv(4096) == b"READY=1"
        server.proc.send_signal(signal.SIGHUP)
        reloading = notify.recv(4096).decode().split("\n")
        assert reloading[0] == "RELOADING=1"
        assert reloading[1].startswith("MONOTONIC_USEC=") and reloading[1][15:].isdigit()
        assert notify.recv(4096) == b"READY=1"
        assert server.stop() == 0
        assert notify.recv(4096) == b"STOPPING=1"
        # Only the main process speaks for the service: nothing from the workers.
        notify.settimeout(0.5)
        with pytest.raises(TimeoutError):
            notify.recv(4096)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None, reason="needs systemd-socket-activate"
)
@pytest.mark.parametrize("count", [1, 2], ids=["single", "workers"])
def test_socket_activation(tmp_path: Path, count: int) -> None:
    """systemd-socket-activate binds the port and starts the server on the first connection;
    connections made before the server runs wait in the backlog, and are served."""
    port = free_port()
    stderr_path = tmp_path / "server.stderr"
    env = child_env()
    argv = [
        "systemd-socket-activate",
        "--listen",
        f"127.0.0.1:{port}",
        # It passes its children no environment but what --setenv names, as a unit's
        # Environment= would: pass the test's own on (PATH, PYTHONPATH, coverage's settings).
        *(f"--setenv={name}" for name in sorted(env)),
        *command("serve", "--handler", "hello", "--workers", str(count)),
    ]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        server = Server(proc, stderr_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:  # until systemd-socket-activate listens; this connection starts the server
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "systemd-socket-activate never listened"
                time.sleep(0.05)
        assert int(server.wait_for_line(SERVING, STARTUP_TIMEOUT)["port"]) == port
        if count > 1:
            worker_pids(server, count)
        for _ in range(3):
            served_by(port)
        assert server.stop() == 0
        assert "Traceback" not in server.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
