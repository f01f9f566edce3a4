"""A `trio-tls serve` subprocess for tests: started on port 0, its stdout read with deadlines.

The server announces its port on the flushed "serving handler ... on https://127.0.0.1:PORT/"
line, which a reader thread picks up; every process is stopped in a `finally` (`end`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

STARTUP_TIMEOUT = 20.0  # interpreter start, imports and an RSA key generation on a slow machine
EXIT_TIMEOUT = 5.0
SERVING = re.compile(r"serving handler '(?P<handler>[^']+)' on https://127\.0\.0\.1:(?P<port>\d+)/")


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without a key log variable the caller may have set."""
    env = {name: value for name, value in os.environ.items() if name != "SSLKEYLOGFILE"}
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_tls", *args]


def pump(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    finally:
        lines.put(None)  # EOF: the process is gone (or closed its stdout)


class Server:
    """A running `trio-tls serve`; stdout lines arrive through a queue filled by a thread."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self.stdout_lines: list[str] = []
        self.port = 0
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        assert proc.stdout is not None
        self._reader = threading.Thread(target=pump, args=(proc.stdout, self._lines), daemon=True)
        self._reader.start()

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Read stdout lines until one matches, failing at the deadline or at EOF."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            self.stdout_lines.append(line)
            if match := pattern.search(line):
                return match
        pytest.fail(
            f"no line matching {pattern.pattern!r} within {timeout} s "
            f"(exit code {self.proc.poll()})\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def wait_for_stderr(self, text: str, timeout: float, count: int = 1) -> None:
        """Poll the stderr log file (log lines are flushed one by one) until some text is in it
        `count` times."""
        deadline = time.monotonic() + timeout
        while self.stderr.count(text) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(
                    f"{text!r} not logged {count} time(s) within {timeout} s\n"
                    f"stderr:\n{self.stderr}"
                )
            time.sleep(0.02)

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        """Signal the server and return its exit code, failing if it does not exit in time."""
        self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running {EXIT_TIMEOUT} s after {signum.name}")
        self.finish_output()
        return code

    def finish_output(self) -> None:
        """After exit: collect the rest of stdout."""
        self._reader.join(timeout=EXIT_TIMEOUT)
        while not self._eof:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._eof = True
            else:
                self.stdout_lines.append(line)


@contextlib.contextmanager
def running_server(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    open_files: int | None = None,
    python_flags: Sequence[str] = (),
) -> Iterator[Server]:
    """Start `trio-tls serve --port 0 ARGS` in cwd and yield it once it is serving.

    `open_files` sets the child's RLIMIT_NOFILE (soft and hard), as `ulimit -n` would;
    `python_flags` go to the interpreter (`-P`: as the `trio-tls` script, cwd not on sys.path).
    """
    stderr_path = cwd / f"server-{time.monotonic_ns()}.stderr"
    argv = command("serve", "--port", "0", *args)
    argv[1:1] = python_flags
    if open_files is not None:
        argv = ["prlimit", f"--nofile={open_files}:{open_files}", *argv]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env() if env is None else env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            # Its own process group, as a shell gives a job: os.killpg(proc.pid, SIGINT) is
            # what a Ctrl+C in a terminal sends.
            start_new_session=True,
        )
    try:
        server = Server(proc, stderr_path)
        server.port = int(server.wait_for_line(SERVING, STARTUP_TIMEOUT)["port"])
        yield server
    finally:
        end(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def end(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server the test left running as a service manager would: SIGTERM drains it, a
    second SIGTERM stops it at once, SIGKILL only if it hangs. A server that exits normally
    cleans up after itself (its workers too) and writes its coverage data; a killed one does
    neither."""
    for signum, timeout in (
        (signal.SIGTERM, 1.0),
        (signal.SIGTERM, EXIT_TIMEOUT),
        (signal.SIGKILL, EXIT_TIMEOUT),
    ):
        if proc.poll() is not None:
            return
        proc.send_signal(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    proc.wait(timeout=EXIT_TIMEOUT)
