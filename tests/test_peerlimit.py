"""--max-connections-per-ip: the count per client address, live behind PROXY headers, and the
start-up warning for a configuration that would throttle a load balancer's traffic as one."""

from __future__ import annotations

import argparse
import logging

import pytest
import trio
import trustme

from trio_tls.cli.serve import _warn_about_per_ip_limit
from trio_tls.engine.config import ServerConfig
from trio_tls.server.addresses import ConnectionAddresses
from trio_tls.server.peerlimit import (
    PerAddressLimit,
    TooManyConnections,
    client_key,
    default_limit,
    risk_warning,
)
from trio_tls.server.proxy_protocol import encode_v1
from trio_tls.server.stream import TLSStream

from .openssl_peer import client_context
from .test_proxy import logged
from .test_server import start

ADDRESSED = ("198.51.100.1", 443)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same subscriber's /64
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", None),
        ("127.8.9.10", None),
        ("::1", None),
        ("::ffff:127.0.0.1", None),
        ("/run/trio-tls.sock", None),
    ],
)
def test_what_a_client_counts_under(host: str, key: str | None) -> None:
    assert client_key(host) == key


def test_the_default_is_a_tenth_of_the_connections_and_room_for_a_few_browsers() -> None:
    assert default_limit(1000) == 100
    assert default_limit(10_000) == 1000
    assert default_limit(4) == default_limit(100) == 16


def addresses(host: str) -> ConnectionAddresses:
    return ConnectionAddresses((host, 40000), ADDRESSED)


def test_the_count_refuses_at_the_cap_and_frees_with_each_close() -> None:
    limit = PerAddressLimit(2)
    keys = [limit.take(addresses("1.2.3.4")) for _ in range(2)]
    refusal = r"^2 connections already open from 1\.2\.3\.4 \(--max-connections-per-ip 2\)$"
    with pytest.raises(TooManyConnections, match=refusal):
        limit.take(addresses("1.2.3.4"))
    assert limit.take(addresses("1.2.3.5")) == "1.2.3.5"
    assert limit.take(addresses("127.0.0.1")) is None  # loopback: never counted
    limit.give_back(keys[0])
    assert limit.take(addresses("1.2.3.4")) == "1.2.3.4"
    private = PerAddressLimit(1)
    private.take(addresses("10.1.2.3"))
    with pytest.raises(
        TooManyConnections, match=r"; behind a load balancer\? see --proxy-protocol$"
    ):
        private.take(addresses("10.1.2.3"))
    unlimited = PerAddressLimit(0)
    assert [unlimited.take(addresses("1.2.3.4")) for _ in range(3)] == [None] * 3


@pytest.mark.parametrize(
    ("hosts", "proxy_protocol", "limit", "warned"),
    [
        (["10.0.0.11"], False, 100, True),
        (["127.0.0.1", "fd00::11"], False, 100, True),
        (["100.64.0.5"], False, 100, True),  # carrier-grade NAT space
        (["10.0.0.11"], True, 100, False),  # the PROXY header names each client
        (["10.0.0.11"], False, 0, False),  # no limit
        (["127.0.0.1", "::1"], False, 100, False),  # loopback clients are not counted
        (["0.0.0.0", "::"], False, 100, False),
        (["1.2.3.1"], False, 100, False),
        (["localhost"], False, 100, False),
    ],
)
def test_a_start_up_warning_where_a_balancer_is_likely(
    hosts: list[str], proxy_protocol: bool, limit: int, warned: bool
) -> None:
    warning = risk_warning(hosts, proxy_protocol, limit)
    assert (warning is not None) == warned
    if warning is not None:
        assert warning.startswith(f"--max-connections-per-ip {limit} on ")
        assert "--proxy-protocol" in warning and "--max-connections-per-ip 0" in warning


async def hold_open(stream: TLSStream) -> None:
    await stream.send_all(b"hi")
    await stream.receive_some()  # until the client closes


async def test_over_the_limit_a_connection_is_closed_at_once_and_logged(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Behind PROXY headers the client they name is counted: two connections from one address
    are served, the third is closed before its handshake, another address is served, and a
    closed connection makes room again."""
    caplog.set_level(logging.INFO, logger="trio_tls")
    port = await start(
        server_nursery, hold_open, rsa_config, proxy_protocol=(1,), max_connections_per_ip=2
    )

    async def connect(host: str) -> trio.SSLStream[trio.SocketStream]:
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        await tcp.send_all(encode_v1((host, 40000), ADDRESSED))
        client = trio.SSLStream(tcp, client_context(ca), server_hostname="localhost")
        try:
            assert await client.receive_some() == b"hi"
        except trio.BrokenResourceError:
            await tcp.aclose()
            raise
        return client

    with trio.fail_after(5):
        held = [await connect("1.2.3.4") for _ in range(2)]
        with pytest.raises(trio.BrokenResourceError):
            await connect("1.2.3.4")
        other = await connect("1.2.3.5")
        await held[0].aclose()
        await logged(caplog, "1.2.3.4:40000 sni=localhost")
        held[0] = await connect("1.2.3.4")
    lines = await logged(caplog, "refused: 2 connections already open from 1.2.3.4")
    refused = [line for line in lines if "refused" in line]
    assert len(refused) == 1, lines
    assert refused[0].endswith(
        ": refused: 2 connections already open from 1.2.3.4 (--max-connections-per-ip 2)"
    ), refused
    for client in (*held, other):
        await client.aclose()


async def test_loopback_clients_are_not_counted(
    ca: trustme.CA, rsa_config: ServerConfig, server_nursery: trio.Nursery
) -> None:
    port = await start(server_nursery, hold_open, rsa_config, max_connections_per_ip=1)
    clients = []
    with trio.fail_after(5):
        for _ in range(3):
            tcp = await trio.open_tcp_stream("127.0.0.1", port)
            clients.append(trio.SSLStream(tcp, client_context(ca), server_hostname="localhost"))
            assert await clients[-1].receive_some() == b"hi"
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize(("per_ip", "warned"), [(None, True), (0, False)])
def test_serve_warns_at_start_up_with_the_limit_it_will_apply(
    caplog: pytest.LogCaptureFixture, per_ip: int | None, warned: bool
) -> None:
    args = argparse.Namespace(
        max_connections=1000,
        max_connections_per_ip=per_ip,
        hosts=["10.0.0.11"],
        proxy_protocol=None,
    )
    _warn_about_per_ip_limit(args, [])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = ["--max-connections-per-ip 100 on 10.0.0.11, a private address, without"]
    assert [m[: len(expected[0])] for m in messages] == (expected if warned else [])
