"""`trio-tls serve --workers N`: N processes serving one listening socket, kept alive.

Python runs one core per process, so using every core means several processes. The supervisor
binds the socket itself (so a port in use is one clear error, and port 0 works), lets each
worker inherit it, and the kernel hands each new connection to whichever worker accepts first.
A worker that dies is restarted after a pause that doubles with every worker in a row that dies
within HEALTHY_RUN of its start (a broken file every new worker reads would otherwise restart
workers as fast as they can fail), up to MAX_RESTART_DELAY. Workers run `python -P -m trio_tls`:
without -P, the working directory comes first on sys.path, and a `trio_tls.py` or a handler
module there would run in every worker instead of the package the supervisor runs.

Ticket keys come from one file, so a session ticket issued by one worker resumes on any of them
(session IDs stay per worker); the supervisor rotates that file and the workers only reload it
(ticketfile). Unless the operator names the file, it lives in a private temporary directory
(private_directory) that a janitor process removes when the supervisor exits, however it exits:
the file's keys open every ticket issued, and must not outlive the server in /tmp.

Shutdown (shutdown.py) goes through a private control socket per worker (a socketpair; the
worker's end is inherited as `--control-fd`), never through signals to the workers. Each side
writes one byte when it takes a step: DRAIN or STOP. A reload (SIGHUP to the supervisor) is the
byte RELOAD, sent to every worker running at the time; a worker started later reads its files
anyway. So whoever is signalled first — the
supervisor, one worker, or all of them at once as systemd does — every process drains once, and
a second signal to any of them stops them all. The socket also covers what signals cannot:

- A worker sees EOF when the supervisor dies, even by SIGKILL or the OOM killer, and drains:
  its listener closes at once, so the port is free for the next start, and requests in flight
  still finish. No worker outlives its supervisor by more than the grace period. (Linux's
  PR_SET_PDEATHSIG would send a signal instead: not portable, and not "the user's".)
- A byte written before the worker reads it waits in the socket, so a worker whose spawn was
  still under way, or that was still importing, when the shutdown began drains once it starts.
- The supervisor reads a worker's end to EOF before it looks at the exit status, so a worker
  that shut down because someone signalled it is never taken for a crash and restarted.

Workers run in their own session, so a terminal's Ctrl+C (SIGINT to the foreground process
group) reaches only the supervisor, which passes it on: no KeyboardInterrupt tracebacks from
workers still importing, which cannot catch it yet. Signals sent to workers directly (systemd,
`kill`) count as each worker's own. A worker still draining KILL_MARGIN seconds after the grace
period, or still running STOP_MARGIN seconds after a stop, is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence

import attrs
import trio

from .privileges import Target
from .shutdown import Shutdown
from .systemd import without_notify_socket

log = logging.getLogger("trio_tls")

RESTART_DELAY = 0.5  # after a worker that ran for HEALTHY_RUN; doubled after each that did not
MAX_RESTART_DELAY = 30.0
HEALTHY_RUN = 10.0  # far longer than a worker takes to start, or to fail at it
BACKLOG = 4096
KILL_MARGIN = 5.0  # beyond the grace period, for a draining worker to finish and exit
STOP_MARGIN = 2.0  # for a stopping worker to abort its connections (each bounded at 1 s)
# Workers are CPU-bound (TLS, Python) and wait on I/O asynchronously, so more of them than CPUs
# buys nothing but memory and start-up time; beyond a few per CPU is a typo, not a choice.
WORKERS_PER_CPU = 4
DRAIN = b"d"
STOP = b"s"
RELOAD = b"r"
# A worker that SIGINT or SIGTERM reached before it could catch them (while it was starting)
# was asked to stop all the same: main() returns 130 on KeyboardInterrupt, and SIGTERM kills.
ASKED_TO_STOP = frozenset({-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT})


def cpu_count() -> int:
    """The CPUs this process may run on (taskset and cgroup cpusets narrow them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket that child processes can inherit."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def inherited_listener(fd: int) -> trio.SocketListener:
    """The supervisor's socket, in a worker."""
    return trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=fd)))


async def _tell(channel: trio.socket.SocketType, step: bytes) -> None:
    # Shielded: a stop cancels this process's tasks, this one included, in the same moment it
    # wakes it to tell the others; unshielded, the STOP byte was lost about half the time. One
    # byte to a socket the other end keeps reading does not block; the bound is for safety.
    # If the other end is gone there is nobody to tell; its EOF says so to whoever reads.
    with trio.CancelScope(shield=True), trio.move_on_after(1), contextlib.suppress(OSError):
        await channel.send(step)


async def _receive(channel: trio.socket.SocketType) -> bytes:
    """The steps the other end took since the last call; b"" once it has exited."""
    try:
        return await channel.recv(16)
    except ConnectionResetError:  # it exited with our last byte unread (Linux AF_UNIX)
        return b""


async def _pass_on(channel: trio.socket.SocketType, shutdown: Shutdown) -> None:
    await shutdown.draining.wait()
    await _tell(channel, DRAIN)
    await shutdown.stopping.wait()
    await _tell(channel, STOP)


async def follow_supervisor(
    fd: int, shutdown: Shutdown, reload: Callable[[], Awaitable[None]]
) -> None:
    """In a worker: take the steps the supervisor takes, tell it ours, drain if it dies;
    reload when it says so."""
    with trio.socket.from_stdlib_socket(socket.socket(fileno=fd)) as channel:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pass_on, channel, shutdown)
            while steps := await _receive(channel):
                if RELOAD in steps:
                    await reload()
                if STOP in steps:
                    shutdown.stop()
                elif DRAIN in steps:
                    shutdown.drain()
            if not shutdown.draining.is_set():
                log.warning("the supervisor has exited: shutting down")
                shutdown.drain()
            nursery.cancel_scope.cancel()


@attrs.define
class Backoff:
    """The pause before a worker's restart: RESTART_DELAY after a worker that ran well, doubled
    for each that died sooner than HEALTHY_RUN after its start, up to MAX_RESTART_DELAY."""

    delay: float = 0.0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= HEALTHY_RUN or not self.delay:
            self.delay = RESTART_DELAY
        else:
            self.delay = min(2 * self.delay, MAX_RESTART_DELAY)
        return self.delay


class Supervisor:
    """Keeps workers running until the shutdown drains, then sees each one out."""

    def __init__(
        self,
        command: Sequence[str],
        sock: socket.socket,
        shutdown: Shutdown,
        grace: float,
        shared_fds: Sequence[int] = (),
    ) -> None:
        self.command = command
        self.sock = sock
        self.shared_fds = tuple(shared_fds)  # inherited by every worker too (--trace-fd)
        self.shutdown = shutdown
        self.grace = grace
        self.channels: set[trio.socket.SocketType] = set()  # one per running worker

    async def reload(self) -> None:
        """Order every running worker to reload."""
        log.info("passing the reload on to %d worker(s)", len(self.channels))
        for channel in list(self.channels):
            await _tell(channel, RELOAD)

    async def keep_running(self, index: int) -> None:
        backoff = Backoff()
        while not self.shutdown.draining.is_set():
            started = trio.current_time()
            pid, code = await self._run_once(index)
            ran_for = trio.current_time() - started
            if self.shutdown.draining.is_set():
                return
            if code in ASKED_TO_STOP:
                log.info(
                    "worker %d (pid %d) was stopped by a signal: shutting down all", index, pid
                )
                self.shutdown.drain()
                return
            delay = backoff.next_delay(ran_for)
            log.warning(
                "worker %d (pid %d) exited with %s after %.1f s; restarting in %g s",
                index,
                pid,
                code,
                ran_for,
                delay,
            )
            with trio.move_on_after(delay):
                await self.shutdown.draining.wait()

    async def _run_once(self, index: int) -> tuple[int, int]:
        """Start worker `index` and relay steps both ways until it exits: (pid, status)."""
        ours, theirs = socket.socketpair()
        with trio.socket.from_stdlib_socket(ours) as channel:
            with theirs:
                # The supervisor already printed what a user needs; workers only log (stderr).
                process = await trio.lowlevel.open_process(
                    [*self.command, "--control-fd", str(theirs.fileno())],
                    pass_fds=(self.sock.fileno(), theirs.fileno(), *self.shared_fds),
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    env=without_notify_socket(),
                )
            # Only the worker holds its end now: EOF means it is exiting. The deadline still
            # holds until it has.
            self.channels.add(channel)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pass_on, channel, self.shutdown)
                    nursery.start_soon(self._deadline, process, index)
                    while steps := await _receive(channel):
                        self._heard(steps, process.pid, index)
                    code = await process.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self.channels.discard(channel)
        return process.pid, code

    def _heard(self, steps: bytes, pid: int, index: int) -> None:
        """A worker took a step (its own signal): all of them take it."""
        if STOP in steps and not self.shutdown.stopping.is_set():
            log.warning("worker %d (pid %d) is stopping at once: stopping all", index, pid)
            self.shutdown.stop()
        elif DRAIN in steps and not self.shutdown.draining.is_set():
            log.info("worker %d (pid %d) is shutting down: shutting down all", index, pid)
            self.shutdown.drain()

    async def _deadline(self, process: trio.Process, index: int) -> None:
        """Kill a worker that outlives its drain, or does not obey a stop."""
        await self.shutdown.draining.wait()
        with trio.move_on_after(self.grace + KILL_MARGIN):
            await self.shutdown.stopping.wait()
            await trio.sleep(STOP_MARGIN)
        log.warning("worker %d (pid %d) is still running: killing it", index, process.pid)
        process.kill()


async def supervise(
    worker_args: Sequence[str],
    count: int,
    sock: socket.socket,
    shutdown: Shutdown,
    grace: float,
    shared_fds: Sequence[int] = (),
    task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `count` workers until `shutdown` drains them; each gets `worker_args` and the socket.

    `task_status.started()` gives the supervisor, whose `reload()` orders the workers to."""
    command = [
        sys.executable,
        "-P",  # safe_path: not the working directory first on sys.path (module docstring)
        "-m",
        "trio_tls",
        *worker_args,
        "--listen-fd",
        str(sock.fileno()),
    ]
    supervisor = Supervisor(command, sock, shutdown, grace, shared_fds)
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(supervisor.keep_running, index)
        task_status.started(supervisor)


# The janitor: a bare interpreter (-I -S: no working directory, environment or site-packages)
# that waits for EOF on stdin, which comes when the supervisor exits in any way, even SIGKILL;
# signals meant for the server (a terminal's, systemd's) wait for that too.
_JANITOR = """\
import shutil, signal, sys
for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_IGN)
sys.stdin.buffer.read()
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


@contextlib.contextmanager
def private_directory(owner: Target | None = None) -> Iterator[str]:
    """A new 0700 temporary directory for the supervisor's secrets, removed when it exits: by
    the supervisor itself, or by the janitor process if the supervisor is killed.

    With --user (`owner`), the directory and the janitor are the user's from the start: the key
    file in it is read and rotated, and the directory removed, as the user, and no process
    stays root."""
    with contextlib.ExitStack() as cleanup:
        path = tempfile.mkdtemp(prefix="trio-tls-")
        cleanup.callback(shutil.rmtree, path, ignore_errors=True)
        if owner is not None:
            os.chown(path, owner.uid, owner.gid)
        janitor = _start_janitor(path, owner)
        if janitor is not None:
            cleanup.callback(_dismiss, janitor)
        yield path


def _start_janitor(path: str, owner: Target | None) -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _JANITOR, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",  # holds no directory busy, as a mount point that someone means to unmount
            start_new_session=True,  # no terminal's Ctrl+C reaches it
            user=None if owner is None else owner.uid,
            group=None if owner is None else owner.gid,
            extra_groups=None if owner is None else [],
        )
    except PermissionError:
        # The --user cannot run this interpreter: nor can the workers, so the server refuses
        # to start, saying so (cli/serve.py's checks of what the user can reach, after this).
        return None


def _dismiss(janitor: subprocess.Popen[bytes]) -> None:
    """EOF: the janitor removes the directory (if still there) and exits."""
    assert janitor.stdin is not None
    janitor.stdin.close()
    try:
        janitor.wait(timeout=KILL_MARGIN)
    except subprocess.TimeoutExpired:  # stopped (SIGSTOP)? Nothing is left for it to do.
        janitor.kill()
        janitor.wait()
