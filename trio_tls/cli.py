"""The `trio-tls` command: serve, certs, handlers, ticket-keys.

Everything a user can get wrong (a missing or unreadable certificate, a wrong key password, a
key that does not match, a port in use, an unknown handler) ends as one line on stderr and a
non-zero exit, never a traceback: those are configuration mistakes, not bugs.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from . import workers
from .certs import CertificateError, fingerprint_sha256, load_certificate_chain, make_self_signed
from .config import ServerConfig
from .keylog import KeyLogFile
from .plugins import (
    Handler,
    PluginError,
    handler_alpn,
    installed_handlers,
    load_handler,
    parse_handler_options,
)
from .secretfiles import SecretFileError
from .server import DEFAULT_HOST, DEFAULT_PORT, ensure_descriptors, serve
from .settings import DEV_CERT_DIR, Settings, UsageError, build_config
from .ticketfile import (
    FileTicketKeys,
    TicketKeyFileError,
    create_key_file,
    keep_rotating,
    rotate_key_file,
)

log = logging.getLogger("trio_tls")
SHUTDOWN_GRACE = 5.0


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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-tls", description="A TLS 1.2 server written in Python, on trio."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="serve TLS with a handler plugin")
    run.add_argument("--host", default=DEFAULT_HOST)
    run.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    run.add_argument("--handler", default="hello", help="handler plugin name (default: hello)")
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
    run.add_argument("--handshake-timeout", type=_seconds, default=10.0, metavar="SECONDS")
    run.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="close a connection that sends nothing for this long while read from (default 60)",
    )
    run.add_argument(
        "--write-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="close a connection that takes no data for this long while written to (default 30)",
    )
    run.add_argument("--max-connections", type=int, default=1000)
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
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    certs = commands.add_parser("certs", help="make a self-signed development certificate")
    certs.add_argument("--key-type", choices=["rsa", "ecdsa"], default="rsa")
    certs.add_argument("--out", type=Path, default=DEV_CERT_DIR)

    commands.add_parser("handlers", help="list installed handler plugins")

    ticket_keys = commands.add_parser("ticket-keys", help="manage a ticket key file")
    actions = ticket_keys.add_subparsers(dest="action", required=True)
    rotate = actions.add_parser(
        "rotate", help="rotate a ticket key file now, or make it (e.g. hourly from cron)"
    )
    rotate.add_argument("file")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        certfiles=args.certfile,
        keyfiles=args.keyfile,
        keyfile_password_env=args.keyfile_password_env,
        ciphers=args.ciphers,
        groups=args.groups,
        alpn=args.alpn,
        strict_sni=args.strict_sni,
        session_cache_size=args.session_cache_size,
        tickets=not args.no_tickets,
        ticket_key_file=args.ticket_key_file,
        ticket_key_rotation=args.ticket_key_rotation,
        quiet=args.listen_fd is not None,
    )


async def _rotate_ticket_key_file(settings: Settings, config: ServerConfig | None) -> None:
    """The owner's job (this server, or the supervisor of --workers); returns at once if not."""
    if settings.ticket_key_file is None or not settings.owns_ticket_key_file:
        return
    # The supervisor's keys never seal, so only a single server's can wear out.
    keys = config.ticket_keys if config is not None else None
    await keep_rotating(
        settings.ticket_key_file,
        lifetime=settings.session_lifetime,
        keys=keys if isinstance(keys, FileTicketKeys) else None,
    )


async def _serve_until_signalled(
    args: argparse.Namespace,
    handler: Handler,
    settings: Settings,
    config: ServerConfig,
    keylog: KeyLogFile | None,
) -> None:
    shutdown = trio.Event()
    inherited = None if args.listen_fd is None else [workers.inherited_listener(args.listen_fd)]
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_server(
                task_status: trio.TaskStatus[Sequence[trio.SocketListener]],
            ) -> None:
                await serve(
                    handler,
                    config,
                    args.host,
                    args.port,
                    handshake_timeout=args.handshake_timeout,
                    idle_timeout=args.idle_timeout,
                    write_timeout=args.write_timeout,
                    max_connections=args.max_connections,
                    shutdown=shutdown,
                    shutdown_grace=SHUTDOWN_GRACE,
                    observer=keylog,
                    listeners=inherited,
                    task_status=task_status,
                )
                # serve() has drained: stop the signal watcher too, or the nursery never exits.
                nursery.cancel_scope.cancel()

            listeners = await nursery.start(run_server)
            if args.listen_fd is None:
                port = listeners[0].socket.getsockname()[1]
                print(
                    f"serving handler {args.handler!r} on https://{args.host}:{port}/", flush=True
                )

            async def watch_signals() -> None:
                async for signum in signals:
                    if shutdown.is_set():  # a second signal: stop now
                        nursery.cancel_scope.cancel()
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    shutdown.set()

            nursery.start_soon(watch_signals)
            nursery.start_soon(_rotate_ticket_key_file, settings, config)


_KEYLOG_BANNER = """\
**************************************************************************************
WARNING: the SSLKEYLOGFILE environment variable is set, so trio-tls is
writing TLS secrets to {path} ({where}).
Anyone who can read that file can decrypt every connection recorded in it.
Key logging is for debugging only: unset SSLKEYLOGFILE unless you meant this
(--key-log-file asks for it explicitly).
**************************************************************************************"""


def _open_keylog(args: argparse.Namespace) -> KeyLogFile | None:
    path = args.key_log_file or os.environ.get("SSLKEYLOGFILE")
    if not path:
        return None
    try:
        keylog = KeyLogFile(path)
    except (OSError, SecretFileError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot open key log file {path}: {reason}") from None
    if args.listen_fd is None and args.key_log_file:
        log.warning("writing TLS secrets to %s: anyone with it can decrypt traffic", path)
    elif args.listen_fd is None:
        # An inherited variable (set for a browser, say) turns this on without anyone asking.
        print(_KEYLOG_BANNER.format(path=path, where=os.path.abspath(path)), file=sys.stderr)
    return keylog


def _cmd_serve(args: argparse.Namespace) -> None:
    worker = "[%(process)d] " if args.workers > 1 or args.listen_fd is not None else ""
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s {worker}%(message)s"
    )
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.ticket_key_rotation == "external" and args.ticket_key_file is None:
        raise UsageError("--ticket-key-rotation external needs --ticket-key-file")
    descriptors_warning = ensure_descriptors(args.max_connections)
    if descriptors_warning is not None and args.listen_fd is None:
        log.warning("%s", descriptors_warning)
    # Build the handler and configuration before listening, so mistakes surface at once.
    handler = load_handler(args.handler, parse_handler_options(args.handler_opt))
    settings = _settings(args)
    with tempfile.TemporaryDirectory(prefix="trio-tls-") as private_dir:
        if args.workers > 1 and settings.tickets and settings.ticket_key_file is None:
            # One key file for all workers, so a ticket resumes on any of them.
            key_file = os.path.join(private_dir, "tickets.keys")
            settings = attrs.evolve(settings, ticket_key_file=key_file)
        config = build_config(settings, handler_alpn(handler))
        # Opened here in the supervisor too: a bad path is one error, and the warning shows.
        keylog = _open_keylog(args)
        try:
            if args.workers > 1:
                _run_workers(args, settings)
            else:
                trio.run(_serve_until_signalled, args, handler, settings, config, keylog)
        except* OSError as group:
            # Binding fails inside the nursery, which wraps the error in an ExceptionGroup.
            raise _listen_error(args, group.exceptions[0]) from None
        finally:
            if keylog is not None:
                keylog.close()


def _listen_error(args: argparse.Namespace, exc: BaseException) -> UsageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return UsageError(f"cannot listen on {args.host}:{args.port}: {reason}")


def _run_workers(args: argparse.Namespace, settings: Settings) -> None:
    try:
        sock = workers.bind(args.host, args.port)
    except OSError as exc:
        raise _listen_error(args, exc) from None
    with sock:
        worker_args = [*args.argv, "--workers", "1"]
        if settings.ticket_key_file is not None:
            # The supervisor owns the file (unless someone else does); workers only read it.
            worker_args += ["--ticket-key-file", settings.ticket_key_file]
            worker_args += ["--ticket-key-rotation", "external"]
        port = sock.getsockname()[1]
        print(
            f"serving handler {args.handler!r} on https://{args.host}:{port}/ "
            f"with {args.workers} workers",
            flush=True,
        )
        trio.run(_supervise, worker_args, args.workers, sock, settings)


async def _supervise(
    worker_args: Sequence[str], count: int, sock: socket.socket, settings: Settings
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_rotate_ticket_key_file, settings, None)
        await workers.supervise(worker_args, count, sock, SHUTDOWN_GRACE)
        nursery.cancel_scope.cancel()


def _cmd_certs(args: argparse.Namespace) -> None:
    dev = make_self_signed(args.out, args.key_type)
    chain = load_certificate_chain(dev.cert_path)
    print(f"wrote {dev.cert_path}, {dev.der_path} and {dev.key_path} (mode 0600)")
    print(f"SHA-256 fingerprint {fingerprint_sha256(chain[0])}")


def _cmd_handlers(args: argparse.Namespace) -> None:
    for info in installed_handlers().values():
        origin = f"{info.distribution} {info.version}" if info.distribution else "?"
        print(f"{info.name:16} {info.value:40} ({origin})")


def _cmd_ticket_keys(args: argparse.Namespace) -> None:
    now = time.time()
    if create_key_file(args.file, now):
        print(f"made {args.file} (mode 0600)")
        return
    rotated = rotate_key_file(args.file, now, lifetime=Settings().session_lifetime)
    sealing = rotated.sealing.key.name.hex()
    announced = [line.key.name.hex() for line in rotated.lines if line.role == "next"][-1]
    print(f"rotated {args.file}: key {sealing} seals, key {announced} is announced")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    args.argv = argv
    command = {
        "serve": _cmd_serve,
        "certs": _cmd_certs,
        "handlers": _cmd_handlers,
        "ticket-keys": _cmd_ticket_keys,
    }
    try:
        command[args.command](args)
    except (UsageError, CertificateError, PluginError, TicketKeyFileError, ValueError) as exc:
        print(f"trio-tls: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
