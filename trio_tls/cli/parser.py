"""The `trio-tls` command line: its subcommands, options, and their checks.

A value argparse can check (a port, a number of seconds) is checked here, so a mistake is
reported with the option's name before anything starts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
from pathlib import Path
from typing import NoReturn

from ..ops.certs import DEFAULT_DAYS, DEFAULT_NAMES, MAX_DAYS
from ..ops.settings import DEV_CERT_DIR
from ..server.listen import DEFAULT_HOST, DEFAULT_PORT
from ..server.proxy_protocol import Version

PROXY_PROTOCOL_VERSIONS: dict[str, tuple[Version, ...]] = {"v1": (1,), "v2": (2,), "any": (1, 2)}


def _port(text: str) -> int:
    """A TCP port; getaddrinfo would silently take 99999 modulo 65536."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return port


def _seconds(text: str) -> float:
    """A timeout: a positive, finite number of seconds (0, a negative, nan never work)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return seconds


def _at_least_one(text: str) -> int:
    """A count that must be 1 or more (--max-connections 0 would never accept)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


MAX_CRYPTO_THREADS = 64


def _thread_count(text: str) -> int:
    """0 (sign on the event loop) to MAX_CRYPTO_THREADS."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 <= value <= MAX_CRYPTO_THREADS:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {MAX_CRYPTO_THREADS}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake exits with status 1 and one line, as every other mistake does."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return importlib.metadata.version("trio-tls")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trio-tls", description="A TLS 1.2 server written in Python, on trio.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "serve",
        help="serve TLS with a handler plugin",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument(
        "--host",
        dest="hosts",
        action="append",
        help=f"address to listen on (repeatable: --host :: --host 0.0.0.0 is dual stack; "
        f"default {DEFAULT_HOST})",
    )
    run.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    run.add_argument("--handler", default="hello", help="handler plugin name")
    run.add_argument(
        "--handler-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the handler (repeatable)",
    )
    run.add_argument(
        "--certfile",
        action="append",
        default=[],
        help="certificate chain, PEM or DER, leaf first (repeatable: one per key)",
    )
    run.add_argument(
        "--keyfile",
        action="append",
        default=[],
        help="private key, PEM or DER, paired in order with --certfile (default: inside it)",
    )
    run.add_argument(
        "--keyfile-password-env",
        metavar="NAME",
        help="environment variable holding the key's password",
    )
    run.add_argument(
        "--ciphers", help="cipher suites in preference order, IANA or OpenSSL names, ':'-separated"
    )
    run.add_argument("--groups", help="ECDHE groups in preference order, e.g. x25519:secp256r1")
    run.add_argument(
        "--alpn", help="ALPN protocols in preference order (default: what the handler speaks)"
    )
    run.add_argument(
        "--strict-sni",
        action="store_true",
        help="refuse host names no certificate is for (unrecognized_name)",
    )
    run.add_argument(
        "--client-ca",
        metavar="FILE",
        help="ask clients for certificates issued by these CAs (a PEM bundle)",
    )
    run.add_argument(
        "--client-auth",
        choices=["none", "optional", "required"],
        help="whether a client certificate is required (default: required with --client-ca)",
    )
    run.add_argument(
        "--no-client-ca-names",
        action="store_true",
        help="send no CA names in CertificateRequest (large bundles overflow some clients)",
    )
    run.add_argument(
        "--session-cache-size",
        type=int,
        default=20_000,
        help="session-ID cache entries (0 disables)",
    )
    run.add_argument("--no-tickets", action="store_true", help="do not issue session tickets")
    run.add_argument(
        "--ticket-key-file",
        help="ticket keys shared by several servers, reloaded when it changes (README)",
    )
    run.add_argument(
        "--ticket-key-rotation",
        choices=["auto", "external"],
        default="auto",
        help="auto: this server makes the file if missing and rotates it hourly; external: "
        "another program rotates it (trio-tls ticket-keys rotate), this server only reads it",
    )
    run.add_argument(
        "--proxy-protocol",
        choices=sorted(PROXY_PROTOCOL_VERSIONS),
        help="every connection starts with a PROXY protocol header of this version (from a "
        "load balancer: HAProxy's send-proxy-v2, say); its client address is then the client's",
    )
    run.add_argument("--handshake-timeout", type=_seconds, default=10.0, metavar="SECONDS")
    run.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="close a connection that sends nothing for this long while read from",
    )
    run.add_argument(
        "--write-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="close a connection that takes no data for this long while written to",
    )
    run.add_argument(
        "--max-connections", type=_at_least_one, default=1000, help="connections open at once"
    )
    run.add_argument(
        "--crypto-threads",
        type=_thread_count,
        default=0,
        metavar="N",
        help="make handshake signatures on N worker threads, so the event loop goes on "
        "meanwhile (default 0: on the event loop)",
    )
    run.add_argument(
        "--key-log-file",
        help="append NSS key log lines here (debugging only; also $SSLKEYLOGFILE)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the same socket (default 1; use one per core)",
    )
    # A worker's inherited listening socket, set by the supervisor only.
    run.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    # A worker's end of its control socket to the supervisor (workers.py), likewise.
    run.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--trace",
        action="store_true",
        help="print each handshake as an annotated ladder on stderr (secrets only with a key log)",
    )
    run.add_argument(
        "--trace-format", choices=["text", "json"], default="text", help="json: one object a line"
    )

    certs = commands.add_parser("certs", help="make a self-signed development certificate")
    certs.add_argument("--key-type", choices=["rsa", "ecdsa"], default="rsa")
    certs.add_argument("--out", type=Path, default=DEV_CERT_DIR, help="directory (default: certs)")
    certs.add_argument(
        "--name",
        action="append",
        default=[],
        help=f"DNS name or IP address to certify (repeatable; default: {', '.join(DEFAULT_NAMES)})",
    )
    certs.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"validity in days, at most {MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    certs.add_argument("--force", action="store_true", help="replace existing files")

    commands.add_parser("handlers", help="list installed handler plugins")

    ticket_keys = commands.add_parser("ticket-keys", help="manage a ticket key file")
    actions = ticket_keys.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser(
        "rotate", help="rotate a ticket key file now, or make it (e.g. hourly from cron)"
    )
    rotate.add_argument("file")
    return parser
