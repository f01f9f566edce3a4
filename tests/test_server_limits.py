"""serve() against clients that would hold it hostage: silent sockets, idle TLS connections,
clients that never read, and a process out of file descriptors. An honest client must still be
served, promptly, and each bad connection must end with its cause logged."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import h11
import pytest
import trio
import trio.testing
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.ops.plugins import load_handler
from trio_tls.server.stream import TLSStream

from .cli_server import Server, running_server
from .drippers import Dripper
from .openssl_peer import client_context
from .test_server import connect, http_get, start

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def outcomes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trio_tls"]


class _Watcher(logging.Handler):
    def __init__(self, check: Callable[[str], object]) -> None:
        super().__init__(logging.INFO)
        self.check = check

    def emit(self, record: logging.LogRecord) -> None:
        self.check(record.getMessage())


@pytest.fixture
def watch_log() -> Iterator[Callable[[Callable[[str], object]], None]]:
    """Call a function on each trio_tls log message, in the task that logs it."""
    logger = logging.getLogger("trio_tls")
    watchers: list[_Watcher] = []
    previous = logger.level
    logger.setLevel(logging.INFO)

    def add(check: Callable[[str], object]) -> None:
        watchers.append(_Watcher(check))
        logger.addHandler(watchers[-1])

    yield add
    for watcher in watchers:
        logger.removeHandler(watcher)
    logger.setLevel(previous)


async def test_an_idle_connection_is_closed_cleanly_and_logged(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, load_handler("hello"), rsa_config, idle_timeout=0.3)
    # Timed from before the handshake: the server's idle clock starts when its side of the
    # handshake ends, which can be a moment before the client's side does.
    start_time = trio.current_time()
    async with await connect(ca, port) as client:
        with trio.fail_after(3):
            # A keep-alive connection that sends nothing: close_notify after the idle timeout.
            assert await client.receive_some() == b""
        assert trio.current_time() - start_time >= 0.3
    await trio.testing.wait_all_tasks_blocked()
    assert any("idle timeout (no data from the peer for 0.3 s)" in m for m in outcomes(caplog))


async def test_a_client_that_never_reads_is_cut_off_and_logged(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    watch_log: Callable[[Callable[[str], object]], None],
) -> None:
    logged = trio.Event()

    def on_message(message: str) -> None:
        if "write timeout" in message:
            logged.set()

    watch_log(on_message)
    port = await start(server_nursery, load_handler("echo"), rsa_config, write_timeout=0.3)
    client = await connect(ca, port)
    # Echo sends everything back; we never read, so its writes stall.
    with trio.move_on_after(5), pytest.raises(trio.BrokenResourceError):
        while True:
            await client.send_all(bytes(65536))
    await trio.aclose_forcefully(client)
    with trio.fail_after(3):
        await logged.wait()


async def test_accepted_sockets_have_tcp_keepalive(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    seen: list[int] = []

    async def inspect(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, TLSStream)
        sock = stream.transport_stream.socket  # type: ignore[attr-defined]
        seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
        await stream.send_all(b"ok")

    port = await start(server_nursery, inspect, rsa_config)
    client = await connect(ca, port)
    assert await client.receive_some() == b"ok"
    await client.aclose()
    assert seen == [1, 60]


# -- the load tests: a real server process, the attackers and the honest client in this one ----


class Attack:
    """Connections that each hold a slot: silent sockets, idle TLS, TLS that never reads."""

    def __init__(self, port: int, ca: trustme.CA) -> None:
        self.port = port
        self.context = client_context(ca)
        self.streams: list[trio.abc.Stream] = []

    async def silent(self, count: int) -> None:
        for _ in range(count):
            self.streams.append(await trio.open_tcp_stream("127.0.0.1", self.port))

    async def idle_tls(self, count: int) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(self._one_idle)

    async def never_reading(self, count: int) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(self._one_never_reading)

    async def _one_idle(self) -> None:
        self.streams.append(await self._tls())

    async def _one_never_reading(self) -> None:
        """Pipelined GETs, as many as the kernels take within a moment; no response read."""
        stream = await self._tls()
        self.streams.append(stream)
        with trio.move_on_after(0.5):
            for _ in range(256):
                await stream.send_all(GET * 100)

    async def _tls(self) -> trio.SSLStream[trio.SocketStream]:
        tcp = await trio.open_tcp_stream("127.0.0.1", self.port)
        stream = trio.SSLStream(tcp, self.context, server_hostname="localhost")
        await stream.do_handshake()
        return stream

    async def aclose(self) -> None:
        for stream in self.streams:
            await trio.aclose_forcefully(stream)


async def honest_get_seconds(port: int, ca: trustme.CA) -> float:
    """Connect, handshake, GET / and read the whole response; how long it took."""
    start_time = trio.current_time()
    client = await connect(ca, port)
    body = await http_get(client, h11.Connection(h11.CLIENT))
    assert body == b"Hello from Python TLS!\n"
    await client.aclose()
    return trio.current_time() - start_time


@contextlib.contextmanager
def running(
    tmp_path: Path, leaf: trustme.LeafCert, *args: str, open_files: int | None = None
) -> Iterator[Server]:
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "server.crt")
    leaf.private_key_pem.write_to_path(tmp_path / "server.key")
    with running_server(
        tmp_path,
        "--certfile",
        str(tmp_path / "server.crt"),
        "--keyfile",
        str(tmp_path / "server.key"),
        "--handler",
        "hello",
        "--handler-opt",
        "max-requests=1000000",  # so that a client that never reads really stalls writes
        *args,
        open_files=open_files,
    ) as server:
        yield server


async def test_under_the_default_cap_an_attack_does_not_delay_an_honest_client(
    tmp_path: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    with running(tmp_path, rsa_leaf) as server:
        attack = Attack(server.port, ca)
        try:
            with trio.fail_after(120):
                await attack.silent(300)
                await attack.idle_tls(500)
                await attack.never_reading(100)
                latency = await honest_get_seconds(server.port, ca)
        finally:
            await attack.aclose()
    assert latency < 1.0, latency


async def test_at_a_cap_of_four_an_honest_client_waits_one_timeout_at_most(
    tmp_path: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    timeouts = ["--idle-timeout", "2", "--write-timeout", "2", "--handshake-timeout", "2"]
    with running(tmp_path, rsa_leaf, "--max-connections", "4", *timeouts) as server:
        attack = Attack(server.port, ca)
        try:
            with trio.fail_after(60):
                await attack.idle_tls(2)
                await attack.never_reading(2)
                latency = await honest_get_seconds(server.port, ca)
            server.wait_for_stderr("idle timeout", 5)
            server.wait_for_stderr("write timeout", 5)
        finally:
            await attack.aclose()
    assert latency < 2 + 1, latency


async def test_out_of_file_descriptors_the_server_waits_and_serves_again(
    tmp_path: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    # `ulimit -n 64` with the default --max-connections 1000: warned at start, and 80 silent
    # sockets make accept() fail with EMFILE, which must not stop the server.
    with running(tmp_path, rsa_leaf, "--handshake-timeout", "1", open_files=64) as server:
        server.wait_for_stderr("--max-connections 1000 needs about 1064 file descriptors", 5)
        server.wait_for_stderr("lower --max-connections to 1", 1)
        attack = Attack(server.port, ca)
        try:
            with trio.fail_after(30):
                await attack.silent(80)
                server.wait_for_stderr("accept() failed: Too many open files", 5)
        finally:
            await attack.aclose()
        with trio.fail_after(10):
            assert await honest_get_seconds(server.port, ca) < 5
        assert server.proc.poll() is None


async def test_four_drippers_are_cut_at_their_deadlines_and_an_honest_client_is_served(
    tmp_path: Path, ca: trustme.CA, rsa_leaf: trustme.LeafCert
) -> None:
    # Slowloris: each dripper sends a byte (of one sealed record, or as a whole one-byte
    # record) every 0.5 s, well inside the idle timeout, which restarts with every byte. The
    # record timeout cuts the first kind, the request timeout the second.
    limits = ["--max-connections", "4", "--idle-timeout", "3", "--record-timeout", "1"]
    with running(tmp_path, rsa_leaf, *limits, "--handler-opt", "request-timeout=1.5") as server:
        context = client_context(ca)
        drippers = [Dripper(server.port, context, drip, 0.5) for drip in ("sealed", "records") * 2]
        async with trio.open_nursery() as nursery:
            for dripper in drippers:
                nursery.start_soon(dripper.run)
            with trio.fail_after(10):
                for dripper in drippers:
                    await dripper.handshaken.wait()
            with trio.fail_after(3):  # the idle timeout: never served before
                latency = await honest_get_seconds(server.port, ca)
            with trio.fail_after(5):
                for dripper in drippers:
                    await dripper.cut.wait()
            nursery.cancel_scope.cancel()
        server.wait_for_stderr("record timeout (a record begun by the peer was not finished", 5, 2)
        server.wait_for_stderr('"-" 408 0', 5, 2)
    assert latency < 1.5 + 1, latency
    cut = [dripper.cut_after for dripper in drippers]
    assert all(seconds is not None and seconds < 1.5 + 1 for seconds in cut), cut
