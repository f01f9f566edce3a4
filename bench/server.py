"""`python -m bench.server {trio-tls|trio-ssl}`: one benchmark server, alone in its process.

Each server gets a process of its own so that its CPU time and memory can be read from
/proc/<pid> without the other server or the clients in them, and, with `--cpu`, one CPU of its
own (the clients run on the others) so that client work never steals server time. The
same handler plugin (`load_handler`) and the same certificate files serve both implementations.
The bound port is printed on stdout once the server listens — that line is the "ready" signal
the benchmark waits for. The process serves until its stdin reaches EOF or it is killed: the
benchmark holds the write end of that pipe, so even a benchmark killed outright (SIGKILL, no
cleanup) takes its servers with it instead of leaving them listening.

Both servers take MAX_CONNECTIONS, and `--connections N` (how many the benchmark will hold open
at once) makes sure of the file descriptors before the server listens. trio-tls closes a
connection idle for `idle_timeout` (60 s by default), and the idle-connection measurements hold
thousands of connections for longer than a minute, which both servers must keep (the baseline
has no idle timeout). So here it is an hour: longer than any measurement, yet finite, so that
every connection still keeps its deadline in trio's deadline heap, as it does in production.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import cast

import trio

from trio_tls import serve as trio_tls_serve
from trio_tls.ops.plugins import load_handler

from . import stdlib_server
from .common import (
    HOST,
    IMPLEMENTATIONS,
    MAX_CONNECTIONS,
    raise_descriptor_limit,
    stdlib_server_context,
    trio_tls_config,
)

IDLE_TIMEOUT = 3600.0  # trio-tls's, in seconds (see above)


async def _run(
    implementation: str, handler_name: str, port: int, certfile: str, keyfile: str
) -> None:
    handler = load_handler(handler_name)
    async with trio.open_nursery() as nursery:
        listeners: Sequence[trio.SocketListener]
        if implementation == "trio-tls":
            config = trio_tls_config(certfile, keyfile)
            listeners = await nursery.start(
                partial(
                    trio_tls_serve,
                    max_connections=MAX_CONNECTIONS,
                    idle_timeout=IDLE_TIMEOUT,
                ),
                handler,
                config,
                HOST,
                port,
            )
        else:
            context = stdlib_server_context(certfile, keyfile)
            # The built-in handlers use only the trio.abc.Stream surface, which SSLStream has.
            stream_handler = cast(stdlib_server.StreamHandler, handler)
            listeners = await nursery.start(
                partial(stdlib_server.serve, max_connections=MAX_CONNECTIONS),
                stream_handler,
                context,
                HOST,
                port,
            )
        print(listeners[0].socket.getsockname()[1], flush=True)
        async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
            while await stdin.receive_some():
                pass
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("implementation", choices=IMPLEMENTATIONS)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--handler", default="hello")
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        help="connections the benchmark will hold open at once (for the descriptor limit)",
    )
    args = parser.parse_args()
    raise_descriptor_limit(args.connections)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    trio.run(_run, args.implementation, args.handler, args.port, args.certfile, args.keyfile)


if __name__ == "__main__":
    main()
