"""The `proxy` handler: terminate TLS and relay the plain bytes to a TCP upstream, both ways.

This is what stunnel, hitch and ghostunnel do in front of a service that speaks plain TCP:

    trio-tls serve --handler proxy --handler-opt upstream=127.0.0.1:8080

Options (`--handler-opt KEY=VALUE`):
- `upstream=HOST:PORT`: where connections go unless a route says otherwise.
- `sni-route=HOST_NAME=HOST:PORT` (repeatable): connections whose SNI is HOST_NAME go there.
- `alpn-route=PROTOCOL=HOST:PORT` (repeatable): connections that negotiated PROTOCOL in ALPN
  go there, unless an SNI route took them. With no match and no `upstream`, the connection is
  refused. A route that could never match is refused at start (Proxy.check_config).
- `proxy-protocol=v1|v2`: first send the upstream a PROXY header (proxy_protocol.py) naming the
  client's real address, and the address it connected to. v2 adds TLVs: PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY (the SNI host name) and PP2_TYPE_SSL (TLS version, cipher and, when the
  client presented a certificate that the server verified, its subject's common name).
- `connect-timeout=SECONDS` (10).

Closing, as far as TLS 1.2 allows (RFC 5246 §7.2.1 has no half-close):
- The upstream's EOF ends the connection: whatever it sent has been relayed, and the client gets
  close_notify.
- The client's close_notify becomes shutdown(SHUT_WR) to the upstream, so it sees a clean end
  of request. The engine has answered close_notify at once, so nothing more can reach the
  client: what the upstream still says is read and dropped, for at most LINGER seconds, so that
  it sees an orderly close rather than a reset. A protocol where the client half-closes and
  then waits for the answer (`nc -N`-style) cannot work over TLS 1.2, with any proxy.
- Traffic either way keeps the connection alive, as HAProxy's `timeout tunnel`: serve()'s idle
  timeout on the client's receives is lifted, and the relay ends once nothing has moved in
  either direction for that long. A download still flowing is never cut because the client has
  nothing to say. The end is abortive (a fatal alert, as below), since the upstream has not
  ended its stream and whatever the client got may be incomplete; a close_notify would pass a
  cut-short answer for a whole one.
- An upstream that refuses, times out, resets or stops reading for UPSTREAM_WRITE_TIMEOUT
  seconds ends the connection abortively (handler.AbortConnection: a fatal alert, so the client
  never takes a cut-short response for a whole one), logged with the upstream's address. A
  client that disconnects, with or without close_notify, is an ordinary end: no traceback.

Backpressure comes from the shape: each direction reads at most CHUNK bytes and sends them whole
before reading again, so a slow reader on either side stops the other side's reads, TCP's flow
control pushes back to the sender, and memory per connection stays constant.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Literal, NoReturn

import attrs
import trio
from cryptography import x509
from cryptography.x509.oid import NameOID

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.crypto.suites import TLS13_SUITES, suite_by_name
from trio_tls.engine.events import ConnectionInfo
from trio_tls.engine.wire.codec import Reader, Writer
from trio_tls.engine.wire.errors import TLSError
from trio_tls.engine.wire.extensions import ServerName
from trio_tls.server.addresses import connection_addresses, format_address
from trio_tls.server.deadlines import DeadlineStream
from trio_tls.server.handler import AbortConnection, Handler, option_values
from trio_tls.server.proxy_protocol import (
    PP2_TYPE_ALPN,
    PP2_TYPE_AUTHORITY,
    encode_v1,
    encode_v2,
    ssl_tlv,
)
from trio_tls.server.stream import TLSStream

log = logging.getLogger("trio_tls")

CHUNK = 256 * 1024
LINGER = 2.0
UPSTREAM_WRITE_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
OPTIONS = ("upstream", "sni-route", "alpn-route", "proxy-protocol", "connect-timeout")


@attrs.frozen
class Upstream:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, option: str) -> Upstream:
        host, sep, port = text.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not (sep and host and port.isdigit() and 0 < int(port) <= 65535):
            raise ValueError(f"proxy: {option}={text!r} is not HOST:PORT")
        return cls(host, int(port))

    def __str__(self) -> str:
        return format_address((self.host, self.port))


def make_handler(options: Mapping[str, str]) -> Handler:
    unknown = sorted(set(options) - set(OPTIONS))
    if "route" in unknown:
        raise ValueError(
            "proxy: route= is now sni-route=HOST_NAME=HOST:PORT or alpn-route=PROTOCOL=HOST:PORT"
        )
    if unknown:
        raise ValueError(f"proxy: unknown option {unknown[0]!r}; proxy takes {', '.join(OPTIONS)}")
    default = Upstream.parse(options["upstream"], "upstream") if "upstream" in options else None
    routes = Routes(_routes(options, "sni-route", _host_name), _routes(options, "alpn-route", str))
    if default is None and not (routes.sni or routes.alpn):
        raise ValueError("proxy: give upstream=HOST:PORT (or sni-route= or alpn-route=)")
    version = options.get("proxy-protocol")
    if version not in (None, "v1", "v2"):
        raise ValueError(f"proxy: proxy-protocol={version!r}; choose v1 or v2")
    timeout = options.get("connect-timeout", str(DEFAULT_CONNECT_TIMEOUT))
    try:
        connect_timeout = float(timeout)
    except ValueError:
        connect_timeout = math.nan
    if not 0 < connect_timeout < math.inf:
        raise ValueError(f"proxy: connect-timeout={timeout!r} is not a positive number of seconds")
    return Proxy(
        default,
        routes,
        None if version is None else 1 if version == "v1" else 2,
        connect_timeout,
    )


@attrs.frozen
class Routes:
    """Upstreams by SNI host name (lower case, as the engine reports it) and by ALPN protocol
    (exact: RFC 7301 protocol names are byte strings, case and all)."""

    sni: Mapping[str, Upstream]
    alpn: Mapping[str, Upstream]


def _routes(
    options: Mapping[str, str], option: str, normalize: Callable[[str], str]
) -> dict[str, Upstream]:
    """`option=NAME=HOST:PORT` values by NAME; a NAME given twice is refused, since the second
    route could never match (the first takes every connection it would)."""
    routes: dict[str, Upstream] = {}
    for route in option_values(options, option):
        text, sep, target = route.partition("=")
        if not (sep and text):
            raise ValueError(f"proxy: {option}={route!r} is not NAME=HOST:PORT")
        name = normalize(text)
        if name in routes:
            raise ValueError(
                f"proxy: {option}={route!r} could never match: an earlier {option} for "
                f"{name!r} takes those connections; give each name once"
            )
        routes[name] = Upstream.parse(target, f"{option}={text}")
    return routes


def _host_name(text: str) -> str:
    """The name as the engine reports an SNI: only what ServerName accepts can ever arrive."""
    writer = Writer()
    with writer.prefixed(2):
        writer.u8(0)  # host_name
        writer.opaque16(text.encode("utf-8", "replace"))
    try:
        return ServerName.decode(Reader(writer.getvalue())).host_name
    except (TLSError, ValueError):
        raise ValueError(
            f"proxy: sni-route={text!r} could never match: clients send only DNS host names "
            "as SNI (letters, digits, hyphens and dots, no trailing dot; RFC 6066 §3)"
        ) from None


class Proxy:
    def __init__(
        self,
        default: Upstream | None,
        routes: Routes,
        proxy_protocol: Literal[1, 2] | None,
        connect_timeout: float,
    ) -> None:
        self.default = default
        self.routes = routes
        self.proxy_protocol = proxy_protocol
        self.connect_timeout = connect_timeout

    def check_config(self, config: ServerConfig) -> None:
        """At start (plugins.check_handler): refuse a route no connection could take."""
        offered = [protocol.decode("ascii", "replace") for protocol in config.alpn_protocols]
        for protocol, target in self.routes.alpn.items():
            if protocol not in offered:
                raise ValueError(
                    f"proxy: alpn-route={protocol}={target} could never match: the server "
                    f"offers {', '.join(offered) or 'no protocols'} in ALPN; add {protocol} "
                    "to --alpn, or drop the route"
                )
        if config.strict_sni:
            for name, target in self.routes.sni.items():
                if not config.knows_host(name):
                    raise ValueError(
                        f"proxy: sni-route={name}={target} could never match: no certificate "
                        f"is for {name}, and --strict-sni refuses the name in the handshake; "
                        "add a certificate for it, or drop the route"
                    )

    def choose(self, info: ConnectionInfo) -> Upstream | None:
        """SNI first (the client named the host it wants), then ALPN, then the default."""
        if info.sni is not None and info.sni in self.routes.sni:
            return self.routes.sni[info.sni]
        if info.alpn is not None and info.alpn in self.routes.alpn:
            return self.routes.alpn[info.alpn]
        return self.default

    async def __call__(self, stream: TLSStream) -> None:
        upstream = self.choose(stream.info)
        if upstream is None:
            raise AbortConnection(
                f"no route for sni={stream.info.sni or '-'} alpn={stream.info.alpn or '-'}"
            )
        transport = await self._connect(upstream)
        async with transport:
            relay = _Relay(stream, transport, upstream, _take_idle_timeout(stream))
            await relay.run(self._header(stream.info))
        if relay.idle is not None:
            raise AbortConnection(relay.idle)
        if relay.failure is not None:
            raise _failed(upstream, relay.failure)

    async def _connect(self, upstream: Upstream) -> DeadlineStream:
        with trio.move_on_after(self.connect_timeout):
            try:
                socket_stream = await trio.open_tcp_stream(upstream.host, upstream.port)
            except OSError as exc:
                raise _failed(upstream, f"cannot connect: {_why(exc)}") from None
            return DeadlineStream(socket_stream.socket, write_timeout=UPSTREAM_WRITE_TIMEOUT)
        raise _failed(upstream, f"connect timed out after {self.connect_timeout:g} s")

    def _header(self, info: ConnectionInfo) -> bytes:
        if self.proxy_protocol is None:
            return b""
        addresses = connection_addresses()
        if addresses is None:  # outside serve(): nobody knows the client's address
            raise AbortConnection("proxy-protocol needs the connection's addresses from serve()")
        if self.proxy_protocol == 1:
            return encode_v1(addresses.source, addresses.destination)
        tlvs: list[tuple[int, bytes]] = []
        if info.alpn is not None:
            tlvs.append((PP2_TYPE_ALPN, info.alpn.encode()))
        if info.sni is not None:
            tlvs.append((PP2_TYPE_AUTHORITY, info.sni.encode()))
        suite = info.cipher_suite  # a TLS 1.3 suite's OpenSSL name is its IANA name
        if all(suite != known.name for known in TLS13_SUITES):
            suite = suite_by_name(suite).openssl_name
        tlvs.append(ssl_tlv(info.version, suite, _common_name(info.client_certificate)))
        return encode_v2(addresses.source, addresses.destination, tlvs)


def _why(exc: OSError) -> str:
    """The operating system's reason; trio names each address it tried in a group beneath."""
    tried = exc.__cause__
    if isinstance(tried, BaseExceptionGroup):
        reasons = {_reason(e) for e in tried.exceptions if isinstance(e, OSError)}
        return "; ".join(sorted(reasons)) or str(exc)
    return _reason(exc)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _common_name(chain: tuple[x509.Certificate, ...] | None) -> str | None:
    """The subject CN of a verified client certificate ("" when it has none, or has one that
    cryptography cannot decode: the certificate was verified all the same)."""
    if chain is None:
        return None
    try:
        names = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:  # a T61String of Latin-1 bytes, say (clientauth.subject_text)
        return ""
    return str(names[0].value) if names else ""


def _take_idle_timeout(stream: TLSStream) -> float:
    """serve()'s idle timeout on the client's receives, lifted: the relay keeps its own, over
    both directions."""
    transport = stream.transport_stream
    if not isinstance(transport, DeadlineStream):
        return math.inf
    timeout, transport.idle_timeout = transport.idle_timeout, math.inf
    return timeout


def _failed(upstream: Upstream, reason: str) -> AbortConnection:
    log.warning("upstream %s: %s", upstream, reason)
    return AbortConnection(f"upstream {upstream}: {reason}")


class _Relay:
    """Both directions of one proxied connection; `failure` says how the upstream side broke.

    An upstream failure is recorded and cancels the relay rather than being raised from its
    task, so the handler raises one AbortConnection instead of an exception group; the
    client's own stream errors propagate to serve(), which logs them as how the connection
    ended."""

    def __init__(
        self, client: TLSStream, upstream: DeadlineStream, where: Upstream, idle_timeout: float
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.where = where
        self.idle_timeout = idle_timeout
        # Its deadline moves on with each chunk relayed either way; when it passes, the relay ends.
        self._quiet = trio.CancelScope(deadline=trio.current_time() + idle_timeout)
        self.client_closed = trio.Event()
        self.failure: str | None = None
        self.idle: str | None = None  # why the relay ended for want of traffic either way
        self.dropped = 0  # upstream bytes that arrived after the client's close_notify
        self._relay_scope = trio.CancelScope()

    async def run(self, header: bytes) -> None:
        async with trio.open_nursery() as nursery:
            self._relay_scope = nursery.cancel_scope
            if header:
                await self._send_upstream(header)
            nursery.start_soon(self._to_client)
            nursery.start_soon(self._watch_traffic)
            while data := await self.client.receive_some(CHUNK):
                self._traffic()
                await self._send_upstream(data)
            self.client_closed.set()
            try:
                await self.upstream.send_eof()  # shutdown(SHUT_WR)
            except _BROKEN as exc:
                await self._broke(exc)
            nursery.cancel_scope.deadline = trio.current_time() + LINGER
        if self.dropped:
            log.debug("dropped %d bytes from %s after the client closed", self.dropped, self.where)

    async def _send_upstream(self, data: bytes) -> None:
        try:
            await self.upstream.send_all(data)
        except _BROKEN as exc:
            await self._broke(exc)

    async def _to_client(self) -> None:
        while True:
            try:
                data = await self.upstream.receive_some(CHUNK)
            except _BROKEN as exc:
                await self._broke(exc)
            if not data:  # the upstream's EOF: all relayed; serve() then sends close_notify
                self._relay_scope.cancel()
                return
            self._traffic()
            if self.client_closed.is_set():
                self.dropped += len(data)
                continue
            try:
                await self.client.send_all(data)
            except trio.BrokenResourceError:
                # The client's close_notify, just read by the other direction, refuses further
                # sends; any other failure is how the client's side ended.
                with trio.move_on_after(LINGER):
                    await self.client_closed.wait()
                if not self.client_closed.is_set():
                    raise
                self.dropped += len(data)

    def _traffic(self) -> None:
        self._quiet.deadline = trio.current_time() + self.idle_timeout

    async def _watch_traffic(self) -> None:
        """End the relay once nothing has moved either way for the idle timeout."""
        with self._quiet:
            await trio.sleep_forever()
        self.idle = f"idle timeout (no data either way for {self.idle_timeout:g} s)"
        self._relay_scope.cancel()

    async def _broke(self, exc: BaseException) -> NoReturn:
        """Record why the upstream failed and end the relay (this task's sleep is cancelled)."""
        self.failure = str(exc.__cause__ or exc)
        self._relay_scope.cancel()
        await trio.sleep_forever()


_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)
