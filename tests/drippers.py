"""Slowloris clients for live-socket tests: they complete a handshake, then drip a request.

Python's ssl, over a MemoryBIO, seals the records, and the dripper decides how they reach the
socket: `sealed` sends one byte of one sealed record at a time (the record never completes in
time), `records` sends each byte of the request as its own whole one-byte record (every record
completes, the request head never does). Each waits `interval` seconds between sends, fewer
than the server's idle timeout, so an idle timeout that restarts on every receive never fires.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Literal

import trio

Drip = Literal["sealed", "records"]
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


class Dripper:
    """One slow client; `cut_after` is how long the server let it drip (None: not cut yet)."""

    def __init__(self, port: int, context: ssl.SSLContext, drip: Drip, interval: float) -> None:
        self.port = port
        self.context = context
        self.drip = drip
        self.interval = interval
        self.cut_after: float | None = None
        self.handshaken = trio.Event()
        self.cut = trio.Event()

    async def run(self) -> None:
        sock = trio.socket.socket()
        with sock:
            await sock.connect(("127.0.0.1", self.port))
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_hostname="localhost")
            await _handshake(sock, tls, incoming, outgoing)
            self.handshaken.set()
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send, sock, self._pieces(tls, outgoing))
                await _until_closed(sock)  # the server's EOF or reset: it cut us
                self.cut_after = trio.current_time() - started
                self.cut.set()
                nursery.cancel_scope.cancel()

    async def _send(self, sock: trio.socket.SocketType, pieces: list[bytes]) -> None:
        try:
            for piece in pieces:
                await sock.send(piece)
                await trio.sleep(self.interval)
        except OSError:  # the server closed the connection; the reader notices
            return
        await trio.sleep_forever()  # all sent: the server answered, or holds us

    def _pieces(self, tls: ssl.SSLObject, outgoing: ssl.MemoryBIO) -> list[bytes]:
        if self.drip == "sealed":
            tls.write(REQUEST)
            sealed = outgoing.read()
            return [sealed[i : i + 1] for i in range(len(sealed))]
        pieces = []
        for i in range(len(REQUEST)):
            tls.write(REQUEST[i : i + 1])
            pieces.append(outgoing.read())
        return pieces


async def _handshake(
    sock: trio.socket.SocketType,
    tls: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
) -> None:
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if pending := outgoing.read():
            await sock.send(pending)
        if done:
            return
        data = await sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed during the handshake")
        incoming.write(data)


async def _until_closed(sock: trio.socket.SocketType) -> None:
    with contextlib.suppress(OSError):
        while await sock.recv(65536):
            pass
