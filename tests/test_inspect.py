"""The `inspect` handler: its page and JSON over memory streams with a handshake record made by
hand, then end to end behind `trio-tls serve` with Python's ssl as the client (a full handshake,
then a resumed one)."""

from __future__ import annotations

import json
import pathlib
import re
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h11
import pytest
import trio
import trio.testing
from trio_tls_handlers import inspect

from trio_tls.engine.events import (
    AlertObserved,
    ConnectionInfo,
    Decision,
    KeyDerived,
    MessageObserved,
    Observation,
    RecordObserved,
)
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.extensions import ExtendedMasterSecret, UnknownExtension
from trio_tls.engine.wire.messages import (
    ChangeCipherSpec,
    ClientHello,
    ClientKeyExchange,
    Finished,
    ServerHello,
    encode_handshake,
)
from trio_tls.ops import plugins
from trio_tls.ops.plugins import PluginError
from trio_tls.server.handler import HandlerTraits

from .cli_server import running_server
from .test_handlers import get_response, request

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "clienthellos"
CHROMIUM = (FIXTURES / "chromium.bin").read_bytes()
SUITE = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
INFO = ConnectionInfo(
    version="TLSv1.2",
    cipher_suite=SUITE,
    sni="localhost",
    alpn="http/1.1",
    resumed=False,
    extended_master_secret=True,
    group="x25519",
    signature_scheme="ecdsa_secp256r1_sha256",
    peer="127.0.0.1:50000",
)
REASON = "the first <b>of the server's</b> suites"  # markup, to show that the page escapes it


def chromium_hello() -> ClientHello:
    return ClientHello.decode(Reader(CHROMIUM[9:]))


def handshake_record() -> list[tuple[float, Observation]]:
    """What serve() would record for a Chromium full handshake, in the engine's order."""
    server_hello = ServerHello(0x0303, bytes(32), b"", 0xC02B)
    return [
        (0.0001, MessageObserved("received", chromium_hello(), CHROMIUM[5:])),
        (0.0002, Decision("cipher suite", SUITE, REASON, "RFC 5246 §7.4.1.3")),
        (0.0003, MessageObserved("sent", server_hello, b"\x02" + bytes(73))),
        (0.0050, MessageObserved("received", ClientKeyExchange(bytes(32)), bytes(37))),
        (0.0051, KeyDerived("extended master secret, over the session hash", "RFC 7627 §4", None)),
        (0.0060, MessageObserved("received", Finished(bytes(12)), bytes(16))),
        (0.0061, MessageObserved("sent", Finished(bytes(12)), bytes(16))),
        (0.0070, RecordObserved("received", 80, 1, bytes(12), bytes(8), bytes(13), 16)),
        (0.0080, AlertObserved("sent", 1, 0, "")),
    ]


class RecordedStream(trio.abc.Stream):
    """One end of a memory stream pair, carrying what a TLSStream gives an inspect handler."""

    def __init__(
        self,
        inner: trio.abc.Stream,
        info: ConnectionInfo | None,
        record: list[tuple[float, Observation]] | None,
    ) -> None:
        self.inner = inner
        self.info = info
        self.handshake_record = record

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def running(
    record: list[tuple[float, Observation]] | None = None, info: ConnectionInfo | None = INFO
) -> AsyncIterator[trio.abc.Stream]:
    handler = plugins.load_handler("inspect")
    client, server = trio.testing.memory_stream_pair()

    async def serve() -> None:
        try:
            await handler(RecordedStream(server, info, record))
        finally:
            await server.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield client
            await client.aclose()


async def fetch(
    stream: trio.abc.Stream, target: str, method: str = "GET"
) -> tuple[h11.Response, bytes]:
    client = h11.Connection(h11.CLIENT)
    await stream.send_all(request(client, method, target))
    response, body, _ = await get_response(stream, client)
    return response, body


def header(response: h11.Response, name: bytes) -> str:
    return dict(response.headers)[name].decode()


async def test_the_page_names_the_hello_grease_and_the_decisions() -> None:
    async with running(handshake_record()) as stream:
        response, body = await fetch(stream, "/")
    page = body.decode()
    assert response.status_code == 200
    assert header(response, b"content-type") == "text/html; charset=utf-8"
    assert header(response, b"content-security-policy").startswith("default-src 'none'")
    assert header(response, b"cache-control") == "no-store"
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    # Self-contained: nothing is loaded from anywhere.
    assert not re.search(r"<(script|link|img|iframe)|src=|url\(|@import", page)
    # Chromium's suites in its order, GREASE marked, and the one chosen.
    names = re.findall(r"<td>(TLS_[A-Z0-9_]+)", page)
    assert names[:4] == [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        SUITE,
    ]
    assert "<code>0x1a1a</code></td><td>GREASE<span class='badge grease'>GREASE</span>" in page
    assert f"{SUITE}<span class='badge chosen'>chosen</span>" in page
    for text in ("X25519MLKEM768", "encrypted_client_hello", "1216-byte key", "localhost"):
        assert text in page
    # The ladder, the reasons (escaped), the fingerprints.
    assert page.index("<b>ClientHello</b>") < page.index("<b>ServerHello</b>")
    assert "the first &lt;b&gt;of the server&#x27;s&lt;/b&gt; suites" in page
    assert "<cite>RFC 5246 §7.4.1.3</cite>" in page
    assert "t13d1517h2_8daaf6152771_cb7bf5808d99" in page
    assert "a4f05eb77e9218c3fe0c3c33f62d48d4" in page
    assert "full handshake in 6.1 ms" in page


async def test_json_has_the_same_report() -> None:
    async with running(handshake_record()) as stream:
        response, body = await fetch(stream, "/json?pretty")
    assert header(response, b"content-type") == "application/json"
    report = json.loads(body)
    hello = report["client_hello"]
    assert hello["fingerprints"]["ja4"] == "t13d1517h2_8daaf6152771_cb7bf5808d99"
    assert hello["fingerprints"]["ja3_md5"] == "a4f05eb77e9218c3fe0c3c33f62d48d4"
    grease = {"value": 0x1A1A, "hex": "0x1a1a", "name": "GREASE", "grease": True}
    assert hello["cipher_suites"][0] == grease
    assert [e["type"]["name"] for e in hello["extensions"]][:3] == [
        "GREASE",
        "supported_versions",
        "ec_point_formats",
    ]
    assert report["negotiated"]["cipher_suite"] == SUITE
    assert report["negotiated"]["resumed"] is False
    assert report["decisions"] == [
        {
            "topic": "cipher suite",
            "choice": SUITE,
            "reason": REASON,
            "rfc": "RFC 5246 §7.4.1.3",
        }
    ]
    ladder = [(step["kind"], step["direction"], step["title"]) for step in report["ladder"]]
    assert ladder == [
        ("message", "received", "ClientHello"),
        ("decision", None, f"cipher suite: {SUITE}"),
        ("message", "sent", "ServerHello"),
        ("message", "received", "ClientKeyExchange"),
        ("key", None, "extended master secret, over the session hash"),
        ("message", "received", "Finished"),
        ("message", "sent", "Finished"),
        ("record", None, "first application data record received"),
        ("alert", "sent", "warning alert close_notify"),
    ]
    assert report["ladder"][0]["ms"] == 0.1
    assert report["ladder"][0]["length"] == len(CHROMIUM) - 5
    assert report["ladder"][0]["rfc"] == "RFC 8446 §4.1.2"  # Chromium's hello offers TLS 1.3
    assert report["handshake_ms"] == 6.1


async def test_without_a_record_the_page_still_answers() -> None:
    async with running(None, None) as stream:
        response, body = await fetch(stream, "/")
        assert response.status_code == 200
        assert "did not record the handshake" in body.decode()
        _, body = await fetch(stream, "/json")
    assert json.loads(body) == {
        "negotiated": None,
        "client_hello": None,
        "decisions": [],
        "ladder": [],
        "handshake_ms": None,
        "key_exchange": None,
    }


async def test_head_other_paths_and_methods() -> None:
    async with running(handshake_record()) as stream:
        response, body = await fetch(stream, "/", "HEAD")
        assert (response.status_code, body) == (200, b"")
        response, body = await fetch(stream, "/favicon.ico")
        assert response.status_code == 404
        response, _ = await fetch(stream, "/json", "POST")
        assert response.status_code == 405


def crowded_record() -> list[tuple[float, Observation]]:
    """A hostile hello's record: 30,000 suites and 16,001 extensions, far past the page's cap."""
    hello = ClientHello(
        0x0303,
        bytes(32),
        b"",
        tuple(range(0x1000, 0x1000 + 30000)),
        b"\x00",
        (ExtendedMasterSecret(), *(UnknownExtension(0x4000 + i, b"") for i in range(16000))),
    )
    message = encode_handshake(hello)
    return [(0.0001, MessageObserved("received", ClientHello.decode(Reader(message[4:])), message))]


async def test_the_page_caps_the_rows_it_shows_and_says_so() -> None:
    async with running(crowded_record()) as stream:
        _, body = await fetch(stream, "/")
        _, json_body = await fetch(stream, "/json")
    page = body.decode()
    assert page.count("<tr>") == 2 * (inspect.MAX_ENTRIES + 1)  # two tables, with headings
    assert "<h3>Cipher suites: 30,000, in your order</h3>" in page
    assert "<h3>Extensions: 16,001, in your order</h3>" in page
    assert page.count(f"Only the first {inspect.MAX_ENTRIES} are shown here.") == 2
    assert "The first 4,096 of the 124,049 bytes, in hex" in page
    assert len(body) < 100_000
    hello = json.loads(json_body)["client_hello"]
    omitted = hello["omitted"]
    assert (omitted["cipher_suites"], omitted["extensions"]) == (30000 - 128, 16001 - 128)
    assert len(hello["fingerprints"]["ja3"]) == 16 * 128  # its numbers cut, counted in omitted
    assert sorted(omitted) == ["cipher_suites", "extensions", "ja3", "ja4_r"]
    assert len(hello["cipher_suites"]) == len(hello["extensions"]) == inspect.MAX_ENTRIES


async def test_the_report_is_built_and_rendered_once_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def counted(name: str) -> Any:
        original = getattr(inspect, name)

        def call(*args: Any) -> Any:
            calls.append(name)
            return original(*args)

        return call

    monkeypatch.setattr(inspect, "build_report", counted("build_report"))
    monkeypatch.setattr(inspect, "render", counted("render"))
    async with running(handshake_record()) as stream:
        pages = [(await fetch(stream, target))[1] for target in ("/", "/json", "/", "/json")]
    assert pages[0] == pages[2] and pages[1] == pages[3]
    assert calls == ["build_report", "render"]


def test_handler_declares_what_it_needs() -> None:
    handler = plugins.load_handler("inspect")
    assert HandlerTraits.of(handler) == HandlerTraits((b"http/1.1",), records_handshake=True)
    assert inspect.make_handler({"max-requests": "2"}) == inspect.Inspect(2)
    with pytest.raises(PluginError, match=r"inspect: unknown option 'x' \(options: max-requests\)"):
        plugins.load_handler("inspect", {"x": "1"})
    with pytest.raises(ValueError, match="inspect: max-requests must be a whole number"):
        inspect.make_handler({"max-requests": "0"})


# -- end to end ---------------------------------------------------------------------------------


def get_json(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[Any, ssl.SSLSession | None]:
    """GET /json over a new connection (resuming `session` if given): the report, the session."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(b"GET /json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = bytearray()
        while chunk := tls.recv(65536):
            data += chunk
        new_session = tls.session
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    return json.loads(body), new_session


def test_python_ssl_full_then_resumed(tmp_path: pathlib.Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with running_server(tmp_path, "--handler", "inspect") as server:
        first, session = get_json(server.port, context)
        second, _ = get_json(server.port, context, session)
        server.stop()
    assert first["negotiated"]["resumed"] is False
    hello = first["client_hello"]
    assert hello["server_name"] == "localhost"
    assert hello["fingerprints"]["ja4"].startswith("t12d")
    messages = [step for step in first["ladder"] if step["kind"] == "message"]
    titles = [(step["direction"], step["title"]) for step in messages]
    assert titles[:8] == [
        ("received", "ClientHello"),
        ("sent", "ServerHello"),
        ("sent", "Certificate"),
        ("sent", "ServerKeyExchange"),
        ("sent", "ServerHelloDone"),
        ("received", "ClientKeyExchange"),
        ("received", "ChangeCipherSpec"),  # RFC 5246 §7.3's [ChangeCipherSpec], drawn too
        ("received", "Finished"),
    ]
    assert second["negotiated"]["resumed"] is True
    resumed = [step["title"] for step in second["ladder"] if step["kind"] == "message"]
    assert "Certificate" not in resumed and "ClientKeyExchange" not in resumed
    topics = {decision["topic"] for decision in second["decisions"]}
    assert "resumption" in topics


async def test_a_one_byte_message_is_one_byte() -> None:
    """ChangeCipherSpec is a single byte: the ladder says "1 byte", not "1 bytes"."""
    change = (0.0055, MessageObserved("received", ChangeCipherSpec(), b"\x01"))
    async with running([*handshake_record(), change]) as stream:
        _, body = await fetch(stream, "/")
    page = body.decode()
    assert "<b>ChangeCipherSpec</b> <small>1 byte</small>" in page
    assert "1 bytes" not in page
