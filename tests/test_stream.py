"""TLSStream as a trio Stream, with trio's SSLStream (stdlib ssl, OpenSSL) as the client."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
import trustme

from trio_tls.config import ServerConfig
from trio_tls.deadlines import DeadlineStream, IdleTimeout
from trio_tls.stream import TLSStream

from .openssl_peer import client_context

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
    await client.send_all(b"c" * 20_000)
    await client.aclose()  # close_notify right behind the data
    assert await server.receive_some(19_999) == b"c" * 19_999
    assert await server.receive_some() == b"c"
    assert await server.receive_some() == b""


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
