"""The lingering close: a fatal alert reaches a client that is still sending.

A client-certificate probe sends its Certificate, ClientKeyExchange and CertificateVerify,
then its ChangeCipherSpec and Finished a moment later. The server refuses the certificate with
a fatal alert; if it then closed at once, the late records would meet a closed socket and its
reset, and the client would see a broken pipe instead of the alert. With the lingering close
the server half-closes after the alert and reads what still comes, so the client's writes
succeed and it reads the alert. A real client (Python's ssl, over a socket in a thread) shows it.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from pathlib import Path

import attrs
import trio
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.ops.plugins import load_handler

from .client_certs import STRANGER, client_auth
from .openssl_peer import client_context
from .test_server import start

CHANGE_CIPHER_SPEC = 20


def _split_at_change_cipher_spec(flight: bytes) -> tuple[bytes, bytes]:
    """The flight's records before its ChangeCipherSpec, and that record with what follows."""
    pos = 0
    while pos + 5 <= len(flight):
        if flight[pos] == CHANGE_CIPHER_SPEC:
            return flight[:pos], flight[pos:]
        pos += 5 + int.from_bytes(flight[pos + 3 : pos + 5], "big")
    raise AssertionError("no ChangeCipherSpec in the client's flight")


def _wait_for_fin(sock: socket.socket, timeout: float) -> None:
    """Until the server has shut down its sending side (POLLRDHUP): its alert is on its way,
    and a server that closes without lingering has closed its socket by now."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    assert poller.poll(timeout * 1000), "the server never closed its side"


def probe(port: int, context: ssl.SSLContext) -> tuple[list[str], str]:
    """(what each late write met, what the client's handshake ended with)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        while True:
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()
            flight = outgoing.read()
            if any(flight[i] == CHANGE_CIPHER_SPEC for i in _record_starts(flight)):
                break
            sock.sendall(flight)
            incoming.write(sock.recv(65536))
        early, late = _split_at_change_cipher_spec(flight)
        sock.sendall(early)
        _wait_for_fin(sock, 5)
        writes = []
        for piece in (late[:6], late[6:], b"\x17\x03\x03\x00\x10" + bytes(16)):
            try:
                sock.sendall(piece)
                writes.append("sent")
            except OSError as exc:
                writes.append(type(exc).__name__)
            time.sleep(0.05)  # for a reset to come back, as it would under load
        try:
            while data := sock.recv(65536):
                incoming.write(data)
        except OSError as exc:
            return writes, type(exc).__name__
    try:
        tls.do_handshake()
    except ssl.SSLError as exc:
        return writes, exc.reason or str(exc)
    return writes, "handshake completed"


def _record_starts(flight: bytes) -> list[int]:
    starts, pos = [], 0
    while pos + 5 <= len(flight):
        starts.append(pos)
        pos += 5 + int.from_bytes(flight[pos + 3 : pos + 5], "big")
    return starts


async def test_a_client_still_writing_after_the_alert_reads_the_alert(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    port = await start(server_nursery, load_handler("hello"), config)
    context = client_context(ca)
    context.load_cert_chain(*STRANGER.write(tmp_path, "stranger"))
    with trio.fail_after(10):
        writes, ending = await trio.to_thread.run_sync(probe, port, context)
    assert (writes, ending) == (["sent"] * 3, "TLSV1_ALERT_UNKNOWN_CA")
