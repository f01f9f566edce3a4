"""systemd integration: socket activation (sd_listen_fds(3)) and notification (sd_notify(3)).

Socket activation: systemd binds the socket (a .socket unit) and starts the service with it as
file descriptor 3 onwards, LISTEN_FDS saying how many and LISTEN_PID whose they are. The server
then serves those instead of --host/--port, so a restart never refuses a connection: they wait
in the backlog. The variables are removed once read, as sd_listen_fds(1) does, so that no child
takes the sockets for its own; `--workers` workers inherit them as --listen-fd instead.

Notification, when NOTIFY_SOCKET is set (Type=notify or Type=notify-reload): READY=1 once
serving, RELOADING=1 (with the CLOCK_MONOTONIC time systemd 253+ asks for) and READY=1 around
a reload, STOPPING=1 when the shutdown begins. It is one datagram to a Unix socket, so no
libsystemd is needed; an '@' names an abstract socket. Only the main process talks to
systemd: the supervisor starts its workers without NOTIFY_SOCKET.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

LISTEN_FDS_START = 3
ENVIRONMENT = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(ValueError):
    """LISTEN_FDS names descriptors that are not listening stream sockets."""


def listen_sockets() -> list[socket.socket]:
    """The sockets systemd passed to this process (none if it passed none)."""
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    for name in ENVIRONMENT:
        os.environ.pop(name, None)
    if pid is None or count is None or not pid.isdigit() or int(pid) != os.getpid():
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            raise ActivationError(
                f"socket activation: descriptor {fd} is not a listening stream socket "
                "(use ListenStream= in the .socket unit, without Accept=yes)"
            )
        sockets.append(sock)
    return sockets


def notify(state: str) -> None:
    """Tell systemd `state` ("READY=1", ...) if it asked to be told; never fails the server."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(state.encode(), address)


def reloading() -> str:
    """RELOADING=1 with the MONOTONIC_USEC that Type=notify-reload requires (systemd 253+)."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def without_notify_socket() -> dict[str, str]:
    """The environment for a worker: it must not speak for the service."""
    return {name: value for name, value in os.environ.items() if name != "NOTIFY_SOCKET"}
