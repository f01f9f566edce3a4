"""One shutdown, whoever asks for it: signals become *drain*, then *stop*; SIGHUP, a reload.

A shutdown has two steps, each taken once: drain (stop accepting, let open connections finish
within the grace period) and stop (cancel what is left, now). With `--workers` the same request
often reaches a process twice: systemd's default KillMode=control-group sends SIGTERM to every
process of the service at once, and the supervisor passes every shutdown on to its workers as
well. Counting *requests* would turn that one SIGTERM into "stop now" in each worker, cutting
requests in flight. So only a process's own signals count: its first SIGINT or SIGTERM drains,
its second stops. Orders passed between processes (workers.py) take a step directly, and taking
a step twice does nothing, so hearing the same drain from a signal and from the supervisor is
one drain. A stop only ever comes from someone's second signal: a user who insists.

SIGHUP asks servers to reload (nginx, gunicorn, systemd's ExecReload): it calls `reload`
(reload.py in a server; in the supervisor of --workers, an order passed to every worker). It is
ignored while the process starts, rather than left to its default action, which kills the
process without a word.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

log = logging.getLogger("trio_tls")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Shutdown:
    """The two steps; `draining` is what serve() waits on, `stopping` cancels everything."""

    def __init__(self) -> None:
        self.draining = trio.Event()
        self.stopping = trio.Event()

    def drain(self) -> None:
        self.draining.set()

    def stop(self) -> None:
        self.draining.set()
        self.stopping.set()


def ignore_hangups() -> None:
    """Survive SIGHUP while starting, before `watch_signals` takes it; workers inherit this."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


async def watch_signals(
    shutdown: Shutdown, signals: AsyncIterator[int], reload: Callable[[], Awaitable[None]]
) -> None:
    """Turn this process's signals (from `trio.open_signal_receiver(*SIGNALS)`) into steps,
    and SIGHUP into `reload()`."""
    taken = 0
    async for signum in signals:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            log.info("received SIGHUP: reloading")
            await reload()
            continue
        taken += 1
        if taken == 1:
            log.info("received %s: shutting down (a second signal stops at once)", name)
            shutdown.drain()
        else:
            log.warning("received %s again: stopping at once", name)
            shutdown.stop()
