"""The two ends of the connection a task serves: the client's address and the one it reached.

serve() sets them in each connection's task before the handshake: from the socket, or from the
PROXY header when a load balancer stands in front (proxy_protocol.py), so that the log line,
`stream.info.peer` and what the proxy handler passes upstream all name the real client. They
live in a context variable rather than in `stream.info` because the TLS engine never sees
addresses: they belong to the task serving the connection, which is where a handler runs.
"""

from __future__ import annotations

from contextvars import ContextVar

import attrs

Address = tuple[str, int]


@attrs.frozen
class ConnectionAddresses:
    """`source` is the client; `destination` the address it connected to. `via` is the load
    balancer's own address when a PROXY header named the other two, else None."""

    source: Address
    destination: Address
    via: Address | None = None


CURRENT: ContextVar[ConnectionAddresses | None] = ContextVar("connection_addresses", default=None)


def connection_addresses() -> ConnectionAddresses | None:
    """The addresses of the connection this task serves; None outside serve()."""
    return CURRENT.get()


def format_address(address: Address) -> str:
    """ "host:port", or "[host]:port" for IPv6, as log lines and `stream.info.peer` show it."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
