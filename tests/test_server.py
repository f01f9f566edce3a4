"""serve() on real loopback sockets, with OpenSSL clients (trio.SSLStream over TCP)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import h11
import pytest
import trio
import trio.testing
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.ops.plugins import load_handler
from trio_tls.server.handler import Handler
from trio_tls.server.listen import serve

from .openssl_peer import client_context


async def start(
    nursery: trio.Nursery, handler: Handler, config: ServerConfig, **kwargs: object
) -> int:
    async def run(task_status: trio.TaskStatus[Sequence[trio.SocketListener]]) -> None:
        await serve(handler, config, "127.0.0.1", 0, task_status=task_status, **kwargs)  # type: ignore[arg-type]

    listeners: Sequence[trio.SocketListener] = await nursery.start(run)
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def connect(ca: trustme.CA, port: int) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    client = trio.SSLStream(tcp, client_context(ca), server_hostname="localhost")
    await client.do_handshake()
    return client


async def http_get(client: trio.abc.Stream, conn: h11.Connection, method: str = "GET") -> bytes:
    request = h11.Request(method=method, target="/", headers=[("Host", "localhost")])
    await client.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await client.receive_some(65536))
        elif isinstance(event, h11.Response):
            assert event.status_code == 200
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return body


async def test_keep_alive_requests_on_one_connection(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    client = await connect(ca, port)
    assert client.cipher() is not None
    assert client.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"  # type: ignore[index]
    conn = h11.Connection(h11.CLIENT)
    for _ in range(3):
        assert await http_get(client, conn) == b"Hello from Python TLS!\n"
    assert await http_get(client, conn, "HEAD") == b""
    await client.aclose()


async def test_echo_8_mib(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    port = await start(server_nursery, load_handler("echo"), rsa_config)
    client = await connect(ca, port)
    payload = bytes(range(256)) * (8 * 1024 * 4)
    received = bytearray()

    async def reader() -> None:
        while len(received) < len(payload):
            received.extend(await client.receive_some(1 << 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await client.send_all(payload)
    assert received == payload
    await client.aclose()


async def test_200_concurrent_clients(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    bodies: list[bytes] = []

    async def one() -> None:
        client = await connect(ca, port)
        bodies.append(await http_get(client, h11.Connection(h11.CLIENT)))
        await client.aclose()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
    assert bodies == [b"Hello from Python TLS!\n"] * 200


async def test_silent_client_dropped_at_handshake_timeout(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config, handshake_timeout=0.5)
    silent = await trio.open_tcp_stream("127.0.0.1", port)
    start_time = trio.current_time()
    client = await connect(ca, port)  # others are served meanwhile
    assert await http_get(client, h11.Connection(h11.CLIENT)) == b"Hello from Python TLS!\n"
    with trio.fail_after(5):
        assert await silent.receive_some() == b""  # the server hung up
    assert 0.4 < trio.current_time() - start_time < 3
    await trio.testing.wait_all_tasks_blocked()
    assert any("handshake timeout" in r.getMessage() for r in caplog.records)
    await client.aclose()
    await silent.aclose()


async def test_handler_exception_is_logged_and_server_survives(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def flaky(stream: trio.abc.Stream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        await stream.send_all(b"fine")

    port = await start(server_nursery, flaky, rsa_config)
    first = await connect(ca, port)
    # Not a close_notify: the client must be able to tell the stream was cut short.
    with pytest.raises(trio.BrokenResourceError) as aborted:
        await first.receive_some()
    assert "alert internal error" in str(aborted.value.__cause__)
    second = await connect(ca, port)
    assert await second.receive_some() == b"fine"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "127.0.0.1" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    await trio.aclose_forcefully(first)
    await second.aclose()


async def test_protocol_failure_is_logged_with_its_alert(
    rsa_config: ServerConfig, server_nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    await tcp.send_all(b"\x99\x03\x03\x00\x00")  # not a record type
    assert await tcp.receive_some() == b"\x15\x03\x03\x00\x02\x02\x0a"
    assert await tcp.receive_some() == b""
    await tcp.aclose()
    await trio.testing.wait_all_tasks_blocked()
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "failed: unexpected_message (unknown record content type 153)" in line for line in lines
    ), lines


async def test_plain_http_gets_a_plain_400(
    rsa_config: ServerConfig, server_nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config)
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    await tcp.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    reply = b""
    while chunk := await tcp.receive_some():
        reply += chunk
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.receive_data(reply)
    response = conn.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 400
    body = conn.next_event()
    assert isinstance(body, h11.Data)
    assert body.data == b"The plain HTTP request was sent to an HTTPS port.\n"
    await tcp.aclose()
    await trio.testing.wait_all_tasks_blocked()
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith(": plain HTTP on the TLS port (answered 400)") for line in lines)


async def test_max_connections_queues_the_excess(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    release = trio.Event()
    active = 0
    peak = 0

    async def slow(stream: trio.abc.Stream) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        await stream.send_all(b"done")
        active -= 1

    port = await start(server_nursery, slow, rsa_config, max_connections=2)
    results: list[bytes] = []
    handshakes = 0

    async def one() -> None:
        nonlocal handshakes
        client = await connect(ca, port)
        handshakes += 1
        results.append(await client.receive_some())
        await client.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(one)
        # Everything that can happen has: two handlers wait for `release`, and the other two
        # clients wait in the kernel's backlog for their ServerHello.
        await trio.testing.wait_all_tasks_blocked()
        assert (active, peak, handshakes) == (2, 2, 2)
        release.set()
    assert results == [b"done"] * 4
    assert peak == 2


async def test_graceful_shutdown(
    ca: trustme.CA, rsa_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    shutdown = trio.Event()
    handler_cancelled = False

    async def lingering(stream: trio.abc.Stream) -> None:
        nonlocal handler_cancelled
        try:
            await stream.receive_some()
        except trio.Cancelled:
            handler_cancelled = True
            raise

    # serve() returns by itself once shutdown is set and the grace period has run out.
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            port = await start(
                nursery, lingering, rsa_config, shutdown=shutdown, shutdown_grace=0.5
            )
            client = await connect(ca, port)
            shutdown.set()
            # serve() closes its listeners, then says how many connections it waits for.
            await trio.testing.wait_all_tasks_blocked()
            assert "shutting down: 1 connection(s) open" in log_lines(caplog)
            assert not handler_cancelled  # the grace period is running
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", port)  # no longer accepting
    assert handler_cancelled
    # The cancelled connection said goodbye with a fatal alert, never a clean EOF: the handler
    # may have been half way through a response.
    with pytest.raises(trio.BrokenResourceError) as aborted:
        await client.receive_some()
    assert "alert internal error" in str(aborted.value.__cause__)
    await trio.aclose_forcefully(client)


async def test_a_handler_timeout_is_a_handler_error(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")

    async def impatient(stream: trio.abc.Stream) -> None:
        with trio.fail_after(0.01):
            await stream.receive_some()

    port = await start(server_nursery, impatient, rsa_config)
    client = await connect(ca, port)
    with pytest.raises(trio.BrokenResourceError):
        await client.receive_some()
    await trio.aclose_forcefully(client)
    await trio.testing.wait_all_tasks_blocked()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith(" handler error") for m in messages), messages
    assert not any("handshake timeout" in m for m in messages)


async def test_shutdown_ends_idle_keep_alive_connections_at_once_and_cleanly(
    ca: trustme.CA, rsa_config: ServerConfig
) -> None:
    shutdown = trio.Event()
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            port = await start(
                nursery, load_handler("hello"), rsa_config, shutdown=shutdown, shutdown_grace=30
            )
            client = await connect(ca, port)
            assert await http_get(client, h11.Connection(h11.CLIENT)) == b"Hello from Python TLS!\n"
            shutdown.set()  # the connection is idle between requests: it may go now
            assert await client.receive_some() == b""  # close_notify, long before the grace
            await client.aclose()


def log_lines(caplog: pytest.LogCaptureFixture, logger: str = "trio_tls") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_each_connection_is_one_line_with_what_an_operator_needs(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_tls")
    hello = load_handler("hello")
    port = await start(server_nursery, hello, rsa_config)
    client = await connect(ca, port)
    await http_get(client, h11.Connection(h11.CLIENT))
    await client.aclose()  # with close_notify
    # Python's ssl, like browsers, often just closes the socket: that is normal too.
    rude = await connect(ca, port)
    await http_get(rude, h11.Connection(h11.CLIENT))
    await rude.transport_stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    lines = log_lines(caplog)
    pattern = (
        r"^127\.0\.0\.1:\d+ sni=localhost alpn=- suite=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 "
        r"resumed=no in=\d+ out=\d+ time=\d+\.\dms: (closed|closed by the peer)$"
    )
    ends = [line.rsplit(": ", 1)[1] for line in lines if re.match(pattern, line)]
    assert sorted(ends) == ["closed", "closed by the peer"], lines
    assert not any("failed" in line for line in lines), lines
    debug = [line for line in lines if " handshake in " in line]
    assert len(debug) == 2
    assert "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 group=" in debug[0]
    access = log_lines(caplog, "trio_tls.access")
    assert len(access) == 2
    assert re.match(r'^127\.0\.0\.1:\d+ "GET / HTTP/1\.1" 200 \d+$', access[0]), access


async def test_a_relay_whose_peer_vanishes_is_no_handler_error(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A handler with a nursery sees the broken stream inside an ExceptionGroup.
    caplog.set_level(logging.INFO, logger="trio_tls")

    async def relay(stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some)
            await trio.sleep_forever()

    port = await start(server_nursery, relay, rsa_config)
    client = await connect(ca, port)
    await client.transport_stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    lines = log_lines(caplog)
    assert any(line.endswith(": closed by the peer") for line in lines), lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"handshake_timeout": 0}, "handshake_timeout must be a positive number of seconds, not 0"),
        (
            {"idle_timeout": float("nan")},
            "idle_timeout must be a positive number of seconds, not nan",
        ),
        ({"write_timeout": -1.0}, "write_timeout must be a positive number of seconds, not -1.0"),
        ({"max_connections": 0}, "max_connections must be at least 1, not 0"),
    ],
    ids=["handshake-timeout-0", "idle-timeout-nan", "write-timeout-negative", "no-connections"],
)
async def test_serve_refuses_impossible_limits_before_it_listens(
    rsa_config: ServerConfig, limit: dict[str, float], message: str
) -> None:
    # A host that cannot be listened on: had serve() tried, the error would be another.
    with pytest.raises(ValueError, match=re.escape(message)):
        await serve(load_handler("hello"), rsa_config, "256.0.0.1", 0, **limit)  # type: ignore[arg-type]
