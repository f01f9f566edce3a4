"""What every benchmark shares: the one TLS configuration both servers and all clients use.

The comparison is only fair if trio-tls and the stdlib server negotiate exactly the same thing,
so the parameters live here once: TLS 1.2 only, ECDHE-RSA-AES128-GCM-SHA256 only, P-256 only,
(or, with `python -m bench --tls13`, which sets BENCH_TLS_VERSION for every process it starts:
TLS 1.3 only, TLS_AES_256_GCM_SHA384, which OpenSSL's server picks from its clients' default list
and Python's ssl cannot change, and P-256), the same
the same RSA-2048 certificate (made fresh per run by `make_self_signed`), and session resumption
on for both (trio-tls: a SessionCache and TicketKeys; OpenSSL: its default server session cache
and tickets). Clients do not verify the certificate: verification is the client's cost, not
the server's, and it would be the same for both servers anyway.

Both servers cap open connections at MAX_CONNECTIONS, far above what any measurement holds, so
the cap never decides a result. Holding thousands of connections open takes as many file
descriptors, in the servers and in the idle clients alike: raise_descriptor_limit() lifts each
process's soft RLIMIT_NOFILE and says `ulimit -n` when the hard limit is the obstacle.

Every client process imports this module, so it does not import trio_tls (with trio and
cryptography.x509, a few tenths of a second per process): sixteen clients starting at once on a
two-core machine would otherwise spend seconds importing what they never use.
"""

from __future__ import annotations

import os
import resource
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_tls import ServerConfig

# Which TLS version every process of this run speaks: "1.2" or "1.3" (see above).
VERSION_VARIABLE = "BENCH_TLS_VERSION"
USE_TLS13 = os.environ.get(VERSION_VARIABLE, "1.2") == "1.3"
SUITE = "TLS_AES_256_GCM_SHA384" if USE_TLS13 else "ECDHE-RSA-AES128-GCM-SHA256"
VERSION = ssl.TLSVersion.TLSv1_3 if USE_TLS13 else ssl.TLSVersion.TLSv1_2
CURVE = "prime256v1"  # OpenSSL's name for secp256r1 (P-256)
HOST = "127.0.0.1"
IMPLEMENTATIONS = ("trio-tls", "trio-ssl")
MAX_CONNECTIONS = 20_000  # both servers' cap on open connections (serve()'s default is 1,000)
DESCRIPTOR_RESERVE = 64  # for the listener, pipes, epoll, certificate files, a few new clients


def raise_descriptor_limit(connections: int) -> None:
    """Let this process hold `connections` sockets: soft RLIMIT_NOFILE up to the hard limit.

    Exits with the fix in the message when the hard limit itself is too low, rather than have
    accept() or connect() fail with EMFILE in the middle of a measurement.
    """
    needed = connections + DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"{connections} open connections need about {needed} file descriptors, but the "
            f"hard limit is {hard}: raise it (`ulimit -n {needed}` in the shell that runs the "
            "benchmark; raising the hard limit needs root) and run it again"
        )
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def trio_tls_config(
    certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str]
) -> ServerConfig:
    # Imported here, not at the top: the client processes import this module too (see above).
    from trio_tls import CertifiedKey, ServerConfig  # noqa: PLC0415
    from trio_tls.engine.crypto.suites import (  # noqa: PLC0415
        DEFAULT_SUITES,
        TLS13_SUITES,
        suite_by_name,
    )
    from trio_tls.engine.sessions import SessionCache, TicketKeys  # noqa: PLC0415
    from trio_tls.engine.wire.enums import TLS12, TLS13, NamedGroup  # noqa: PLC0415
    from trio_tls.ops.certs import load_certificate_chain, load_private_key  # noqa: PLC0415

    chain = load_certificate_chain(certfile)
    return ServerConfig(
        [CertifiedKey(tuple(chain), load_private_key(keyfile))],
        versions=[TLS13 if USE_TLS13 else TLS12],
        cipher_suites=DEFAULT_SUITES if USE_TLS13 else [suite_by_name(SUITE)],
        tls13_suites=[s for s in TLS13_SUITES if s.name == SUITE] or TLS13_SUITES,
        groups=[NamedGroup.secp256r1],
        session_cache=SessionCache(),
        ticket_keys=TicketKeys(),
    )


def stdlib_server_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """OpenSSL's server, restricted to the same version, suite and group as trio-tls."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    ctx.minimum_version = ctx.maximum_version = VERSION
    if not USE_TLS13:
        ctx.set_ciphers(SUITE)
    ctx.set_ecdh_curve(CURVE)
    return ctx


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = VERSION
    if not USE_TLS13:
        ctx.set_ciphers(SUITE)
    ctx.set_ecdh_curve(CURVE)
    return ctx
