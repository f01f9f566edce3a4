"""An OpenSSL TLS client driven in-process through ssl.MemoryBIO, against a ServerConnection.

Both sides run in the same thread with no sockets: `pump()` moves bytes each way until neither
has anything more to say, collecting the server's events. This is the independent peer that
every engine test is measured against.
"""

from __future__ import annotations

import ssl

import trustme

from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import NEED_DATA, ConnectionClosed, Event


def client_context(
    ca: trustme.CA,
    ciphers: str = "ECDHE-RSA-AES128-GCM-SHA256",
    *,
    ems: bool = True,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    if not ems:
        # OP_NO_EXTENDED_MASTER_SECRET is not exposed by name in every Python.
        ctx.options |= getattr(ssl, "OP_NO_EXTENDED_MASTER_SECRET", 0x1)
    return ctx


class OpenSSLClient:
    def __init__(
        self,
        server: ServerConnection,
        ctx: ssl.SSLContext,
        server_hostname: str | None = "localhost",
    ) -> None:
        self.server = server
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.events: list[Event] = []
        self.closed = False

    def pump(self) -> list[Event]:
        """Move bytes both ways until quiet; return the server events seen."""
        seen: list[Event] = []
        while True:
            moved = False
            data = self.outgoing.read()
            if data:
                moved = True
                self.server.receive_data(data)
            while not self.closed and (event := self.server.next_event()) is not NEED_DATA:
                seen.append(event)
                # A closed connection repeats ConnectionClosed forever, as h11 does.
                self.closed = isinstance(event, ConnectionClosed)
            out = self.server.data_to_send()
            if out:
                moved = True
                self.incoming.write(bytes(out))
            if not moved:
                break
        self.events += seen
        return seen

    def handshake(self) -> list[Event]:
        seen: list[Event] = []
        for _ in range(10):
            try:
                self.ssl.do_handshake()
            except ssl.SSLWantReadError:
                seen += self.pump()
            else:
                seen += self.pump()
                return seen
        raise AssertionError("handshake did not finish")

    def send(self, data: bytes) -> list[Event]:
        view = memoryview(data)
        while view:
            written = self.ssl.write(view)
            view = view[written:]
        return self.pump()

    def receive(self, n: int) -> bytes:
        """Read exactly n bytes the server already sent."""
        self.pump()
        chunks = []
        while n:
            chunk = self.ssl.read(n)
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)
