"""`trio-tls serve --workers N`: N processes serving one listening socket, kept alive.

Python runs one core per process, so using every core means several processes. The supervisor
binds the socket itself (so a port in use is one clear error, and port 0 works), lets each
worker inherit it, and the kernel hands each new connection to whichever worker accepts first.
A worker that dies is restarted after a short pause. SIGTERM or SIGINT is passed on to every
worker, which drains as a single server would; a second signal, or workers still running after
the grace period, are killed. Ticket keys come from one file, so a session ticket issued by one
worker resumes on any of them (session IDs stay per worker); the supervisor rotates that file and
the workers only reload it (ticketfile).
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence

import trio

log = logging.getLogger("trio_tls")

RESTART_DELAY = 0.5
BACKLOG = 4096
KILL_MARGIN = 5.0


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


async def supervise(
    worker_args: Sequence[str], count: int, sock: socket.socket, grace: float
) -> None:
    """Run `count` workers until a signal; each gets `worker_args` and the socket's fd."""
    command = [
        sys.executable,
        "-m",
        "trio_tls",
        *worker_args,
        "--listen-fd",
        str(sock.fileno()),
    ]
    stopping = trio.Event()
    processes: dict[int, trio.Process] = {}

    async def keep_running(index: int) -> None:
        while not stopping.is_set():
            # The supervisor already printed what a user needs; workers only log (stderr).
            process = await trio.lowlevel.open_process(
                command, pass_fds=(sock.fileno(),), stdout=subprocess.DEVNULL
            )
            processes[index] = process
            code = await process.wait()
            if stopping.is_set():
                return
            log.warning("worker %d (pid %d) exited with %s; restarting", index, process.pid, code)
            with trio.move_on_after(RESTART_DELAY):
                await stopping.wait()

    def signal_all(signum: int) -> None:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signum)

    async def watch_signals(signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            if stopping.is_set():  # a second signal: stop now
                signal_all(signal.SIGKILL)
                continue
            log.info("received %s: stopping %d workers", signal.Signals(signum).name, count)
            stopping.set()
            signal_all(signal.SIGTERM)

    async def kill_stragglers() -> None:
        await stopping.wait()
        await trio.sleep(grace + KILL_MARGIN)
        signal_all(signal.SIGKILL)

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, signals)
            nursery.start_soon(kill_stragglers)
            async with trio.open_nursery() as workers:
                for index in range(count):
                    workers.start_soon(keep_running, index)
            nursery.cancel_scope.cancel()
