"""What every benchmark shares: the one TLS configuration both servers and all clients use.

The comparison is only fair if trio-tls and the stdlib server negotiate exactly the same thing,
so the parameters live here once: TLS 1.2 only, ECDHE-RSA-AES128-GCM-SHA256 only, P-256 only,
the same RSA-2048 certificate (made fresh per run by `make_self_signed`), and session resumption
on for both (trio-tls: a SessionCache and TicketKeys; OpenSSL: its default server session cache
and tickets). Clients do not verify the certificate: verification is the client's cost, not
the server's, and it would be the same for both servers anyway.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from trio_tls import CertifiedKey, ServerConfig
from trio_tls.certs import load_certificate_chain, load_private_key
from trio_tls.enums import NamedGroup
from trio_tls.sessions import SessionCache, TicketKeys
from trio_tls.suites import suite_by_name

SUITE = "ECDHE-RSA-AES128-GCM-SHA256"
CURVE = "prime256v1"  # OpenSSL's name for secp256r1 (P-256)
HOST = "127.0.0.1"
IMPLEMENTATIONS = ("trio-tls", "trio-ssl")


def trio_tls_config(
    certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str]
) -> ServerConfig:
    chain = load_certificate_chain(certfile)
    return ServerConfig(
        [CertifiedKey(tuple(chain), load_private_key(keyfile))],
        cipher_suites=[suite_by_name(SUITE)],
        groups=[NamedGroup.secp256r1],
        session_cache=SessionCache(),
        ticket_keys=TicketKeys(),
    )


def stdlib_server_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """OpenSSL's server, restricted to the same version, suite and group as trio-tls."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(SUITE)
    ctx.set_ecdh_curve(CURVE)
    return ctx


def client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(SUITE)
    ctx.set_ecdh_curve(CURVE)
    return ctx
