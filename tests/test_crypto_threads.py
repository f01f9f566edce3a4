"""Signatures made off the event loop: the engine's SignatureNeeded contract, and serve()'s
`crypto_threads`, against OpenSSL clients that verify every signature they are given."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

import attrs
import h11
import pytest
import trio
import trustme

import trio_tls.engine.handshake.hello
import trio_tls.engine.handshake.tls13.hello
import trio_tls.server.listen
from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import NEED_DATA, HandshakeComplete, SignatureNeeded
from trio_tls.engine.wire.enums import TLS12, TLS13, AlertDescription
from trio_tls.engine.wire.errors import TLSError
from trio_tls.ops.plugins import load_handler

from .openssl_peer import OpenSSLClient, client_context
from .test_server import connect, http_get, start
from .test_tls13 import tls13_context

# The TLS 1.2 and TLS 1.3 handshakes each sign in their own state module.
SIGNING_MODULES = {
    TLS12: trio_tls.engine.handshake.hello,
    TLS13: trio_tls.engine.handshake.tls13.hello,
}


@pytest.fixture(scope="module")
def rsa12_config(rsa_config: ServerConfig) -> ServerConfig:
    """The in-memory tests below follow the TLS 1.2 flight (ServerKeyExchange's signature)."""
    return attrs.evolve(rsa_config, versions={TLS12})


def _first_flight(ca: trustme.CA, config: ServerConfig) -> tuple[ServerConnection, OpenSSLClient]:
    """A client of the config's highest version, whose hello the server has read."""
    context = tls13_context(ca) if TLS13 in config.versions else client_context(ca)
    server = ServerConnection(config, defer_signatures=True)
    client = OpenSSLClient(server, context)
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl.do_handshake()
    server.receive_data(client.outgoing.read())
    return server, client


def test_deferred_signature_completes_a_handshake_openssl_verifies(
    ca: trustme.CA, rsa12_config: ServerConfig
) -> None:
    server, client = _first_flight(ca, rsa12_config)
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    # Nothing leaves before the signature: the first flight goes out whole, in one record.
    assert not server.has_data_to_send()
    with pytest.raises(RuntimeError, match="complete_signature"):
        server.next_event()
    server.complete_signature(event.sign())
    assert server.next_event() is NEED_DATA
    flight = bytes(server.data_to_send())
    assert flight[0] == 22 and int.from_bytes(flight[3:5], "big") + 5 == len(flight)
    client.incoming.write(flight)
    events = client.handshake()
    assert any(isinstance(e, HandshakeComplete) for e in events)
    assert client.ssl.version() == "TLSv1.2"


def test_deferred_signature_completes_a_tls13_handshake_openssl_verifies(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    """In TLS 1.3 the signature deferred is CertificateVerify's; the flight resumes after it."""
    server, client = _first_flight(ca, rsa_config)
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    server.complete_signature(event.sign())
    assert server.next_event() is NEED_DATA
    client.incoming.write(bytes(server.data_to_send()))
    events = client.handshake()
    assert any(isinstance(e, HandshakeComplete) for e in events)
    assert client.ssl.version() == "TLSv1.3"


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
def test_a_wrong_signature_is_refused_by_openssl(
    ca: trustme.CA, rsa_config: ServerConfig, version: int
) -> None:
    """The signature handed back is the one sent: OpenSSL rejects a flipped bit."""
    server, client = _first_flight(ca, attrs.evolve(rsa_config, versions={version}))
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    signature = bytearray(event.sign())
    signature[-1] ^= 1
    server.complete_signature(bytes(signature))
    server.next_event()
    client.incoming.write(bytes(server.data_to_send()))
    with pytest.raises(ssl.SSLError, match=r"BAD_SIGNATURE|bad signature"):
        client.ssl.do_handshake()


def test_messages_behind_the_hello_wait_for_the_signature(
    ca: trustme.CA, rsa12_config: ServerConfig
) -> None:
    """A message in the same read as the ClientHello is judged after the signature, in the
    state the whole first flight leads to, exactly as without deferral."""
    outcomes = []
    for defer in (False, True):
        server = ServerConnection(rsa12_config, defer_signatures=defer)
        client = OpenSSLClient(server, client_context(ca))
        with pytest.raises(ssl.SSLWantReadError):
            client.ssl.do_handshake()
        hello = client.outgoing.read()
        # A ClientKeyExchange (type 16) whose point is not on the curve, sent blind: taken by
        # ExpectClientKeyExchange (and refused for its point), not by the state that signs.
        point = bytes([4]) + bytes(64)
        body = bytes([16, 0, 0, 1 + len(point), len(point)]) + point
        server.receive_data(hello + bytes([22, 3, 3, 0, len(body)]) + body)
        with pytest.raises(TLSError) as failure:
            while (event := server.next_event()) is not NEED_DATA:
                if isinstance(event, SignatureNeeded):
                    server.complete_signature(event.sign())
        outcomes.append((failure.value.alert, str(failure.value)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][0] == AlertDescription.illegal_parameter


def test_complete_signature_needs_a_pending_one(rsa_config: ServerConfig) -> None:
    with pytest.raises(RuntimeError, match="no signature is awaited"):
        ServerConnection(rsa_config, defer_signatures=True).complete_signature(b"x")


def test_abort_while_signing_sends_only_the_alert(
    ca: trustme.CA, rsa12_config: ServerConfig
) -> None:
    server, _ = _first_flight(ca, rsa12_config)
    event = server.next_event()
    assert isinstance(event, SignatureNeeded)
    server.abort()
    server.complete_signature(event.sign())  # the thread finished after all: harmless
    assert bytes(server.data_to_send()) == bytes([21, 3, 3, 0, 2, 2, 80])  # fatal internal_error


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
async def test_serve_signs_on_worker_threads(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
) -> None:
    """With crypto_threads, signatures (ServerKeyExchange's in 1.2, CertificateVerify's in 1.3)
    run off the event loop's thread, no more at once than allowed, and every client (OpenSSL)
    verifies its handshake and gets its page."""
    module = SIGNING_MODULES[version]
    signers: set[int] = set()
    running = peak = 0
    lock = threading.Lock()
    real_sign: Callable[..., bytes] = module.sign

    def counting_sign(*args: object) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            signers.add(threading.get_ident())
        try:
            return real_sign(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(module, "sign", counting_sign)
    config = attrs.evolve(rsa_config, versions={version})
    port = await start(server_nursery, load_handler("hello"), config, crypto_threads=2)

    async def one_client() -> None:
        if version == TLS13:
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            client = trio.SSLStream(tcp, tls13_context(ca), server_hostname="localhost")
        else:
            client = await connect(ca, port)
        assert await http_get(client, h11.Connection(h11.CLIENT)) == b"Hello from Python TLS!\n"
        await client.aclose()

    async with trio.open_nursery() as clients:
        for _ in range(12):
            clients.start_soon(one_client)
    assert signers and threading.get_ident() not in signers
    assert 1 <= peak <= 2


def test_crypto_threads_must_not_be_negative(rsa_config: ServerConfig) -> None:
    async def main() -> None:
        await trio_tls.server.listen.serve(
            load_handler("hello"), rsa_config, port=0, crypto_threads=-1
        )

    with pytest.raises(ValueError, match="crypto_threads must be 0 or more"):
        trio.run(main)
