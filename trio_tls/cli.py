"""The `trio-tls` command: serve, certs, handlers, ticket-keys.

Everything a user can get wrong (a missing or unreadable certificate, a wrong key password, a
key that does not match, a port in use, an unknown handler) ends as one line on stderr and a
non-zero exit, never a traceback: those are configuration mistakes, not bugs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import math
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import attrs
import trio

from . import systemd, workers
from .addresses import format_address
from .certs import (
    DEFAULT_DAYS,
    DEFAULT_NAMES,
    MAX_DAYS,
    CertificateError,
    CertificateExistsError,
    fingerprint_sha256,
    load_certificate_chain,
    make_self_signed,
    parse_name,
)
from .config import ServerConfig
from .events import Observer
from .keylog import KeyLogFile
from .plugins import (
    Handler,
    PluginError,
    handler_alpn,
    installed_handlers,
    load_handler,
    parse_handler_options,
)
from .proxyproto import Version
from .reload import ConfigHolder
from .secretfiles import SecretFileError
from .server import DEFAULT_HOST, DEFAULT_PORT, ensure_descriptors, serve
from .settings import DEV_CERT_DIR, Settings, UsageError, build_config
from .shutdown import SIGNALS, Shutdown, ignore_hangups, watch_signals
from .ticketfile import (
    FileTicketKeys,
    TicketKeyFileError,
    create_key_file,
    keep_rotating,
    rotate_key_file,
)
from .trace import tracer

log = logging.getLogger("trio_tls")
SHUTDOWN_GRACE = 5.0
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


def _build_parser() -> argparse.ArgumentParser:
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


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        certfiles=args.certfile,
        keyfiles=args.keyfile,
        keyfile_password_env=args.keyfile_password_env,
        ciphers=args.ciphers,
        groups=args.groups,
        alpn=args.alpn,
        strict_sni=args.strict_sni,
        client_ca=args.client_ca,
        client_auth=args.client_auth,
        client_ca_names=not args.no_client_ca_names,
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
        make_directory=settings.ticket_key_dir_ours,
    )


async def _notify_stopping(shutdown: Shutdown) -> None:
    await shutdown.draining.wait()
    systemd.notify("STOPPING=1")


async def _serve_until_signalled(
    args: argparse.Namespace,
    handler: Handler,
    settings: Settings,
    config: ServerConfig,
    keylog: KeyLogFile | None,
    activated: Sequence[socket.socket],
) -> None:
    shutdown = Shutdown()
    if args.listen_fd is not None:
        listeners = [workers.inherited_listener(args.listen_fd)]
    elif activated:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in activated]
    else:
        listeners = await _open_listeners(args.hosts, args.port)
    holder = ConfigHolder(config)

    async def reload() -> None:
        systemd.notify(systemd.reloading())
        await holder.reload(lambda: build_config(settings, handler_alpn(handler)))
        systemd.notify("READY=1")

    with trio.open_signal_receiver(*SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_signals, shutdown, signals, reload)
            nursery.start_soon(_notify_stopping, shutdown)
            if args.control_fd is not None:
                nursery.start_soon(workers.follow_supervisor, args.control_fd, shutdown, reload)

            async def stop_at_once() -> None:
                await shutdown.stopping.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_at_once)

            async def run_server(
                task_status: trio.TaskStatus[Sequence[trio.SocketListener]],
            ) -> None:
                await serve(
                    handler,
                    holder,
                    args.host,
                    args.port,
                    handshake_timeout=args.handshake_timeout,
                    idle_timeout=args.idle_timeout,
                    write_timeout=args.write_timeout,
                    max_connections=args.max_connections,
                    crypto_threads=args.crypto_threads,
                    shutdown=shutdown.draining,
                    shutdown_grace=SHUTDOWN_GRACE,
                    observer=keylog,
                    connection_observer=_tracer(args, keylog),
                    listeners=listeners,
                    proxy_protocol=PROXY_PROTOCOL_VERSIONS.get(args.proxy_protocol, ()),
                    task_status=task_status,
                )
                # serve() has drained: stop the watchers too, or the nursery never exits.
                nursery.cancel_scope.cancel()

            await nursery.start(run_server)
            systemd.notify("READY=1")
            if args.listen_fd is None:
                urls = " and ".join(_url(*lst.socket.getsockname()[:2]) for lst in listeners)
                print(f"serving handler {args.handler!r} on {urls}", flush=True)
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
    ignore_hangups()
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    cpus = workers.cpu_count()
    if args.workers > workers.WORKERS_PER_CPU * cpus:
        raise UsageError(
            f"--workers {args.workers} is too many for {cpus} CPU(s): at most "
            f"{workers.WORKERS_PER_CPU * cpus} ({workers.WORKERS_PER_CPU} per CPU; "
            "one per CPU is usually best)"
        )
    if args.ticket_key_rotation == "external" and args.ticket_key_file is None:
        raise UsageError("--ticket-key-rotation external needs --ticket-key-file")
    if args.workers > 1 and len(args.hosts) > 1:
        raise UsageError("--workers serves one --host; run one server per address instead")
    descriptors_warning = ensure_descriptors(args.max_connections)
    if descriptors_warning is not None and args.listen_fd is None:
        log.warning("%s", descriptors_warning)
    # Build the handler and configuration before listening, so mistakes surface at once.
    handler = load_handler(args.handler, parse_handler_options(args.handler_opt))
    settings = _settings(args)
    shared_keys = args.workers > 1 and settings.tickets and settings.ticket_key_file is None
    with workers.private_directory() if shared_keys else contextlib.nullcontext() as private_dir:
        if private_dir is not None:
            # One key file for all workers, so a ticket resumes on any of them.
            key_file = os.path.join(private_dir, "tickets.keys")
            settings = attrs.evolve(settings, ticket_key_file=key_file, ticket_key_dir_ours=True)
        config = build_config(settings, handler_alpn(handler))
        # Opened here in the supervisor too: a bad path is one error, and the warning shows.
        keylog = _open_keylog(args)
        # Socket activation: systemd's sockets replace --host and --port (systemd.py).
        activated = systemd.listen_sockets() if args.listen_fd is None else []
        try:
            if args.workers > 1:
                _run_workers(args, settings, activated)
            else:
                # Listeners are opened before any nursery, so binding errors come out bare.
                trio.run(_serve_until_signalled, args, handler, settings, config, keylog, activated)
        finally:
            if keylog is not None:
                keylog.close()


async def _open_listeners(hosts: Sequence[str], port: int) -> list[trio.SocketListener]:
    """Listeners on every host, all on one port (the first one's, when port 0 picks it).

    trio sets IPV6_V6ONLY, so `::` and `0.0.0.0` side by side make a dual-stack server."""
    listeners: list[trio.SocketListener] = []
    for host in hosts:
        if listeners and port == 0:
            port = listeners[0].socket.getsockname()[1]
        try:
            listeners += await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            for listener in listeners:
                await listener.aclose()
            raise _listen_error(host, port, exc) from None
    return listeners


def _listen_error(host: str, port: int, exc: BaseException) -> UsageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return UsageError(f"cannot listen on {format_address((host, port))}: {reason}")


def _run_workers(
    args: argparse.Namespace, settings: Settings, activated: Sequence[socket.socket]
) -> None:
    if len(activated) > 1:
        raise UsageError("--workers serves one socket; give the .socket unit one ListenStream=")
    try:
        sock = activated[0] if activated else workers.bind(args.host, args.port)
    except OSError as exc:
        raise _listen_error(args.host, args.port, exc) from None
    with sock:
        worker_args = [*args.argv, "--workers", "1"]
        if settings.ticket_key_file is not None:
            # The supervisor owns the file (unless someone else does); workers only read it.
            worker_args += ["--ticket-key-file", settings.ticket_key_file]
            worker_args += ["--ticket-key-rotation", "external"]
        print(
            f"serving handler {args.handler!r} on {_url(*sock.getsockname()[:2])} "
            f"with {args.workers} workers",
            flush=True,
        )
        trio.run(_supervise, worker_args, args.workers, sock, settings)


async def _supervise(
    worker_args: Sequence[str], count: int, sock: socket.socket, settings: Settings
) -> None:
    shutdown = Shutdown()
    # Signals are caught before any nursery opens: a Ctrl+C a moment earlier is a bare
    # KeyboardInterrupt out of trio.run (exit status 130), never one wrapped in a group.
    with trio.open_signal_receiver(*SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_rotate_ticket_key_file, settings, None)
            nursery.start_soon(_notify_stopping, shutdown)

            async def run_workers(task_status: trio.TaskStatus[workers.Supervisor]) -> None:
                await workers.supervise(
                    worker_args, count, sock, shutdown, SHUTDOWN_GRACE, task_status=task_status
                )
                nursery.cancel_scope.cancel()  # all workers have exited: stop the watchers

            supervisor = await nursery.start(run_workers)

            async def reload() -> None:
                systemd.notify(systemd.reloading())
                await supervisor.reload()
                systemd.notify("READY=1")

            nursery.start_soon(watch_signals, shutdown, signals, reload)
            systemd.notify("READY=1")


def _cmd_certs(args: argparse.Namespace) -> None:
    names = list(dict.fromkeys(args.name)) or list(DEFAULT_NAMES)
    for name in names:
        try:
            parse_name(name)
        except ValueError as exc:
            raise UsageError(f"--name {name!r}: {exc}") from None
    if not 1 <= args.days <= MAX_DAYS:
        raise UsageError(f"--days must be from 1 to {MAX_DAYS} (Apple's limit), not {args.days}")
    try:
        dev = make_self_signed(
            args.out, args.key_type, names=names, days=args.days, force=args.force
        )
    except CertificateExistsError as exc:
        path = os.path.abspath(exc.path)
        raise UsageError(f"{path} exists; use --force to replace it") from None
    except OSError as exc:
        reason = exc.strerror or exc
        raise UsageError(f"cannot write to {os.path.abspath(args.out)}: {reason}") from None
    (certificate,) = load_certificate_chain(dev.cert_path)
    cert_path = os.path.abspath(dev.cert_path)
    print(f"wrote {os.path.abspath(dev.key_path)} (private key, mode 0600)")
    print(f"wrote {cert_path} (certificate) and {os.path.abspath(dev.der_path)} (the same, DER)")
    until = certificate.not_valid_after_utc
    print(f"for {', '.join(names)}; valid for {args.days} days, until {until:%Y-%m-%d %H:%M} UTC")
    print(f"SHA-256 fingerprint {fingerprint_sha256(certificate)}")
    url = _url(_url_host(names), DEFAULT_PORT)
    print(f"trust it: curl --cacert {shlex.quote(cert_path)} {url}")


def _url_host(names: Sequence[str]) -> str:
    """A host for a URL the certificate is good for: its first name that is not a wildcard."""
    return next((name for name in names if not name.startswith("*.")), "www" + names[0][1:])


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


def _tracer(
    args: argparse.Namespace, keylog: KeyLogFile | None
) -> Callable[[str], Observer] | None:
    if not args.trace:
        return None
    json_lines = args.trace_format == "json"
    return tracer(sys.stderr, json_lines=json_lines, reveal_secrets=keylog is not None)


def _version() -> str:
    try:
        return importlib.metadata.version("trio-tls")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def _url(host: str, port: int) -> str:
    return f"https://{format_address((host, port))}/"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser().parse_args(argv)
    args.argv = argv
    if args.command == "serve":
        args.hosts = args.hosts or [DEFAULT_HOST]
        args.host = args.hosts[0]
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
