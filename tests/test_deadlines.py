"""DeadlineStream on real loopback sockets: idle and write timeouts, and progress that counts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import trio

from trio_tls.deadlines import DeadlineStream, IdleTimeout, WriteTimeout

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
