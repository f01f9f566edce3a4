"""Nothing one connection does can end the server: an exception injected into each step of a
connection's life, on real loopback sockets, ends that connection only. It is logged once, with
the client's address, and the next client is served."""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import Callable
from typing import Any

import h11
import pytest
import trio
import trustme
from trio_tls_handlers import hello

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.events import Observation, Observer
from trio_tls.ops.plugins import load_handler
from trio_tls.server import lifecycle
from trio_tls.server.proxy_protocol import encode_v1
from trio_tls.server.stream import TLSStream

from .openssl_peer import client_context
from .test_server import http_get, start


class Injected(Exception):
    """The fault a test plants in one step."""


def failing_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, except that its first call raises Injected."""
    fired: list[bool] = []

    def fire() -> None:
        if not fired:
            fired.append(True)
            raise Injected("injected into the first connection")

    if inspect.iscoroutinefunction(original):

        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            fire()
            return await original(*args, **kwargs)

        return async_wrapper

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fire()
        return original(*args, **kwargs)

    return wrapper


def failing_observer() -> Callable[[str], Observer]:
    """A per-connection observer (as --trace makes) whose first observation raises."""
    watch = failing_once(lambda observation: None)

    def for_peer(peer: str) -> Observer:
        def observe(observation: Observation) -> None:
            watch(observation)

        return observe

    return for_peer


# (step, what to patch on which object, serve() options the step needs)
STEPS: list[tuple[str, object, str, dict[str, object]]] = [
    ("reading the first bytes", lifecycle, "_read_first", {}),
    ("the PROXY header", lifecycle, "parse_header", {"proxy_protocol": (1,)}),
    ("the handshake", TLSStream, "do_handshake", {}),
    ("the handshake's debug line", lifecycle, "handshake_line", {}),
    ("the handler", hello, "serve_http", {}),
    ("the close", TLSStream, "aclose", {}),
    ("the log line", lifecycle, "connection_line", {}),
]


async def client(ca: trustme.CA, port: int, proxy: bool) -> bytes:
    """One honest hello request; the body of its answer."""
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    if proxy:
        await tcp.send_all(encode_v1(("192.0.2.7", 40000), ("127.0.0.1", port)))
    stream = trio.SSLStream(tcp, client_context(ca), server_hostname="localhost")
    try:
        return await http_get(stream, h11.Connection(h11.CLIENT))
    finally:
        await trio.aclose_forcefully(stream)


async def survives(
    ca: trustme.CA,
    config: ServerConfig,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    **options: Any,
) -> None:
    """The first client meets the fault (and may fail); the next is served as if nothing
    happened, and the fault is logged once, as an error, with the first client's address."""
    caplog.set_level(logging.DEBUG, logger="trio_tls")
    port = await start(nursery, load_handler("hello"), config, **options)
    proxy = "proxy_protocol" in options
    with trio.fail_after(20):
        # The first client may see its connection cut, or even be served.
        with contextlib.suppress(trio.BrokenResourceError, h11.RemoteProtocolError):
            await client(ca, port, proxy)
        assert await client(ca, port, proxy) == b"Hello from Python TLS!\n"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    # The client's address: the PROXY header's once it is read, the socket's before.
    assert re.search(r"(192\.0\.2\.7:40000|127\.0\.0\.1:\d+)\b", errors[0].getMessage())
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is Injected


@pytest.mark.parametrize(
    ("target", "name", "options"), [s[1:] for s in STEPS], ids=[s[0] for s in STEPS]
)
async def test_a_fault_in_one_step_ends_only_its_connection(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    name: str,
    options: dict[str, object],
) -> None:
    monkeypatch.setattr(target, name, failing_once(getattr(target, name)))
    await survives(ca, rsa_config, server_nursery, caplog, **options)


async def test_a_fault_in_an_observer_ends_only_its_connection(
    ca: trustme.CA,
    rsa_config: ServerConfig,
    server_nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await survives(ca, rsa_config, server_nursery, caplog, connection_observer=failing_observer())
