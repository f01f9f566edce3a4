"""trio-tls: a TLS 1.2 server whose protocol is written in Python, on trio.

`ServerConnection` is the sans-IO engine; `TLSStream` adapts it to trio; `serve()` runs a
handler on every accepted connection. A handler plugin needs only `Handler` and `TLSStream`.
`inspect_client_hello()` decodes and fingerprints (JA3, JA4) any ClientHello's bytes.

The package's layers, each using only those before it: engine/ (sans-IO TLS), observe/
(read-only views of a handshake), server/ (the trio runtime), ops/ (running it), cli/ (the
`trio-tls` command). The names below are imported when first used (PEP 562), so that
`import trio_tls.engine.connection` loads the engine alone, without trio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# Each public name, and the module that defines it.
_WHERE = {
    "ClientAuth": ".engine.clientauth",
    "CertifiedKey": ".engine.config",
    "ServerConfig": ".engine.config",
    "ServerConnection": ".engine.connection",
    "NEED_DATA": ".engine.events",
    "AlertReceived": ".engine.events",
    "ApplicationData": ".engine.events",
    "ConnectionClosed": ".engine.events",
    "ConnectionInfo": ".engine.events",
    "HandshakeComplete": ".engine.events",
    "LocalProtocolError": ".engine.wire.errors",
    "RemoteProtocolError": ".engine.wire.errors",
    "TLSError": ".engine.wire.errors",
    "ClientHelloReport": ".observe.clienthello",
    "inspect_client_hello": ".observe.clienthello",
    "Handler": ".server.handler",
    "serve": ".server.listen",
    "TLSStream": ".server.stream",
}

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


def __getattr__(name: str) -> object:
    """Import a public name's module on first use, then keep the name here."""
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, whether imported yet or not, and the module's own dunders."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
