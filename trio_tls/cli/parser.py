"""The `trio-tls` command line: its subcommands, options, and their checks.

A value argparse can check (a port, a number of seconds) is checked here, so a mistake is
reported with the option's name before anything starts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..ops.certs import DEFAULT_DAYS, DEFAULT_NAMES, MAX_DAYS
from ..ops.settings import DEV_CERT_DIR
from ..server.listen import DEFAULT_HOST, DEFAULT_PORT
from ..server.peerlimit import MIN_DEFAULT
from ..server.proxy_protocol import Version

ERROR_PREFIX = "trio-tls: error: "
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


def _integer(least: int, most: int | None = None) -> Callable[[str], int]:
    """A parser for a whole number from `least` to `most` (no bound when None), such as a
    count where 0 means "no limit", or one that must be 1 or more (--max-connections 0 would
    never accept)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if most is not None and not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{value} is not between {least} and {most}")
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is not {least} or more")
        return value

    return parse


MAX_CRYPTO_THREADS = 64
_count = _integer(0)
_at_least_one = _integer(1)
_thread_count = _integer(0, MAX_CRYPTO_THREADS)  # 0: sign on the event loop


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake exits with status 1 and one line, as every other mistake does,
    under the one prefix every error has (a subcommand's parser would name itself)."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{ERROR_PREFIX}{message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Each option's default, said once: by its help text when the text speaks of it (a default
    that is not a plain value, "what the handler speaks"), else appended as argparse does."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings:
            return text
        if action.default in (None, [], argparse.SUPPRESS):  # the text must say it
            return text
        if action.default is False:  # a flag
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def _version() -> str:
    try:
        return importlib.metadata.version("trio-tls")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trio-tls",
        description="A TLS 1.2 server written in Python, on trio.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, about: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=about, description=about, formatter_class=_HelpFormatter
        )

    _add_serve_options(command("serve", "serve TLS with a handler plugin"))
    _add_certs_options(command("certs", "make a self-signed development certificate"))
    command("handlers", "list installed handler plugins")
    ticket_keys = command("ticket-keys", "manage a ticket key file")
    actions = ticket_keys.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser(
        "rotate",
        help="rotate a ticket key file now, or make it (e.g. hourly from cron)",
        description="rotate a ticket key file now, or make it (e.g. hourly from cron)",
        formatter_class=_HelpFormatter,
    )
    rotate.add_argument("file", metavar="FILE", help="the ticket key file (made 0600 if missing)")
    return parser


def _add_serve_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--host",
        dest="hosts",
        action="append",
        metavar="HOST",
        help=f"address to listen on (repeatable: --host :: --host 0.0.0.0 is dual stack; "
        f"default: {DEFAULT_HOST})",
    )
    run.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    run.add_argument("--handler", default="hello", help="handler plugin name")
    run.add_argument(
        "--handler-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the handler (repeatable; default: none)",
    )
    run.add_argument(
        "--certfile",
        action="append",
        default=[],
        metavar="FILE",
        help="certificate chain, PEM or DER, leaf first (repeatable: one per key; default: a "
        "development certificate made in certs/)",
    )
    run.add_argument(
        "--keyfile",
        action="append",
        default=[],
        metavar="FILE",
        help="private key, PEM or DER, paired in order with --certfile (default: inside it)",
    )
    run.add_argument(
        "--keyfile-password-env",
        metavar="NAME",
        help="environment variable holding the key's password (default: the key is not encrypted)",
    )
    run.add_argument(
        "--tls-versions",
        metavar="LIST",
        help="protocol versions to serve: 1.2, 1.3 or 1.2,1.3 (default: 1.2,1.3)",
    )
    run.add_argument(
        "--ciphers",
        metavar="LIST",
        help="cipher suites in preference order, TLS 1.2 and 1.3 ones together, IANA or "
        "OpenSSL names, ':'-separated; a version none is named for keeps its defaults "
        "(default: every suite, AES-128-GCM first)",
    )
    run.add_argument(
        "--groups",
        metavar="LIST",
        help="key exchange groups in preference order, e.g. x25519:secp256r1; "
        "X25519MLKEM768 is TLS 1.3 only (default: X25519MLKEM768, x25519, secp256r1, "
        "secp384r1)",
    )
    run.add_argument(
        "--alpn",
        metavar="LIST",
        help="ALPN protocols in preference order (default: what the handler speaks)",
    )
    run.add_argument(
        "--strict-sni",
        action="store_true",
        help="refuse host names no certificate is for (unrecognized_name)",
    )
    run.add_argument(
        "--client-ca",
        metavar="FILE",
        help="ask clients for certificates issued by these CAs, a PEM bundle (default: no "
        "client certificates)",
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
        metavar="N",
        help="session-ID cache entries (0 disables)",
    )
    run.add_argument("--no-tickets", action="store_true", help="do not issue session tickets")
    run.add_argument(
        "--ticket-key-file",
        metavar="FILE",
        help="ticket keys shared by several servers, reloaded when it changes (README; "
        "default: keys in memory, or a private file shared by --workers)",
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
        "load balancer: HAProxy's send-proxy-v2, say); its client address is then the "
        "client's (default: no header)",
    )
    run.add_argument(
        "--handshake-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose handshake (PROXY header included) takes longer",
    )
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
        "--record-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="close a connection that begins a TLS record and does not finish it in this long "
        "(however often bytes of it arrive)",
    )
    run.add_argument(
        "--max-connections",
        type=_at_least_one,
        default=1000,
        metavar="N",
        help="connections open at once",
    )
    run.add_argument(
        "--max-connections-per-ip",
        type=_count,
        metavar="N",
        help="connections one client address may hold open, counted by the PROXY header's "
        "address with --proxy-protocol, an IPv6 client by its /64, loopback not at all "
        f"(default: a tenth of --max-connections, at least {MIN_DEFAULT}; 0: no limit)",
    )
    run.add_argument(
        "--crypto-threads",
        type=_thread_count,
        default=0,
        metavar="N",
        help="make handshake signatures on N worker threads, so the event loop goes on "
        "meanwhile (default: 0, on the event loop)",
    )
    run.add_argument(
        "--key-log-file",
        metavar="FILE",
        help="append NSS key log lines here, for debugging only (default: $SSLKEYLOGFILE if "
        "set, else none)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the same socket (one per core)",
    )
    run.add_argument(
        "--pid-file",
        metavar="PATH",
        help="write the server's process ID here once it listens, remove it at exit; refused "
        "while another running server holds it (default: none)",
    )
    run.add_argument(
        "--user",
        metavar="NAME",
        help="started as root: switch to this user once the listeners are open and the keys "
        "read (default: keep the user it was started as)",
    )
    run.add_argument(
        "--group",
        metavar="NAME",
        help="with --user: the group to switch to (default: the user's primary group)",
    )
    # A worker's inherited listening socket, set by the supervisor only.
    run.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    # A worker's end of its control socket to the supervisor (workers.py), likewise.
    run.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    # A worker's copy of the supervisor's --trace-file, likewise.
    run.add_argument("--trace-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log messages shown on stderr",
    )
    run.add_argument(
        "--trace",
        action="store_true",
        help="print each handshake as an annotated ladder on stderr (secrets only with a key log)",
    )
    run.add_argument(
        "--trace-file",
        metavar="PATH",
        help="write the trace here instead, apart from the log (- for stdout; appended to, "
        "mode 0600; implies --trace; default: stderr)",
    )
    run.add_argument(
        "--trace-format", choices=["text", "json"], default="text", help="json: one object a line"
    )


def _add_certs_options(certs: argparse.ArgumentParser) -> None:
    certs.add_argument(
        "--key-type", choices=["rsa", "ecdsa"], default="rsa", help="RSA-2048 or ECDSA P-256"
    )
    certs.add_argument(
        "--out", type=Path, default=DEV_CERT_DIR, metavar="DIR", help="directory to write into"
    )
    certs.add_argument(
        "--name",
        action="append",
        default=[],
        help=f"DNS name or IP address to certify (repeatable; default: {', '.join(DEFAULT_NAMES)})",
    )
    certs.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"validity in days, at most {MAX_DAYS}"
    )
    certs.add_argument("--force", action="store_true", help="replace existing files")
