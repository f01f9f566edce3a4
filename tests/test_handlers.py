"""The built-in hello and echo handlers, loaded through their entry points, over memory streams."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import h11
import pytest
import trio
import trio.testing
from trio_tls_handlers import echo, hello

from trio_tls.ops import plugins
from trio_tls.ops.plugins import PluginError

BODY = b"Hello from Python TLS!\n"


@asynccontextmanager
async def running(
    name: str, options: Mapping[str, str] | None = None
) -> AsyncIterator[trio.abc.HalfCloseableStream]:
    """Run the named handler on one end of a stream pair and yield the client end.

    Like the server, close the server end once the handler returns. Leaving the block closes the
    client end and waits for the handler, so a handler that does not stop at EOF fails the test
    by timeout.
    """
    handler = plugins.load_handler(name, options)
    client, server = trio.testing.memory_stream_pair()

    async def serve() -> None:
        try:
            await handler(server)
        finally:
            await server.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield client
            # The client leaves; the handler must take that as its cue to return.
            await client.aclose()


async def read_to_eof(stream: trio.abc.Stream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


async def get_response(
    stream: trio.abc.Stream, client: h11.Connection
) -> tuple[h11.Response, bytes, bytes]:
    """Read one response with h11; returns it, its body, and the raw bytes it arrived in."""
    raw = bytearray()
    response: h11.Response | None = None
    body = bytearray()
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            chunk = await stream.receive_some(65536)
            raw += chunk
            client.receive_data(bytes(chunk))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, bytes(body), bytes(raw)
        else:
            raise AssertionError(f"unexpected event {event!r}")


def request(client: h11.Connection, method: str = "GET", target: str = "/") -> bytes:
    events: list[h11.Event] = [
        h11.Request(method=method, target=target, headers=[("Host", "localhost")]),
        h11.EndOfMessage(),
    ]
    return b"".join(client.send(event) or b"" for event in events)


def header(response: h11.Response, name: bytes) -> bytes | None:
    values = [value for key, value in response.headers if key == name]
    return values[0] if values else None


async def test_hello_get() -> None:
    async with running("hello") as stream:
        client = h11.Connection(h11.CLIENT)
        await stream.send_all(request(client))
        response, body, raw = await get_response(stream, client)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert raw.endswith(b"\r\n\r\n" + BODY)
        assert response.status_code == 200
        assert body == BODY
        assert header(response, b"content-type") == b"text/plain; charset=utf-8"
        assert header(response, b"content-length") == b"23"
        await stream.send_eof()
        assert await read_to_eof(stream) == b""


async def test_hello_keep_alive_three_requests_one_split_byte_by_byte() -> None:
    async with running("hello") as stream:
        client = h11.Connection(h11.CLIENT)
        for index in range(3):
            data = request(client, target=f"/{index}")
            if index == 1:
                for byte in data:
                    await stream.send_all(bytes([byte]))
                    await trio.testing.wait_all_tasks_blocked()
            else:
                await stream.send_all(data)
            response, body, _ = await get_response(stream, client)
            assert (response.status_code, body) == (200, BODY)
            client.start_next_cycle()
        await stream.send_eof()
        assert await read_to_eof(stream) == b""


async def test_hello_pipelined_requests_and_request_body() -> None:
    async with running("hello") as stream:
        post = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345"
            b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        # Both requests in one write; the body of the first must not confuse the second.
        await stream.send_all(post)
        client = h11.Connection(h11.CLIENT)
        # POST is not served (405), but its body is read past all the same.
        for method, status in (("POST", 405), ("GET", 200)):
            client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            client.send(h11.EndOfMessage())
            response, _, _ = await get_response(stream, client)
            assert response.status_code == status
            client.start_next_cycle()


async def test_hello_head_has_length_but_no_body() -> None:
    async with running("hello") as stream:
        client = h11.Connection(h11.CLIENT)
        await stream.send_all(request(client, method="HEAD"))
        response, body, raw = await get_response(stream, client)
        assert response.status_code == 200
        assert header(response, b"content-length") == b"23"
        assert body == b""
        assert raw.endswith(b"\r\n\r\n")
        await stream.send_eof()
        assert await read_to_eof(stream) == b""


async def test_hello_connection_close_ends_after_response() -> None:
    async with running("hello") as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await read_to_eof(stream)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert raw.endswith(BODY)


async def test_hello_http10_client() -> None:
    async with running("hello") as stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        raw = await read_to_eof(stream)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        assert raw.endswith(BODY)


async def test_hello_garbage_gets_400_and_close() -> None:
    async with running("hello") as stream:
        await stream.send_all(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
        raw = await read_to_eof(stream)
        assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"\r\nconnection: close\r\n" in raw.lower()


async def test_hello_oversized_header_is_refused() -> None:
    async with running("hello") as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        raw = await read_to_eof(stream)
        assert raw.startswith(b"HTTP/1.1 431 ")


async def test_hello_eof_mid_request_sends_nothing() -> None:
    async with running("hello") as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHo")
        await stream.send_eof()
        assert await read_to_eof(stream) == b""


async def test_hello_body_option() -> None:
    async with running("hello", {"body": "héllo"}) as stream:
        client = h11.Connection(h11.CLIENT)
        await stream.send_all(request(client))
        response, body, _ = await get_response(stream, client)
        assert body == "héllo".encode()
        assert header(response, b"content-length") == str(len(body)).encode()


@pytest.mark.parametrize("method", ["CONNECT", "POST", "PUT", "DELETE", "OPTIONS", "BREW"])
async def test_hello_other_methods_get_405_and_keep_alive(method: str) -> None:
    async with running("hello") as stream:
        client = h11.Connection(h11.CLIENT)
        target = "localhost:443" if method == "CONNECT" else "/"
        await stream.send_all(request(client, method, target))
        response, body, _ = await get_response(stream, client)
        assert response.status_code == 405
        assert response.reason == b"Method Not Allowed"
        assert header(response, b"allow") == b"GET, HEAD"
        assert body == b"405 Method Not Allowed\n"
        if method == "CONNECT":
            return  # h11 lets no more requests follow a CONNECT
        client.start_next_cycle()
        await stream.send_all(request(client))
        response, body, _ = await get_response(stream, client)
        assert (response.status_code, body) == (200, BODY)


async def test_hello_serves_at_most_max_requests_on_a_connection() -> None:
    async with running("hello", {"max-requests": "3"}) as stream:
        client = h11.Connection(h11.CLIENT)
        for number in (1, 2, 3):
            await stream.send_all(request(client))
            response, body, _ = await get_response(stream, client)
            assert body == BODY
            assert (header(response, b"connection") == b"close") == (number == 3)
            if number < 3:
                client.start_next_cycle()
        assert await read_to_eof(stream) == b""


@pytest.mark.parametrize(
    ("whole", "dripped"),
    [
        (b"", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40\r\n\r\n", b"x" * 40),
    ],
    ids=["head", "body"],
)
async def test_a_request_dripped_byte_by_byte_is_cut_at_the_request_timeout(
    whole: bytes,
    dripped: bytes,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One byte a second would never meet an idle timeout; the request timeout counts from the
    first byte, covers a body too, and ends the connection without a response (as nginx)."""
    caplog.set_level("INFO", logger="trio_tls.access")
    async with running("hello", {"request-timeout": "3.5"}) as stream:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:

            async def drip() -> None:
                await stream.send_all(whole)
                for byte in dripped:
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(1)

            nursery.start_soon(drip)
            received = await read_to_eof(stream)
            nursery.cancel_scope.cancel()
        if whole:  # the 405 went out once the head was in; the body never came
            assert received.startswith(b"HTTP/1.1 405 ")
        else:
            assert received == b""
        assert trio.current_time() - started == pytest.approx(3.5)
    assert caplog.messages[-1] == '- "-" 408 0'


async def test_the_request_timeout_starts_with_each_request_not_with_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running("hello", {"request-timeout": "2"}) as stream:
        client = h11.Connection(h11.CLIENT)
        for _ in range(3):
            await trio.sleep(2.5)  # idle between requests: the idle timeout's business
            await stream.send_all(request(client))
            response, body, _ = await get_response(stream, client)
            assert (response.status_code, body) == (200, BODY)
            client.start_next_cycle()


@pytest.mark.parametrize("value", ["0", "-1", "x", "", "inf", "nan"])
def test_hello_request_timeout_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ValueError, match="request-timeout must be a positive number of seconds"):
        hello.make_handler({"request-timeout": value})


@pytest.mark.parametrize("value", ["0", "-1", "x", ""])
def test_hello_max_requests_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ValueError, match="max-requests must be a whole number"):
        hello.make_handler({"max-requests": value})


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(
        ValueError,
        match=r"^hello: unknown option 'colour' \(options: body, max-requests, request-timeout\)$",
    ):
        hello.make_handler({"colour": "red"})
    with pytest.raises(ValueError, match=r"^echo: unknown option 'x' \(echo takes no options\)$"):
        echo.make_handler({"x": "1"})
    with pytest.raises(PluginError, match="hello: unknown option 'colour'"):
        plugins.load_handler("hello", {"colour": "red"})


async def test_echo_one_mebibyte() -> None:
    payload = os.urandom(1 << 20)
    async with running("echo") as stream:
        received = bytearray()

        async def send() -> None:
            for start in range(0, len(payload), 10_000):
                await stream.send_all(payload[start : start + 10_000])
            await stream.send_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            received += await read_to_eof(stream)
        assert received == payload
