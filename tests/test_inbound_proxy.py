"""serve(proxy_protocol=...): the PROXY header read before TLS, on loopback sockets."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trustme

from trio_tls.engine.config import ServerConfig
from trio_tls.server import lifecycle
from trio_tls.server.addresses import connection_addresses
from trio_tls.server.proxy_protocol import V2_SIGNATURE, encode_v1, encode_v2
from trio_tls.server.stream import TLSStream

from .openssl_peer import client_context
from .test_proxy import VERSIONS, logged, read_to_eof
from .test_server import start
from .test_tls13 import tls13_context

CLIENT = ("203.0.113.7", 40123)
ADDRESSED = ("198.51.100.1", 443)


async def tell_addresses(stream: TLSStream) -> None:
    addresses = connection_addresses()
    assert addresses is not None
    await stream.send_all(f"{stream.info.peer} {addresses}".encode())


class HeaderFirst(trio.abc.Stream):
    """A TCP stream whose first send carries the PROXY header too, in one segment: the server
    must hand the bytes after the header to TLS."""

    def __init__(self, transport: trio.SocketStream, header: bytes) -> None:
        self.transport = transport
        self.header = header

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        data, self.header = self.header + bytes(data), b""
        await self.transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.transport.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.transport.aclose()


@VERSIONS
@pytest.mark.parametrize("header", [encode_v1(CLIENT, ADDRESSED), encode_v2(CLIENT, ADDRESSED)])
@pytest.mark.parametrize("together", [False, True])
async def test_the_header_names_the_client(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    header: bytes,
    together: bool,
    tls13: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, tell_addresses, rsa_config, proxy_protocol=(1, 2))
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    transport: trio.abc.Stream = tcp
    if together:
        transport = HeaderFirst(tcp, header)
    else:
        await tcp.send_all(header)
    proxy_port = tcp.socket.getsockname()[1]
    context = tls13_context(ca) if tls13 else client_context(ca)
    client = trio.SSLStream(transport, context, server_hostname="localhost")
    with trio.fail_after(5):
        said = (await read_to_eof(client)).decode()
    await client.aclose()
    assert said == (
        "203.0.113.7:40123 ConnectionAddresses(source=('203.0.113.7', 40123), "
        f"destination=('198.51.100.1', 443), via=('127.0.0.1', {proxy_port}))"
    )
    lines = await logged(caplog, "203.0.113.7:40123 sni=localhost")
    assert any(line.endswith(": closed") for line in lines if line.startswith("203.0.113.7"))


@pytest.mark.parametrize(
    ("sent", "outcome"),
    [
        (b"\x16\x03\x01\x00\x05hello", "refused: no PROXY protocol v2 header"),
        (encode_v1(CLIENT, ADDRESSED), "refused: no PROXY protocol v2 header"),
        (V2_SIGNATURE + b"\x21\x11\x00\x05", "refused: PROXY v2 length 5 is too short"),
        (V2_SIGNATURE + b"\x20\x00\x00\x00", "health check (PROXY LOCAL)"),
        (V2_SIGNATURE[:5], "refused: the connection closed inside the PROXY header"),
    ],
)
async def test_without_a_valid_header_the_connection_is_closed_and_logged(
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    sent: bytes,
    outcome: str,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(server_nursery, tell_addresses, rsa_config, proxy_protocol=(2,))
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    await tcp.send_all(sent)
    await tcp.send_eof()
    with trio.fail_after(5):
        assert await read_to_eof(tcp) == b""  # closed without a word: no alert, no reset
    await tcp.aclose()
    lines = await logged(caplog, outcome)
    assert any(line.startswith("127.0.0.1:") and outcome in line for line in lines)


async def test_the_handshake_timeout_covers_the_header(
    rsa_config: ServerConfig, server_nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(
        server_nursery, tell_addresses, rsa_config, proxy_protocol=(1,), handshake_timeout=0.3
    )
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    await tcp.send_all(b"PROXY TCP4 ")  # and nothing more
    with trio.fail_after(5):
        assert await read_to_eof(tcp) == b""
    await tcp.aclose()
    await logged(caplog, "handshake timeout")


class Dribble:
    """The bytes given, one per receive_some, then EOF: a header sent byte by byte."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.at += 1
        return self.data[self.at - 1 : self.at]


# The largest v2 header: a 16-byte fixed part and 65,535 bytes of addresses and TLVs.
LARGEST_V2 = encode_v2(CLIENT, ADDRESSED, [(0xE0, bytes(0xFFFF - 12 - 3))])


@pytest.mark.parametrize("header", [LARGEST_V2, encode_v1(CLIENT, ADDRESSED)], ids=["v2", "v1"])
async def test_a_header_sent_byte_by_byte_is_parsed_once(
    monkeypatch: pytest.MonkeyPatch, header: bytes
) -> None:
    # Linear: the header's first bytes give its size, then it is parsed once when whole,
    # not again on each of its 65,551 reads.
    calls: Counter[str] = Counter()

    def counted(name: str) -> Callable[..., object]:
        original = getattr(lifecycle, name)

        def call(*args: object) -> object:
            calls[name] += 1
            return original(*args)

        return call

    for name in ("parse_header", "header_size"):
        monkeypatch.setattr(lifecycle, name, counted(name), raising=False)
    stream: Any = Dribble(header + b"\x16\x03\x01")
    with trio.fail_after(20):
        first, parsed = await lifecycle._read_first(stream, (1, 2))
    assert parsed is not None and parsed.source == CLIENT
    assert first == b"\x16"
    assert calls["parse_header"] == 1
    assert calls["header_size"] <= 107  # each looks at most at a v1 line's 107 bytes
