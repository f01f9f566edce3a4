"""DeadlineStream on real loopback sockets: idle and write timeouts, and progress that counts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import trio

from trio_tls.server.deadlines import DeadlineStream, IdleTimeout, WriteTimeout

SMALL_BUFFER = 16 * 1024


@pytest.fixture
async def tcp_pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    """(server end, client end) of one loopback TCP connection, with small kernel buffers."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    yield server, client
    for resource in (server, client, *listeners):
        await resource.aclose()


async def test_an_idle_peer_times_out(tcp_pair: tuple[trio.SocketStream, ...]) -> None:
    server, client = tcp_pair
    stream = DeadlineStream(server.socket, idle_timeout=0.2)
    await client.send_all(b"early")
    assert await stream.receive_some() == b"early"  # data in time is data
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError) as failure:
        await stream.receive_some()
    assert 0.2 <= trio.current_time() - start < 1.0
    assert isinstance(failure.value.__cause__, IdleTimeout)
    assert str(failure.value.__cause__) == "no data from the peer for 0.2 s"


async def test_a_peer_that_stops_reading_times_out(tcp_pair: tuple[trio.SocketStream, ...]) -> None:
    server, _ = tcp_pair
    stream = DeadlineStream(server.socket, write_timeout=0.3)
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError) as failure:
        await stream.send_all(bytes(16 * 2**20))
    assert 0.3 <= trio.current_time() - start < 2.0
    assert isinstance(failure.value.__cause__, WriteTimeout)


async def test_a_slow_reader_that_keeps_reading_is_never_cut_off(
    tcp_pair: tuple[trio.SocketStream, ...],
) -> None:
    # The whole send takes several write timeouts, but bytes move within each one.
    server, client = tcp_pair
    stream = DeadlineStream(server.socket, write_timeout=0.3)
    payload = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()

    async def slow_reader() -> None:
        while len(received) < len(payload):
            received.extend(await client.receive_some(32 * 1024))
            await trio.sleep(0.02)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        await stream.send_all(payload)
    assert trio.current_time() - start > 0.3
    assert received == payload


async def test_a_vanished_peer_is_a_broken_stream(tcp_pair: tuple[trio.SocketStream, ...]) -> None:
    server, client = tcp_pair
    stream = DeadlineStream(server.socket, write_timeout=5)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await client.aclose()  # linger 0: a reset
    with pytest.raises(trio.BrokenResourceError) as failure:
        for _ in range(100):
            await stream.send_all(bytes(65536))
    assert isinstance(failure.value.__cause__, OSError)


async def test_it_behaves_as_a_socket_stream_at_the_edges(
    tcp_pair: tuple[trio.SocketStream, ...],
) -> None:
    """DeadlineStream stands in for trio.SocketStream over an accepted socket: the same answers
    for empty writes, half-close, sizes and use after close (trio.abc.Stream's contract)."""
    server, client = tcp_pair
    stream = DeadlineStream(server.socket, idle_timeout=5, write_timeout=5)
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        await stream.receive_some(0)
    await stream.send_all(b"")  # a checkpoint, nothing sent
    await stream.wait_send_all_might_not_block()
    await stream.send_all(b"ping")
    assert await client.receive_some() == b"ping"
    await client.send_all(b"x" * 100)
    assert await stream.receive_some() == b"x" * 100  # no size given: up to 64 KiB
    assert (stream.bytes_sent, stream.bytes_received) == (4, 100)
    await stream.send_eof()
    await stream.send_eof()  # idempotent, as SocketStream's
    assert await client.receive_some() == b""  # the client sees our EOF
    await stream.aclose()
    for closed_call in (
        stream.receive_some(),
        stream.send_all(b"late"),
        stream.send_all(b""),
        stream.wait_send_all_might_not_block(),
    ):
        with pytest.raises(trio.ClosedResourceError):
            await closed_call


async def test_socket_errors_become_broken_streams(
    tcp_pair: tuple[trio.SocketStream, ...],
) -> None:
    """A reset on receive is BrokenResourceError with the OSError as its cause; so is a
    half-close of a socket that is no longer connected."""
    server, client = tcp_pair
    stream = DeadlineStream(server.socket, idle_timeout=5)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await client.send_all(b"bye")
    await client.aclose()  # linger 0: data, then a reset
    with pytest.raises(trio.BrokenResourceError) as failure:
        for _ in range(10):
            await stream.receive_some()
    assert isinstance(failure.value.__cause__, ConnectionResetError)
    with pytest.raises(trio.BrokenResourceError, match="socket shutdown failed") as failure:
        await stream.send_eof()
    assert isinstance(failure.value.__cause__, OSError)
