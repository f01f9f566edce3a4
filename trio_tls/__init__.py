"""trio-tls: a TLS 1.2 server whose protocol is written in Python, on trio.

`ServerConnection` is the sans-IO engine; `TLSStream` adapts it to trio; `serve()` runs a
handler on every accepted connection. A handler plugin needs only `Handler` and `TLSStream`.
`inspect_client_hello()` decodes and fingerprints (JA3, JA4) any ClientHello's bytes.
"""

from .engine.clientauth import ClientAuth
from .engine.config import CertifiedKey, ServerConfig
from .engine.connection import ServerConnection
from .engine.events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    HandshakeComplete,
)
from .engine.wire.errors import LocalProtocolError, RemoteProtocolError, TLSError
from .observe.clienthello import ClientHelloReport, inspect_client_hello
from .server.handler import Handler
from .server.listen import serve
from .server.stream import TLSStream

__all__ = [
    "NEED_DATA",
    "AlertReceived",
    "ApplicationData",
    "CertifiedKey",
    "ClientAuth",
    "ClientHelloReport",
    "ConnectionClosed",
    "ConnectionInfo",
    "Handler",
    "HandshakeComplete",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerConnection",
    "TLSError",
    "TLSStream",
    "inspect_client_hello",
    "serve",
]
