"""--max-connections-per-ip: how many connections one client address may hold open at once.

Without it, one address can take every slot of --max-connections (slowly, or just by opening
them), and every other client waits in the backlog. With it, filling the server takes at least
`max_connections / limit` addresses. The default is a tenth of --max-connections, and never
fewer than MIN_DEFAULT: a browser opens about six connections to a host, and one address may be
an office or a carrier-grade NAT. (Postfix ties its per-client default to its process limit
the same way; nginx, HAProxy and Apache leave per-address limits to the operator.)

Which address counts: the client's, as the PROXY header names it when --proxy-protocol is on
(a PROXY LOCAL health check is not counted), else the socket's peer. An IPv6 client counts by
its /64, since one subscriber usually holds a whole /64 and could spread over it at will; an
IPv4-mapped IPv6 address counts as the IPv4 address. Loopback clients are this machine (a local
load balancer, a health check) and are never counted, as fail2ban ignores 127.0.0.1/8.

The trap is a load balancer that sends no PROXY header: every client then shares its address,
and the limit throttles all traffic at once. The server cannot see a balancer, so it warns at
start-up where one is likely (a listener on a private address without --proxy-protocol:
`risk_warning`), and a refusal of a private address says what to check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .addresses import ConnectionAddresses

MIN_DEFAULT = 16


def default_limit(max_connections: int) -> int:
    """A tenth of --max-connections, and at least MIN_DEFAULT."""
    return max(MIN_DEFAULT, max_connections // 10)


class TooManyConnections(Exception):
    """A client address already holds its share of connections; `str()` says so."""


class PerAddressLimit:
    """Open connections per client address, capped at `limit` (0: no cap)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"max_connections_per_ip must be 0 (no limit) or more, not {limit}")
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, addresses: ConnectionAddresses | None) -> str | None:
        """Count one more connection from the client; the key to give back (None when it is
        not counted). At the cap, raise TooManyConnections instead."""
        if not self.limit or addresses is None:
            return None
        key = client_key(addresses.source[0])
        if key is None:
            return None
        count = self._open.get(key, 0)
        if count >= self.limit:
            hint = "" if _is_global(key) else "; behind a load balancer? see --proxy-protocol"
            raise TooManyConnections(
                f"{count} connections already open from {key} "
                f"(--max-connections-per-ip {self.limit}){hint}"
            )
        self._open[key] = count + 1
        return key

    def give_back(self, key: str | None) -> None:
        if key is None:
            return
        count = self._open[key] - 1
        if count:
            self._open[key] = count
        else:
            del self._open[key]


def client_key(host: str) -> str | None:
    """What a client counts under: its IPv4 address, or its IPv6 /64; None for loopback."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:  # not an IP address (a UNIX socket's path, say): not counted
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _is_global(key: str) -> bool:
    return ipaddress.ip_network(key).is_global


def risk_warning(hosts: Iterable[str], proxy_protocol: bool, limit: int) -> str | None:
    """A warning when the limit is likely to throttle a load balancer's traffic as a whole:
    without --proxy-protocol, on a listener whose address is private (where balancers reach
    their servers). Loopback clients are not counted, and a wildcard listener says nothing."""
    if not limit or proxy_protocol:
        return None
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or address.is_global:
            continue
        return (
            f"--max-connections-per-ip {limit} on {host}, a private address, without "
            "--proxy-protocol: if clients come through a load balancer that sends no PROXY "
            "header, they all share its address and its limit; give --proxy-protocol (and set "
            "the balancer to send it), or --max-connections-per-ip 0"
        )
    return None
