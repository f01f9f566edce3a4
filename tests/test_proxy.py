"""The `proxy` handler on loopback: trio.SSLStream clients (OpenSSL), trio TCP upstreams."""

from __future__ import annotations

import functools
import logging
import pathlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trustme
from trio_tls_handlers.proxy import make_handler

from trio_tls.engine.config import ServerConfig
from trio_tls.ops import plugins
from trio_tls.ops.plugins import PluginError, load_handler
from trio_tls.server.handler import HandlerOptions
from trio_tls.server.proxy_protocol import (
    PP2_CLIENT_CERT_CONN,
    PP2_CLIENT_SSL,
    PP2_SUBTYPE_SSL_CIPHER,
    PP2_SUBTYPE_SSL_CN,
    PP2_SUBTYPE_SSL_VERSION,
    PP2_TYPE_ALPN,
    PP2_TYPE_AUTHORITY,
    PP2_TYPE_SSL,
    VERIFIED,
    parse_header,
)

from .client_certs import T61_V3, client_auth
from .openssl_peer import client_context
from .test_server import start
from .test_tls13 import tls13_context

VERSIONS = pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])

UpstreamHandler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def upstream(handler: UpstreamHandler) -> AsyncIterator[int]:
    """A plain TCP service on loopback; yields its port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
        )
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def echo_upstream(stream: trio.SocketStream) -> None:
    while data := await stream.receive_some(65536):
        await stream.send_all(data)


async def proxy_to(
    nursery: trio.Nursery, config: ServerConfig, *options: str, **kwargs: object
) -> int:
    handler = load_handler("proxy", HandlerOptions(o.split("=", 1) for o in options))  # type: ignore[misc]
    return await start(nursery, handler, config, **kwargs)


async def connect(
    ca: trustme.CA,
    port: int,
    sni: str = "localhost",
    alpn: list[str] | None = None,
    *,
    tls13: bool = False,
) -> trio.SSLStream[trio.SocketStream]:
    context = tls13_context(ca) if tls13 else client_context(ca)
    context.check_hostname = False
    if alpn:
        context.set_alpn_protocols(alpn)
    client = trio.SSLStream(
        await trio.open_tcp_stream("127.0.0.1", port), context, server_hostname=sni
    )
    await client.do_handshake()
    return client


async def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The log so far, once a line containing `text` is in it (connection lines come last)."""
    with trio.fail_after(5):
        while True:
            lines = [r.getMessage() for r in caplog.records]
            if any(text in line for line in lines):
                return lines
            await trio.sleep(0.01)


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


async def test_full_duplex_16_mib_each_way(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    async with upstream(echo_upstream) as upstream_port:
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{upstream_port}")
        client = await connect(ca, port)
        payload = bytes(range(256)) * (16 * 4096)
        received = bytearray()

        async def reader() -> None:
            while len(received) < len(payload):
                received.extend(await client.receive_some(1 << 20))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await client.send_all(payload)
        assert received == payload
        await client.aclose()


async def test_a_slow_reader_slows_the_writer(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    """The upstream sends without end; a client that stops reading stops the upstream's sends
    once the bounded buffers between them are full."""
    sent = 0

    async def firehose(stream: trio.SocketStream) -> None:
        nonlocal sent
        chunk = b"x" * 65536
        while True:
            await stream.send_all(chunk)
            sent += len(chunk)

    async with upstream(firehose) as upstream_port:
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{upstream_port}")
        client = await connect(ca, port)
        await client.receive_some(1)
        await trio.sleep(1)
        stalled_at = sent
        await trio.sleep(0.5)
        assert sent == stalled_at  # no progress while nobody reads
        # Kernel buffers on three sockets plus the relay's chunk: megabytes, not unbounded.
        assert stalled_at < 32 * 1024 * 1024
        with trio.fail_after(10):
            for _ in range(64):
                await client.receive_some(1 << 16)
        assert sent > stalled_at
        await client.aclose()


@VERSIONS
async def test_client_close_notify_half_closes_the_upstream(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    tls13: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    seen = trio.Event()
    got = bytearray()

    async def reader(stream: trio.SocketStream) -> None:
        got.extend(await read_to_eof(stream))  # EOF, not a reset: shutdown(SHUT_WR)
        await stream.send_all(b"too late")  # the upstream may still write: dropped, no reset
        seen.set()

    async with upstream(reader) as upstream_port:
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{upstream_port}")
        client = await connect(ca, port, tls13=tls13)
        await client.send_all(b"the whole request")
        await client.aclose()  # close_notify
        with trio.fail_after(5):
            await seen.wait()
        assert got == b"the whole request"
    lines = [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], lines


@VERSIONS
async def test_upstream_eof_becomes_close_notify(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery, tls13: bool
) -> None:
    async def say_bye(stream: trio.SocketStream) -> None:
        await stream.send_all(b"bye")

    async with upstream(say_bye) as upstream_port:
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{upstream_port}")
        client = await connect(ca, port, tls13=tls13)  # EOF without close_notify raises
        with trio.fail_after(5):
            assert await read_to_eof(client) == b"bye"
        await client.aclose()


async def test_refused_upstream_is_an_abortive_close_logged_without_traceback(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = unused.getsockname()[1]  # bound, never listening: connections are refused
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{dead}")
        client = await connect(ca, port)
        with pytest.raises(trio.BrokenResourceError) as raised:
            await client.receive_some(10)
        await client.transport_stream.aclose()
    assert "INTERNAL_ERROR" in str(raised.value.__cause__).upper()
    lines = await logged(caplog, "aborted:")
    assert any(
        f"upstream 127.0.0.1:{dead}: cannot connect: Connection refused" in line
        and line.startswith("127.0.0.1:")
        and "aborted:" in line
        for line in lines
    ), lines
    assert not [r for r in caplog.records if r.exc_info], lines


async def test_connect_timeout(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    with socket.socket() as full, socket.socket() as filler:
        # A listener whose accept queue is full: the kernel drops further SYNs, so a connect
        # hangs as it would to a host that does not answer.
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        filler.connect(full.getsockname())
        address = f"127.0.0.1:{full.getsockname()[1]}"
        port = await proxy_to(
            server_nursery, rsa_config, f"upstream={address}", "connect-timeout=0.5"
        )
        clients = [await connect(ca, port) for _ in range(2)]
        for client in clients:
            with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
                await client.receive_some(10)
            await client.transport_stream.aclose()
    await logged(caplog, f"aborted: upstream {address}: connect timed out after 0.5 s")


@VERSIONS
async def test_routes_by_sni_then_alpn_then_default(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery, tls13: bool
) -> None:
    def named(name: bytes) -> UpstreamHandler:
        async def answer(stream: trio.SocketStream) -> None:
            await stream.send_all(name)

        return answer

    config = attrs.evolve(rsa_config, alpn_protocols=[b"x-b", b"x-other", b"localhost"])
    async with (
        upstream(named(b"a")) as a,
        upstream(named(b"b")) as b,
        upstream(named(b"default")) as default,
    ):
        port = await proxy_to(
            server_nursery,
            config,
            f"upstream=127.0.0.1:{default}",
            f"sni-route=A.example=127.0.0.1:{a}",
            f"alpn-route=x-b=127.0.0.1:{b}",
            f"alpn-route=localhost=127.0.0.1:{a}",  # a protocol, not a host name
        )
        for sni, alpn, expected in [
            ("a.example", None, b"a"),
            ("a.example", ["x-b"], b"a"),  # SNI first
            ("localhost", ["x-b"], b"b"),
            ("localhost", ["x-other"], b"default"),
            ("localhost", ["localhost"], b"a"),
            ("localhost", None, b"default"),
        ]:
            client = await connect(ca, port, sni, alpn, tls13=tls13)
            with trio.fail_after(5):
                assert await read_to_eof(client) == expected, (sni, alpn)
            await client.aclose()


async def test_a_name_with_no_route_and_no_default_is_refused_and_logged(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_tls")
    async with upstream(echo_upstream) as a:
        port = await proxy_to(server_nursery, rsa_config, f"sni-route=a.example=127.0.0.1:{a}")
        client = await connect(ca, port, "b.example")
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError) as raised:
            await client.receive_some(10)
        await client.transport_stream.aclose()
    assert "INTERNAL_ERROR" in str(raised.value.__cause__).upper()  # not a clean close
    lines = await logged(caplog, "aborted:")
    assert any(line.endswith(": aborted: no route for sni=b.example alpn=-") for line in lines)


async def test_an_upstream_reset_mid_relay_is_an_abortive_close(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The upstream takes the request, then resets the connection (a crash, a firewall): the
    client must not take what it got for a whole answer, and the log says what happened."""
    caplog.set_level(logging.INFO, logger="trio_tls")
    received = trio.Event()

    async def reset_after_reading(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        received.set()
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()  # with SO_LINGER 0: a reset, not a FIN

    async with upstream(reset_after_reading) as dying:
        port = await proxy_to(server_nursery, rsa_config, f"upstream=127.0.0.1:{dying}")
        client = await connect(ca, port)
        await client.send_all(b"GET / HTTP/1.0\r\n\r\n")
        with trio.fail_after(5):
            await received.wait()
            with pytest.raises(trio.BrokenResourceError) as raised:
                await client.receive_some(10)
        await client.transport_stream.aclose()
    assert "INTERNAL_ERROR" in str(raised.value.__cause__).upper()
    lines = await logged(caplog, "aborted:")
    assert any(
        f"aborted: upstream 127.0.0.1:{dying}: " in line and "Connection reset by peer" in line
        for line in lines
    ), lines
    assert not [r for r in caplog.records if r.exc_info], lines


@VERSIONS
@pytest.mark.parametrize("version", [1, 2])
async def test_proxy_protocol_to_the_upstream(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    version: int,
    tls13: bool,
) -> None:
    headers: list[bytes] = []
    recorded = trio.Event()

    async def record(stream: trio.SocketStream) -> None:
        headers.append(await read_to_eof(stream))
        recorded.set()

    config = attrs.evolve(rsa_config, alpn_protocols=[b"h2"])
    async with upstream(record) as upstream_port:
        port = await proxy_to(
            server_nursery,
            config,
            f"upstream=127.0.0.1:{upstream_port}",
            f"proxy-protocol=v{version}",
        )
        client = await connect(ca, port, alpn=["h2"], tls13=tls13)
        client_port = client.transport_stream.socket.getsockname()[1]
        await client.send_all(b"payload")
        await client.aclose()
        with trio.fail_after(5):
            await recorded.wait()
    parsed = parse_header(headers[0], [version])  # type: ignore[list-item]
    assert parsed is not None
    header, size = parsed
    assert headers[0][size:] == b"payload"
    assert header.source == ("127.0.0.1", client_port)
    assert header.destination == ("127.0.0.1", port)
    if version == 2:
        tlvs = dict(header.tlvs)
        assert tlvs[PP2_TYPE_ALPN] == b"h2"
        assert tlvs[PP2_TYPE_AUTHORITY] == b"localhost"
        ssl = tlvs[PP2_TYPE_SSL]
        assert ssl[0] == 1  # PP2_CLIENT_SSL
        assert bytes([PP2_SUBTYPE_SSL_VERSION, 0, 7]) + (b"TLSv1.3" if tls13 else b"TLSv1.2") in ssl
        cipher = b"TLS_AES_128_GCM_SHA256" if tls13 else b"ECDHE-RSA-AES128-GCM-SHA256"
        assert bytes([PP2_SUBTYPE_SSL_CIPHER, 0, len(cipher)]) + cipher in ssl


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give upstream=HOST:PORT"),
        ({"upstream": "localhost"}, "is not HOST:PORT"),
        ({"upstream": "h:1", "proxy-protocol": "v3"}, "choose v1 or v2"),
        ({"upstream": "h:1", "connect-timeout": "0"}, "not a positive number"),
        ({"upstream": "h:1", "connect-timeout": "soon"}, "'soon' is not a positive number"),
        ({"upstream": "h:1", "sni-route": "h:2"}, "is not NAME=HOST:PORT"),
        ({"upstream": "h:1", "route": "a=h:2"}, "route= is now sni-route=HOST_NAME=HOST:PORT or"),
        ({"sni-route": "a_b.example=h:2"}, "could never match: clients send only DNS host names"),
        ({"sni-route": "a.example.=h:2"}, "no trailing dot"),
        ({"sni-route": "=h:2"}, "is not NAME=HOST:PORT"),
        ({"upstream": "h:1", "upstreams": "h:2"}, "unknown option 'upstreams'"),
    ],
)
def test_bad_options_are_one_line(options: dict[str, str], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        load_handler("proxy", options)


@pytest.mark.parametrize(
    ("option", "first", "second"),
    [("sni-route", "a.example", "A.Example"), ("alpn-route", "h2", "h2")],
)
def test_a_route_shadowed_by_an_earlier_one_is_refused(
    option: str, first: str, second: str
) -> None:
    options = HandlerOptions([(option, f"{first}=h:1"), (option, f"{second}=h:2")])
    with pytest.raises(PluginError, match=f"{option}='{second}=h:2' could never match: an earlier"):
        load_handler("proxy", options)


def test_alpn_routes_are_case_sensitive_as_protocol_names_are() -> None:
    # RFC 7301 §3.1: protocol names are opaque bytes, so h2 and H2 are two protocols.
    proxy = load_handler(
        "proxy", HandlerOptions([("alpn-route", "h2=h:1"), ("alpn-route", "H2=h:2")])
    )
    assert sorted(proxy.routes.alpn) == ["H2", "h2"]  # type: ignore[attr-defined]


def check(config: ServerConfig, *routes: tuple[str, str]) -> None:
    plugins.check_handler(load_handler("proxy", HandlerOptions(routes)), config)


def test_an_alpn_route_for_a_protocol_not_offered_is_refused(rsa_config: ServerConfig) -> None:
    with pytest.raises(PluginError, match="offers no protocols in ALPN; add h2 to --alpn"):
        check(rsa_config, ("alpn-route", "h2=127.0.0.1:1"))
    offered = attrs.evolve(rsa_config, alpn_protocols=[b"http/1.1"])
    with pytest.raises(PluginError, match=r"^proxy: alpn-route=h2=127.0.0.1:1 could never match"):
        check(offered, ("alpn-route", "http/1.1=127.0.0.1:2"), ("alpn-route", "h2=127.0.0.1:1"))
    check(attrs.evolve(rsa_config, alpn_protocols=[b"http/1.1", b"h2"]), ("alpn-route", "h2=h:1"))


def test_an_sni_route_no_certificate_covers_is_refused_under_strict_sni(
    rsa_config: ServerConfig,
) -> None:
    route = ("sni-route", "other.example=127.0.0.1:1")
    check(rsa_config, route)  # without --strict-sni, any name reaches the handler
    strict = attrs.evolve(rsa_config, strict_sni=True)
    with pytest.raises(PluginError, match=r"is for other\.example, and --strict-sni"):
        check(strict, route)
    check(strict, ("sni-route", "LocalHost=127.0.0.1:1"))  # the certificate's name


def test_an_ipv6_upstream() -> None:
    proxy = make_handler({"upstream": "[::1]:8080"})
    assert str(proxy.default) == "[::1]:8080"  # type: ignore[attr-defined]


async def test_a_flowing_download_outlives_the_idle_timeout_and_a_stall_ends_abortively(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client says nothing while the upstream sends a chunk every 0.1 s, for three idle
    timeouts: traffic either way keeps the tunnel open (HAProxy's `timeout tunnel`). Then the
    upstream stalls without closing: the end is a fatal alert, never a close_notify that would
    make the cut-short download look whole."""
    caplog.set_level(logging.INFO, logger="trio_tls")
    chunks = 15

    async def trickle_then_stall(stream: trio.SocketStream) -> None:
        for _ in range(chunks):
            await stream.send_all(b"x" * 1000)
            await trio.sleep(0.1)
        await trio.sleep_forever()

    async with upstream(trickle_then_stall) as upstream_port:
        port = await proxy_to(
            server_nursery, rsa_config, f"upstream=127.0.0.1:{upstream_port}", idle_timeout=0.5
        )
        client = await connect(ca, port)
        received = bytearray()
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError) as raised:
            while data := await client.receive_some(65536):
                received += data
        await client.transport_stream.aclose()
    assert len(received) == chunks * 1000
    assert "INTERNAL_ERROR" in str(raised.value.__cause__).upper()
    lines = await logged(caplog, "aborted:")
    assert any("aborted: idle timeout (no data either way for 0.5 s)" in line for line in lines)


async def test_a_client_certificate_without_a_readable_name_is_passed_on_as_verified(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    tmp_path: pathlib.Path,
) -> None:
    """A verified client whose subject cryptography cannot decode (a T61String of Latin-1
    bytes, as `openssl req` writes CN=café) is relayed, its SSL TLV saying "verified" with an
    empty CN: the name is not readable, the certificate is good."""
    headers: list[bytes] = []
    recorded = trio.Event()

    async def record(stream: trio.SocketStream) -> None:
        headers.append(await read_to_eof(stream))
        recorded.set()

    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    async with upstream(record) as upstream_port:
        port = await proxy_to(
            server_nursery, config, f"upstream=127.0.0.1:{upstream_port}", "proxy-protocol=v2"
        )
        context = client_context(ca)
        context.load_cert_chain(*T61_V3.write(tmp_path, "cafe"))
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        client = trio.SSLStream(tcp, context, server_hostname="localhost")
        await client.send_all(b"payload")
        await client.aclose()
        with trio.fail_after(5):
            await recorded.wait()
    parsed = parse_header(headers[0], [2])
    assert parsed is not None
    header, size = parsed
    assert headers[0][size:] == b"payload"
    ssl = dict(header.tlvs)[PP2_TYPE_SSL]
    assert ssl[:5] == bytes([PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, 0, 0, VERIFIED])
    assert bytes([PP2_SUBTYPE_SSL_CN, 0, 0]) in ssl
