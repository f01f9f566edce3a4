"""A client that gives up mid-handshake, the commonest real failure: it rejects our certificate
(unknown_ca from a client that does not trust the issuer, bad_certificate from one that wanted
another name) with a fatal alert after our first flight, or it just closes the connection.

TLSStream must end the handshake at once with trio.BrokenResourceError whose cause says what
the client did: stream.PeerAlert carrying its alert; stream.PeerClosed for a close_notify; for a
bare TCP close, the engine's RemoteProtocolError with no alert of ours (nobody is left to read
one). It must never hang, and must send nothing more. serve() must say so in the connection's
log line, so an operator reading it learns that the *client* refused, and why.

The peers are real where they can be: OpenSSL with verification on sends the alerts itself,
through Python's ssl on a socket, through MemoryBIOs over a trio stream (trio.SSLStream raises
without sending the alert OpenSSL queued, so it cannot play this client), and as curl against
the `trio-tls serve` command. The scripted client sends the alerts OpenSSL sends only in
situations hard to set up, and closes at a chosen point.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.events import AlertReceived
from trio_tls.engine.wire.enums import AlertDescription, AlertLevel, ContentType, HandshakeType
from trio_tls.engine.wire.errors import RemoteProtocolError
from trio_tls.ops.plugins import load_handler
from trio_tls.server.stream import PeerAlert, PeerClosed, TLSStream

from .cli_server import running_server
from .openssl_peer import client_context
from .scripted_client import ScriptedClient, record, split_handshake, split_records
from .test_server import start

CURL = shutil.which("curl")
FIRST_FLIGHT = [
    HandshakeType.server_hello,
    HandshakeType.certificate,
    HandshakeType.server_key_exchange,
    HandshakeType.server_hello_done,
]


def alert_record(description: int) -> bytes:
    return record(ContentType.alert, bytes((AlertLevel.fatal, description)))


class Recorder(trio.abc.Stream):
    """A transport that notes each read and write in order, so a test can tell what the
    server did after the client's alert arrived."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.log: list[tuple[str, bytes]] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.log.append(("sent", bytes(data)))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self.log.append(("received", bytes(data)))
        return bytes(data)

    async def aclose(self) -> None:
        self.log.append(("closed", b""))
        await self.inner.aclose()

    def sent(self) -> list[bytes]:
        return [data for kind, data in self.log if kind == "sent"]

    def after_last_send(self) -> list[tuple[str, bytes]]:
        last = max(i for i, (kind, _) in enumerate(self.log) if kind == "sent")
        return self.log[last + 1 :]


def handshake_types(data: bytes) -> list[int]:
    return [
        msg_type
        for rec in split_records(data)
        if rec.content_type == ContentType.handshake
        for msg_type, _ in split_handshake(rec.fragment)
    ]


async def assert_broken_for_good(server: TLSStream, recorder: Recorder) -> None:
    """After the failed handshake: every call refuses, and closing sends nothing."""
    sent = recorder.sent()
    with pytest.raises(trio.BrokenResourceError):
        await server.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await server.send_all(b"anyone there?")
    await server.aclose()
    assert recorder.sent() == sent
    assert recorder.log[-1] == ("closed", b"")


# -- TLSStream ----------------------------------------------------------------------------------


async def openssl_handshake(
    transport: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str
) -> None:
    """OpenSSL's client handshake over a trio stream, through MemoryBIOs.

    Unlike trio.SSLStream, which raises at once and leaves OpenSSL's alert unsent, this
    writes what OpenSSL queued before its failure, as a client on a socket (Python's ssl,
    curl) does: the alert is OpenSSL's own."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            if pending := outgoing.read():
                await transport.send_all(pending)
            data = await transport.receive_some()
            if not data:
                raise
            incoming.write(data)
        except ssl.SSLError:
            if pending := outgoing.read():
                await transport.send_all(pending)
            raise


REFUSALS = [
    pytest.param("another CA", "localhost", AlertDescription.unknown_ca, id="untrusted-issuer"),
    pytest.param("our CA", "wrong.example", AlertDescription.bad_certificate, id="wrong-name"),
]


@pytest.mark.parametrize(("trusts", "server_hostname", "alert"), REFUSALS)
async def test_openssl_rejecting_our_certificate_fails_the_handshake_with_its_alert(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    trusts: str,
    server_hostname: str,
    alert: AlertDescription,
) -> None:
    client_transport, server_transport = trio.testing.memory_stream_pair()
    recorder = Recorder(server_transport)
    server = TLSStream(recorder, rsa_config)
    context = client_context(trustme.CA() if trusts == "another CA" else ca)
    assert context.verify_mode == ssl.CERT_REQUIRED
    errors: dict[str, BaseException] = {}

    async def client() -> None:
        with pytest.raises(ssl.SSLCertVerificationError) as error:
            await openssl_handshake(client_transport, context, server_hostname)
        errors["client"] = error.value

    async def serve_it() -> None:
        with pytest.raises(trio.BrokenResourceError) as error:
            await server.do_handshake()
        errors["server"] = error.value

    with trio.fail_after(5):  # no hang: the alert ends it
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            nursery.start_soon(serve_it)

    cause = errors["server"].__cause__
    assert isinstance(cause, PeerAlert)
    assert cause.alert == AlertReceived(AlertLevel.fatal, alert)
    assert str(errors["server"]) == f"the peer sent a fatal {alert.name} alert"
    assert not server.handshake_done
    # One flight out, the client's alert in, and nothing more from us.
    (flight,) = recorder.sent()
    assert handshake_types(flight) == FIRST_FLIGHT
    after = recorder.after_last_send()
    assert {kind for kind, _ in after} == {"received"}
    assert b"".join(data for _, data in after) == alert_record(alert)
    await assert_broken_for_good(server, recorder)


@pytest.mark.parametrize(
    "alert",
    [
        AlertDescription.bad_certificate,
        AlertDescription.unknown_ca,
        AlertDescription.certificate_expired,
        AlertDescription.certificate_unknown,
    ],
)
async def test_a_fatal_alert_after_our_first_flight(
    rsa_config: ServerConfig, alert: AlertDescription
) -> None:
    client_transport, server_transport = trio.testing.memory_stream_pair()
    recorder = Recorder(server_transport)
    server = TLSStream(recorder, rsa_config)
    client = ScriptedClient()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def handshake() -> None:
                with pytest.raises(trio.BrokenResourceError) as error:
                    await server.do_handshake()
                cause = error.value.__cause__
                assert isinstance(cause, PeerAlert)
                assert cause.alert == AlertReceived(AlertLevel.fatal, alert)
                assert alert.name in str(error.value)

            nursery.start_soon(handshake)
            await client_transport.send_all(client.client_hello())
            client.read_server_flight(await client_transport.receive_some())
            await client_transport.send_all(client.alert(alert))
    after = recorder.after_last_send()
    assert b"".join(data for _, data in after) == alert_record(alert)
    await assert_broken_for_good(server, recorder)
    assert await client_transport.receive_some() == b""  # the transport closed, silently


@pytest.mark.parametrize(
    "when", ["after our first flight", "right after its ClientHello", "with close_notify"]
)
async def test_the_client_closing_mid_handshake(rsa_config: ServerConfig, when: str) -> None:
    """TCP closed mid-handshake is the engine's error with no alert to send (there is nobody to
    send it to); a close_notify first is the peer closing (PeerClosed). Either way the
    handshake ends at once and nothing more is sent."""
    client_transport, server_transport = trio.testing.memory_stream_pair()
    recorder = Recorder(server_transport)
    server = TLSStream(recorder, rsa_config)
    client = ScriptedClient()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def handshake() -> None:
                with pytest.raises(trio.BrokenResourceError) as error:
                    await server.do_handshake()
                cause = error.value.__cause__
                if when == "with close_notify":
                    assert isinstance(cause, PeerClosed)
                    assert str(error.value) == "the peer closed the connection during the handshake"
                elif when == "after our first flight":
                    assert isinstance(cause, RemoteProtocolError)
                    assert cause.alert is None  # nothing to tell a peer that has gone
                    assert str(error.value) == "the transport closed during the handshake"
                else:  # our flight met the closed transport, or the EOF came first
                    assert isinstance(cause, RemoteProtocolError | trio.BrokenResourceError)

            nursery.start_soon(handshake)
            await client_transport.send_all(client.client_hello())
            if when != "right after its ClientHello":
                client.read_server_flight(await client_transport.receive_some())
            if when == "with close_notify":
                close_notify = client.alert(AlertDescription.close_notify, AlertLevel.warning)
                await client_transport.send_all(close_notify)
            await client_transport.aclose()
    assert len(recorder.sent()) <= 1  # at most the first flight, nothing after the close
    if when != "right after its ClientHello":
        assert {kind for kind, _ in recorder.after_last_send()} == {"received"}
    await assert_broken_for_good(server, recorder)


# -- serve() and its log line -----------------------------------------------------------------


async def logged(caplog: pytest.LogCaptureFixture, pattern: str) -> str:
    """Wait (with a deadline) for the trio_tls log line matching `pattern`; return it."""
    with trio.fail_after(5):
        while True:
            for r in caplog.records:
                if r.name == "trio_tls" and re.search(pattern, r.getMessage()):
                    return r.getMessage()
            await trio.sleep(0.01)


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def refusing_client(
    port: int, context: ssl.SSLContext, server_hostname: str
) -> tuple[str, ssl.SSLError, bytes]:
    """Python's ssl on a blocking socket, as any script would connect: (its address, its
    error, everything it read from the socket after the failure until EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        tls = context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        with pytest.raises(ssl.SSLCertVerificationError) as error:
            tls.do_handshake()
        with socket.socket(fileno=tls.detach()) as raw:
            raw.settimeout(5)
            rest = b""
            while chunk := raw.recv(65536):
                rest += chunk
    return address, error.value, rest


@pytest.mark.parametrize(("trusts", "server_hostname", "alert"), REFUSALS)
async def test_serve_logs_the_alert_of_a_client_that_rejects_our_certificate(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    trusts: str,
    server_hostname: str,
    alert: AlertDescription,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    context = client_context(trustme.CA() if trusts == "another CA" else ca)
    with trio.fail_after(10):
        peer, error, rest = await trio.to_thread.run_sync(
            refusing_client, port, context, server_hostname
        )
    assert error.verify_code != 0
    line = await logged(caplog, "^" + re.escape(peer) + " ")
    assert re.fullmatch(
        # The SNI the client sent is named although no handshake completed.
        re.escape(f"{peer} sni={server_hostname} alpn=- suite=- resumed=- ")
        + r"in=\d+ out=\d+ time=[\d.]+ms: "
        f"failed: the peer sent a fatal {alert.name} alert",
        line,
    ), line
    # After the alert the server hung up without a word: all the client read from its socket
    # after failing is what OpenSSL had not yet read of our first flight.
    assert {r.content_type for r in split_records(rest)} <= {ContentType.handshake}
    assert set(handshake_types(rest)) <= set(FIRST_FLIGHT)
    no_errors(caplog)


def flight_complete(data: bytes) -> bool:
    """Whether `data` is whole records ending our first flight (TCP may split it anywhere)."""
    try:
        return HandshakeType.server_hello_done in handshake_types(data)
    except AssertionError:  # a partial record or message: more is on its way
        return False


async def read_first_flight(tcp: trio.SocketStream, client: ScriptedClient) -> None:
    data = b""
    while not flight_complete(data):
        chunk = await tcp.receive_some()
        assert chunk, "the server closed before its first flight was out"
        data += chunk
    client.read_server_flight(data)


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [
        ("close", "failed: no alert (the transport closed during the handshake)"),
        ("close_notify", "failed: the peer closed the connection during the handshake"),
        ("bad_certificate", "failed: the peer sent a fatal bad_certificate alert"),
    ],
)
async def test_serve_logs_a_client_that_gives_up_after_our_first_flight(
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    ending: str,
    outcome: str,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    peer = f"127.0.0.1:{tcp.socket.getsockname()[1]}"
    client = ScriptedClient()
    await tcp.send_all(client.client_hello())
    with trio.fail_after(5):
        await read_first_flight(tcp, client)
    if ending != "close":
        level = AlertLevel.warning if ending == "close_notify" else AlertLevel.fatal
        await tcp.send_all(client.alert(AlertDescription[ending], level))
        with trio.fail_after(5):
            assert await tcp.receive_some() == b""  # nothing more, then the server closes
    await tcp.aclose()
    line = await logged(caplog, "^" + re.escape(peer) + " ")
    assert line.endswith(f": {outcome}"), line
    assert " sni=localhost alpn=- suite=- resumed=- " in line
    no_errors(caplog)


@pytest.mark.interop
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_refusing_the_dev_certificate_is_logged_by_the_command(
    tmp_path: Path, ca: trustme.CA
) -> None:
    """curl without --insecure, trusting only another CA, against `trio-tls serve` and its
    self-made development certificate: curl fails, the server's log line says why."""
    assert CURL is not None
    other_ca = tmp_path / "other-ca.pem"
    ca.cert_pem.write_to_path(str(other_ca))
    with running_server(tmp_path) as server:
        result = subprocess.run(
            [CURL, "-sS", "--cacert", str(other_ca), f"https://127.0.0.1:{server.port}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 60, result  # "SSL certificate problem"
        assert "certificate" in result.stderr
        server.wait_for_stderr("failed: the peer sent a fatal unknown_ca alert", 5)
        assert server.stop() == 0
    assert re.search(
        r"INFO 127\.0\.0\.1:\d+ sni=- alpn=- suite=- resumed=- in=\d+ out=\d+ time=[\d.]+ms: "
        r"failed: the peer sent a fatal unknown_ca alert\n",
        server.stderr,
    ), server.stderr
    assert "Traceback" not in server.stderr


async def test_a_handshake_the_server_refuses_logs_the_sni_the_client_sent(
    rsa_config: ServerConfig, server_nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """--strict-sni refuses the name with unrecognized_name; the line still says which."""
    caplog.set_level(logging.INFO, logger="trio_tls")
    strict = ServerConfig(rsa_config.certificates, strict_sni=True)
    port = await start(server_nursery, load_handler("hello"), strict)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    peer = f"127.0.0.1:{tcp.socket.getsockname()[1]}"
    await tcp.send_all(ScriptedClient(sni="unknown.example").client_hello())
    with trio.fail_after(5):
        while await tcp.receive_some():
            pass
    await tcp.aclose()
    line = await logged(caplog, "^" + re.escape(peer) + " ")
    assert line.startswith(f"{peer} sni=unknown.example alpn=- suite=- resumed=- "), line
    assert line.endswith("failed: unrecognized_name (no certificate for 'unknown.example')"), line
