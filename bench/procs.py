"""Processes for the benchmark: servers, client subprocesses, and reading /proc about them.

Nothing here may hang the benchmark: every wait has a timeout, and every process started is
killed in a `finally` (terminate, a short grace, then kill) whatever went wrong. Server CPU time
comes from /proc/<pid>/stat (utime + stime, in clock ticks of 1/SC_CLK_TCK seconds, so 10 ms
resolution: measurements run long enough for that not to matter) and memory from VmRSS in
/proc/<pid>/status. CPU placement: the benchmark pins itself, and so every client it starts, to
the CPUs left after the first one, which each server takes alone (`--cpu`); the `workers` and
`crypto-threads` measurements lift that pinning for their duration (Placement.unpinned).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# `trio-tls serve` drains for 5 s on SIGTERM and its supervisor kills workers 5 s after that:
# give it the time to stop by itself before killing the whole process group.
SERVE_STOP_TIMEOUT = 15.0
SERVE_READY = re.compile(r"^serving handler .* on https://[^/]*:(\d+)/")


@attrs.frozen
class Placement:
    """Which CPU the server gets and which ones the clients share; None when there is one."""

    server_cpu: int | None
    client_cpus: frozenset[int]

    @classmethod
    def pin(cls) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, frozenset(cpus))
        placement = cls(cpus[0], frozenset(cpus[1:]))
        os.sched_setaffinity(0, placement.client_cpus)  # inherited by every client we start
        return placement

    @contextmanager
    def unpinned(self) -> Iterator[None]:
        """Let this process, and every process it starts meanwhile, use every CPU again.

        For measuring how a server scales over cores, which a pinned server cannot do.
        """
        if self.server_cpu is None:
            yield
            return
        os.sched_setaffinity(0, self.client_cpus | {self.server_cpu})
        try:
            yield
        finally:
            os.sched_setaffinity(0, self.client_cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_descriptors(pid: int) -> int:
    """How many file descriptors a process holds: one per connection, and a few of its own."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for_descriptors(pid: int, at_most: int, timeout: float) -> None:
    """Wait until a process holds no more than `at_most` descriptors.

    For a server to finish closing connections its clients dropped: until it has, it is still
    busy, and would steal CPU from whatever is measured next on its CPU.
    """
    deadline = time.monotonic() + timeout
    while (held := open_descriptors(pid)) > at_most:
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} still holds {held} descriptors after {timeout} s")
        time.sleep(0.05)


def _stop(
    process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT, group: bool = False
) -> None:
    """SIGTERM, then SIGKILL after `timeout`: to the process group if `group` (its own)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if group:
                # Not reaped yet, so its pid is still the group's id and cannot name another.
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _read_line(stream: IO[str], timeout: float, what: str) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        raise RuntimeError(f"{what}: no output within {timeout:.0f} s")
    return line


def _wait_for_line(fd: int, pattern: re.Pattern[str], timeout: float, what: str) -> re.Match[str]:
    """Read lines from a pipe until one matches, skipping the others (e.g. a fingerprint).

    From the raw fd, not a buffered file: a readline() may buffer several lines that arrived
    together, and select() would then wait for data already read.
    """
    deadline = time.monotonic() + timeout
    pending = b""
    while True:
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if match := pattern.match(line.decode(errors="replace")):
                return match
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
        if not ready:
            raise RuntimeError(f"{what}: not ready within {timeout:.0f} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"{what}: exited before it was ready")
        pending += chunk


@attrs.frozen
class Server:
    implementation: str
    pid: int
    port: int


@contextmanager
def server(
    implementation: str,
    handler: str,
    cert: tuple[Path, Path],
    placement: Placement,
    connections: int = 0,
) -> Iterator[Server]:
    """Run `python -m bench.server` until the block ends; yields once it listens.

    `connections`: how many the benchmark will hold open at once, so that the server makes sure
    of its file descriptors first.
    """
    command = [sys.executable, "-m", "bench.server", implementation, "--handler", handler]
    command += ["--certfile", str(cert[0]), "--keyfile", str(cert[1])]
    command += ["--connections", str(connections)]
    if placement.server_cpu is not None:
        command += ["--cpu", str(placement.server_cpu)]
    # The server stops when its stdin closes: if we die, so does it (see bench.server).
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(_read_line(process.stdout, START_TIMEOUT, f"{implementation} server"))
        yield Server(implementation, process.pid, port)
        if process.poll() is not None:
            raise RuntimeError(f"{implementation} server died (status {process.returncode})")
    finally:
        _stop(process)


@contextmanager
def trio_tls_serve(
    cert: tuple[Path, Path], host: str, suite: str, group: str, options: Sequence[str] = ()
) -> Iterator[Server]:
    """Run the real `trio-tls serve` (hello handler) with `options` until the block ends.

    The CLI rather than bench.server, because what is measured is part of it (the `--workers`
    supervisor and its shared socket, `--crypto-threads`). It does not watch its stdin as
    bench.server does, so it gets a process group of its own: if the supervisor does not stop on
    SIGTERM in time, SIGKILL goes to the group and so reaches the workers too, instead of leaving
    them orphaned and listening. Yields once it prints its URL; with several workers the socket
    listens by then, and connections wait in its backlog until the workers accept. The Server's
    pid is the supervisor's (or the single server's): with workers, its CPU time does not
    include theirs.
    """
    command = [sys.executable, "-m", "trio_tls", "serve", *options]
    command += ["--host", host, "--port", "0", "--log-level", "warning"]
    command += ["--certfile", str(cert[0]), "--keyfile", str(cert[1])]
    command += ["--ciphers", suite, "--groups", group]
    what = " ".join(["trio-tls serve", *options])
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, bufsize=0, process_group=0
    )
    try:
        assert process.stdout is not None
        match = _wait_for_line(process.stdout.fileno(), SERVE_READY, START_TIMEOUT, what)
        yield Server(what, process.pid, int(match[1]))
        if process.poll() is not None:
            raise RuntimeError(f"{what} died (status {process.returncode})")
    finally:
        _stop(process, SERVE_STOP_TIMEOUT, group=True)


def run(command: Sequence[str], timeout: float) -> str:
    """Run a command to completion; its stdout. Killed on timeout (subprocess.run does that)."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr[-500:]}")
    return result.stdout


def client_command(mode: str, port: int, *options: object) -> list[str]:
    command = [sys.executable, "-m", "bench.client", mode, "--port", str(port)]
    return command + [str(option) for option in options]


def _last_json(output: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def run_client(mode: str, port: int, *options: object, timeout: float) -> dict[str, Any]:
    return _last_json(run(client_command(mode, port, *options), timeout))


def run_clients(commands: Sequence[Sequence[str]], timeout: float) -> list[dict[str, Any]]:
    """Run client processes at the same time; their JSON results, in order."""
    processes: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            processes.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        deadline = time.monotonic() + timeout
        results = []
        for process in processes:
            remaining = max(0.1, deadline - time.monotonic())
            stdout, stderr = process.communicate(timeout=remaining)
            if process.returncode != 0:
                raise RuntimeError(f"client failed ({process.returncode}): {stderr[-500:]}")
            results.append(_last_json(stdout))
        return results
    finally:
        for process in processes:
            _stop(process)


@contextmanager
def held_clients(
    commands: Sequence[Sequence[str]], timeout: float
) -> Iterator[list[dict[str, Any]]]:
    """Start clients that each report once (e.g. "connections open") and then wait for us.

    All start at once, so that they do their work (opening connections, say) in parallel; yields
    their first reports, in order, once every one has reported, within `timeout` in all. On
    leaving, closes the clients' stdin, which tells them to finish, and waits for them.
    """
    processes: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            processes.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        deadline = time.monotonic() + timeout
        reports = []
        for process in processes:
            assert process.stdout is not None
            remaining = max(0.1, deadline - time.monotonic())
            reports.append(json.loads(_read_line(process.stdout, remaining, "client")))
        yield reports
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
        deadline = time.monotonic() + timeout
        for process in processes:
            process.wait(max(0.1, deadline - time.monotonic()))
    finally:
        for process in processes:
            _stop(process)
