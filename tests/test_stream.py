"""TLSStream as a trio Stream, with trio's SSLStream (stdlib ssl, OpenSSL) as the client."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.wire.enums import AlertDescription, AlertLevel, ContentType
from trio_tls.engine.wire.errors import TLSError
from trio_tls.server.deadlines import DeadlineStream, IdleTimeout, RecordTimeout
from trio_tls.server.stream import PeerAlert, TLSStream

from .openssl_peer import client_context
from .scripted_client import ScriptedClient

StreamPair = tuple[trio.abc.Stream, trio.abc.Stream]


def make_pair(
    ca: trustme.CA,
    config: ServerConfig,
    transport: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]],
    **kwargs: bool,
) -> tuple[trio.SSLStream[trio.abc.Stream], TLSStream]:
    client_transport, server_transport = transport()
    client = trio.SSLStream(client_transport, client_context(ca), server_hostname="localhost")
    server = TLSStream(server_transport, config, **kwargs)  # type: ignore[arg-type]
    return client, server


async def test_check_two_way_stream(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    async def stream_maker() -> StreamPair:
        return make_pair(ca, rsa_config, trio.testing.memory_stream_pair)

    async def clogged_stream_maker() -> StreamPair:
        client, server = make_pair(ca, rsa_config, trio.testing.lockstep_stream_pair)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            nursery.start_soon(server.do_handshake)
        return client, server

    await trio.testing.check_two_way_stream(stream_maker, clogged_stream_maker)


async def test_info_after_handshake(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    with pytest.raises(trio.BrokenResourceError):
        server.info  # noqa: B018
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    assert server.info.version == "TLSv1.2"
    assert server.info.cipher_suite == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert server.info.sni == "localhost"


async def test_concurrent_handshake_callers_share_one(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        for _ in range(3):
            nursery.start_soon(server.do_handshake)
    assert server.info.version == "TLSv1.2"


async def test_protocol_error_is_broken_resource_with_cause(rsa_config: ServerConfig) -> None:
    client_transport, server_transport = trio.testing.memory_stream_pair()
    server = TLSStream(server_transport, rsa_config)
    await client_transport.send_all(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(trio.BrokenResourceError) as info:
        await server.do_handshake()
    assert info.value.__cause__ is not None
    # The unexpected_message alert reached the client before the stream broke.
    assert await client_transport.receive_some() == b"\x15\x03\x03\x00\x02\x02\x0a"
    with pytest.raises(trio.BrokenResourceError):
        await server.receive_some()
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await server.send_all(b"x")


async def test_eof_without_close_notify(ca: trustme.CA, rsa_config: ServerConfig) -> None:
    for https_compatible in (False, True):
        client, server = make_pair(
            ca, rsa_config, trio.testing.memory_stream_pair, https_compatible=https_compatible
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            nursery.start_soon(server.do_handshake)
        await client.transport_stream.aclose()
        if https_compatible:
            assert await server.receive_some() == b""
        else:
            with pytest.raises(trio.BrokenResourceError):
                await server.receive_some()


async def test_handshake_failure_with_openssl_client(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    client = trio.SSLStream(
        client.transport_stream,
        client_context(ca, "ECDHE-ECDSA-AES128-GCM-SHA256"),
        server_hostname="localhost",
    )
    errors: list[BaseException] = []

    async def run(step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except trio.BrokenResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, client.do_handshake)
        nursery.start_soon(run, server.do_handshake)
    assert len(errors) == 2
    client_error = errors[0].__cause__ if errors[0].__cause__ else errors[1].__cause__
    assert any(
        isinstance(e.__cause__, ssl.SSLError) and "HANDSHAKE_FAILURE" in str(e.__cause__)
        for e in errors
    ), client_error


async def test_receive_from_buffered_records_is_still_a_checkpoint(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    await client.send_all(b"x" * 20_000)  # two records, delivered in one transport chunk
    assert await server.receive_some(16_384) == b"x" * 16_384  # the first record
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await server.receive_some()  # the second record is already here
    assert await server.receive_some(1000) == b"x" * 1000
    assert await server.receive_some() == b"x" * (20_000 - 16_384 - 1000)


async def test_records_already_received_are_returned_together(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)
    await client.send_all(b"a" * 20_000)  # two records in one transport chunk
    await client.send_all(b"b" * 10)
    assert await server.receive_some() == b"a" * 20_000 + b"b" * 10
    # Data and close_notify in the same transport read: the close_notify, met while the data
    # behind the first record is gathered, waits for the next call (no read, no data lost).
    transport = server.transport_stream
    assert isinstance(transport, trio.StapledStream)
    reads = 0

    async def count_read() -> None:
        nonlocal reads
        reads += 1

    transport.receive_stream.receive_some_hook = count_read  # type: ignore[attr-defined]
    await client.send_all(b"c" * 20_000)
    await client.aclose()  # close_notify right behind the data
    assert await server.receive_some() == b"c" * 20_000
    assert reads == 1  # both records and the close_notify came in one read
    assert await server.receive_some() == b""
    assert reads == 1  # the close_notify was already there


async def handshake_both(client: trio.SSLStream[trio.abc.Stream], server: TLSStream) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        nursery.start_soon(server.do_handshake)


async def test_the_peers_close_notify_is_answered_and_ends_sending(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    # RFC 5246 §7.2.1. SSLStream.unwrap() returns only once our close_notify has arrived.
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    await handshake_both(client, server)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.unwrap)
            assert await server.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError):
        await server.send_all(b"after the goodbye")


async def test_abort_sends_a_fatal_alert_not_close_notify(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    client, server = make_pair(ca, rsa_config, trio.testing.memory_stream_pair)
    await handshake_both(client, server)
    await server.send_all(b"half a resp")
    await server.abort()
    assert await client.receive_some() == b"half a resp"
    with pytest.raises(trio.BrokenResourceError) as aborted:
        await client.receive_some()
    assert "alert internal error" in str(aborted.value.__cause__)
    with pytest.raises(trio.ClosedResourceError):
        await server.send_all(b"more")


async def test_after_an_idle_timeout_aclose_still_says_close_notify(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client_tcp = await trio.open_tcp_stream("127.0.0.1", port)
    server_tcp = await listeners[0].accept()
    client = trio.SSLStream(client_tcp, client_context(ca), server_hostname="localhost")
    server = TLSStream(DeadlineStream(server_tcp.socket, idle_timeout=0.2), rsa_config)
    await handshake_both(client, server)  # type: ignore[arg-type]
    with pytest.raises(trio.BrokenResourceError) as idle:
        await server.receive_some()
    assert isinstance(idle.value.__cause__.__cause__, IdleTimeout)  # type: ignore[union-attr]
    await server.aclose()
    assert await client.receive_some() == b""  # a clean close: nothing was cut short
    await client.aclose()
    await listeners[0].aclose()


async def test_a_record_begun_must_finish_within_the_record_timeout_of_waiting(
    ca: trustme.CA, rsa_config: ServerConfig, autojump_clock: trio.testing.MockClock
) -> None:
    """Only time spent waiting in a receive counts: a record that sat unread while the server
    was busy is not held against the peer, and a receive its caller cancelled gives back
    nothing but the time it waited."""
    client_transport, server_transport = trio.testing.memory_stream_pair()
    client = trio.SSLStream(client_transport, client_context(ca), server_hostname="localhost")
    server = TLSStream(server_transport, rsa_config, record_timeout=1.0)
    await handshake_both(client, server)
    await client_transport.send_all(b"\x17\x03\x03\x00\x30" + b"x")  # a record's first bytes
    with trio.move_on_after(0.6):
        await server.receive_some()
    await trio.sleep(60)  # the server is busy elsewhere: this does not count
    started = trio.current_time()
    with pytest.raises(trio.BrokenResourceError) as cut:
        await server.receive_some()
    assert trio.current_time() - started == pytest.approx(0.4)
    assert isinstance(cut.value.__cause__.__cause__, RecordTimeout)  # type: ignore[union-attr]
    assert str(cut.value.__cause__.__cause__) == (  # type: ignore[union-attr]
        "a record begun by the peer was not finished within 1 s"
    )


async def test_whole_records_never_meet_the_record_timeout(
    ca: trustme.CA, rsa_config: ServerConfig, autojump_clock: trio.testing.MockClock
) -> None:
    client_transport, server_transport = trio.testing.memory_stream_pair()
    client = trio.SSLStream(client_transport, client_context(ca), server_hostname="localhost")
    server = TLSStream(server_transport, rsa_config, record_timeout=1.0)
    await handshake_both(client, server)
    for _ in range(3):
        await trio.sleep(5)  # idle between records: the idle timeout's business
        await client.send_all(b"x")
        assert await server.receive_some() == b"x"


async def test_each_record_has_its_own_record_timeout(
    ca: trustme.CA, rsa_config: ServerConfig, autojump_clock: trio.testing.MockClock
) -> None:
    """A steady upload whose every read ends inside the next record (as TCP segments fall) is
    never cut, however long it runs: each record that finishes in time starts the next one's
    budget afresh."""
    to_server, server_in = trio.testing.MemorySendStream(), trio.testing.MemoryReceiveStream()
    to_client, client_in = trio.testing.MemorySendStream(), trio.testing.MemoryReceiveStream()

    async def pump_to_client() -> None:
        trio.testing.memory_stream_pump(to_client, client_in)

    async def pump_to_server() -> None:
        trio.testing.memory_stream_pump(to_server, server_in)

    to_client.send_all_hook, to_server.send_all_hook = pump_to_client, pump_to_server
    client = trio.SSLStream(
        trio.StapledStream(to_server, client_in), client_context(ca), server_hostname="localhost"
    )
    server = TLSStream(trio.StapledStream(to_client, server_in), rsa_config, record_timeout=1.0)
    await handshake_both(client, server)
    to_server.send_all_hook = None  # from here on, the test decides how the bytes arrive
    for _ in range(6):
        await client.send_all(b"a" * 100)
    wire = to_server.get_data_nowait()
    record = len(wire) // 6
    cuts = [record * n + record // 2 for n in range(6)] + [len(wire)]

    async def trickle() -> None:
        start = 0
        for end in cuts:  # 0.6 s apart: 3.6 s of waiting in all, under 1 s for each record
            await trio.sleep(0.6)
            server_in.put_data(wire[start:end])
            start = end

    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        while len(received) < 600:
            received += await server.receive_some()
    assert received == b"a" * 600


# -- events met while records are gathered (TLSStream._take_buffered) ---------------------------


async def scripted_handshake(
    config: ServerConfig, **kwargs: bool
) -> tuple[ScriptedClient, trio.testing.MemoryStapledStream, TLSStream]:
    """A TLSStream whose client is the scripted one, which can send any alert or a bad record."""
    client_transport, server_transport = trio.testing.memory_stream_pair()
    server = TLSStream(server_transport, config, **kwargs)  # type: ignore[arg-type]
    client = ScriptedClient()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client_transport.send_all(client.client_hello())
        client.read_server_flight(await client_transport.receive_some())
        # A warning alert in the middle of the handshake is no reason to stop it.
        await client_transport.send_all(
            client.alert(AlertDescription.user_canceled, AlertLevel.warning)
        )
        await client_transport.send_all(client.client_key_exchange() + client.finished())
        assert client.read_server_finished(await client_transport.receive_some()) == []
    assert server.handshake_done
    return client, client_transport, server


@pytest.mark.parametrize("https_compatible", [False, True])
async def test_a_fatal_alert_right_behind_data_fails_the_next_receive(
    rsa_config: ServerConfig, https_compatible: bool
) -> None:
    """Guards the fatal alert met while the data before it was gathered (in the same transport
    read): the data comes first, then the next receive must raise PeerAlert. Dropping the alert
    would leave only the ConnectionClosed behind it, which https_compatible takes for a clean
    EOF: a client's abort would pass for the end of the stream."""
    client, transport, server = await scripted_handshake(
        rsa_config, https_compatible=https_compatible
    )
    await transport.send_all(
        client.application_data(b"partial") + client.alert(AlertDescription.internal_error)
    )
    assert await server.receive_some() == b"partial"
    with pytest.raises(trio.BrokenResourceError) as broken:
        await server.receive_some()
    assert isinstance(broken.value.__cause__, PeerAlert)
    assert broken.value.__cause__.alert.description == AlertDescription.internal_error


async def test_a_bad_record_right_behind_data_fails_the_next_receive_with_its_alert(
    rsa_config: ServerConfig,
) -> None:
    """Guards the protocol error met while the data before it was gathered: the data comes
    first, then the next receive raises that error itself (its alert, bad_record_mac, is what
    the log names), not the connection's later "has failed" with no alert; and the alert reaches
    the client."""
    client, transport, server = await scripted_handshake(rsa_config)
    await transport.send_all(
        client.application_data(b"intact") + client.application_data(b"bent", tamper=True)
    )
    assert await server.receive_some() == b"intact"
    with pytest.raises(trio.BrokenResourceError) as broken:
        await server.receive_some()
    cause = broken.value.__cause__
    assert isinstance(cause, TLSError)
    assert cause.alert == AlertDescription.bad_record_mac
    alert = bytes((AlertLevel.fatal, AlertDescription.bad_record_mac))
    assert client.read(await transport.receive_some()) == [(ContentType.alert, alert)]


async def test_a_warning_alert_does_not_end_the_stream(rsa_config: ServerConfig) -> None:
    """Guards the level check on alerts, in the handshake and after it: a warning alert (RFC
    5246 §7.2: user_canceled here) is reported as an event and the stream goes on; only a fatal
    one breaks it."""
    client, transport, server = await scripted_handshake(rsa_config)  # one warning in there
    await transport.send_all(
        client.alert(AlertDescription.user_canceled, AlertLevel.warning)
        + client.application_data(b"still here")
    )
    assert await server.receive_some() == b"still here"
    await transport.send_all(client.alert(AlertDescription.user_canceled, AlertLevel.warning))
    await transport.send_all(client.application_data(b"and here"))
    assert await server.receive_some() == b"and here"
    await server.send_all(b"reply")
    assert client.read(await transport.receive_some()) == [(ContentType.application_data, b"reply")]
