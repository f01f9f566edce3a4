"""The `trio-tls` command: serve, certs, handlers, ticket-keys.

Everything a user can get wrong (a missing or unreadable certificate, a wrong key password, a
key that does not match, a port in use, an unknown handler) ends as one line on stderr and a
non-zero exit, never a traceback: those are configuration mistakes, not bugs.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
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
from typing import IO, NoReturn

import attrs
import trio

from ..engine.config import ServerConfig
from ..engine.events import Observer
from ..observe.trace import tracer
from ..ops import pidfile, privileges, systemd, workers
from ..ops.certs import (
    CERT_FILE,
    DEFAULT_DAYS,
    DEFAULT_NAMES,
    KEY_FILE,
    MAX_DAYS,
    CertificateError,
    CertificateExistsError,
    fingerprint_sha256,
    load_certificate_chain,
    make_self_signed,
    parse_name,
)
from ..ops.keylog import KeyLogFile
from ..ops.plugins import (
    Handler,
    PluginError,
    check_handler,
    handler_alpn,
    installed_handlers,
    load_handler,
    parse_handler_options,
)
from ..ops.reload import ConfigHolder
from ..ops.secretfiles import SecretFileError, open_for_append, will_run_as
from ..ops.settings import DEV_CERT_DIR, Settings, UsageError, build_config
from ..ops.shutdown import SIGNALS, Shutdown, ignore_hangups, watch_signals
from ..ops.ticketfile import (
    FileTicketKeys,
    TicketKeyFileError,
    create_key_file,
    keep_rotating,
    rotate_key_file,
)
from ..server.addresses import format_address
from ..server.listen import DEFAULT_HOST, DEFAULT_PORT, ensure_descriptors, serve
from ..server.peerlimit import MIN_DEFAULT, default_limit, risk_warning
from ..server.proxy_protocol import Version

log = logging.getLogger("trio_tls")
SHUTDOWN_GRACE = 5.0
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


def _count(text: str) -> int:
    """A count of 0 or more (0: no limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not 0 or more")
    return value


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


def _build_parser() -> argparse.ArgumentParser:
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
        "--ciphers",
        metavar="LIST",
        help="cipher suites in preference order, IANA or OpenSSL names, ':'-separated "
        "(default: every suite, AES-128-GCM first)",
    )
    run.add_argument(
        "--groups",
        metavar="LIST",
        help="ECDHE groups in preference order, e.g. x25519:secp256r1 (default: x25519, "
        "secp256r1, secp384r1)",
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
    settle: Callable[[], None],
) -> None:
    shutdown = Shutdown()
    if args.listen_fd is not None:
        listeners = [workers.inherited_listener(args.listen_fd)]
    elif activated:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in activated]
    else:
        listeners = await _open_listeners(args.hosts, args.port)
    settle()
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
                    record_timeout=args.record_timeout,
                    max_connections=args.max_connections,
                    max_connections_per_ip=args.max_connections_per_ip,
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
    in_worker = args.listen_fd is not None  # its supervisor switched user, wrote the pid file
    target = None if in_worker else privileges.resolve(args.user, args.group)
    if target is not None:
        will_run_as(target.uid)  # secret files read before the switch are the user's too
    if args.pid_file is not None and not in_worker:
        pidfile.check(args.pid_file)  # refused now, rather than after listening
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
    private = workers.private_directory(target) if shared_keys else contextlib.nullcontext()
    with (
        private as private_dir,
        contextlib.ExitStack() as at_exit,
    ):
        if args.trace_file == "-":
            # stdout is the trace's alone: what the server prints for people goes to stderr.
            at_exit.enter_context(contextlib.redirect_stdout(sys.stderr))
        if private_dir is not None:
            # One key file for all workers, so a ticket resumes on any of them.
            key_file = os.path.join(private_dir, "tickets.keys")
            settings = attrs.evolve(settings, ticket_key_file=key_file, ticket_key_dir_ours=True)
        if target is not None:
            _make_key_file_for(settings, target)
        config = build_config(settings, handler_alpn(handler))
        check_handler(handler, config)
        # Opened here in the supervisor too: a bad path is one error, and the warning shows.
        keylog = _open_keylog(args)
        if keylog is not None:
            at_exit.callback(keylog.close)
        args.trace_out = _open_trace(args, keylog, at_exit)
        # Socket activation: systemd's sockets replace --host and --port (systemd.py).
        activated = systemd.listen_sockets() if args.listen_fd is None else []
        if args.listen_fd is None:
            _warn_about_per_ip_limit(args, activated)

        def settle() -> None:
            _settle(args, settings, target, at_exit)

        if args.workers > 1:
            _run_workers(args, settings, activated, settle)
        else:
            # Listeners are opened before any nursery, so binding errors come out bare.
            trio.run(
                _serve_until_signalled, args, handler, settings, config, keylog, activated, settle
            )


def _make_key_file_for(settings: Settings, target: privileges.Target) -> None:
    """A ticket key file this server makes belongs to the user it will run as, who rotates it
    (an existing one is the operator's: _settle checks that the user can use it)."""
    path = settings.ticket_key_file
    if path is not None and settings.owns_ticket_key_file and create_key_file(path, time.time()):
        os.chown(path, target.uid, target.gid)


def _settle(
    args: argparse.Namespace,
    settings: Settings,
    target: privileges.Target | None,
    at_exit: contextlib.ExitStack,
) -> None:
    """Once listening: check what --user will need, write --pid-file, switch user (in this
    order: the pid file's directory may be root's). Not in a worker: its supervisor did."""
    if args.listen_fd is not None:
        return
    if target is not None:
        _check_reach(args, settings, target)
    if args.pid_file is not None:
        at_exit.callback(pidfile.PidFile(args.pid_file).remove)
    if target is not None:
        privileges.drop(target)
        log.info("serving as user %s (uid %d, gid %d)", target.user, target.uid, target.gid)


def _reload_files(settings: Settings) -> list[str]:
    """What a reload (and a worker, as it starts) reads: certificates, keys, client CAs."""
    if settings.certfiles:
        files = [*settings.certfiles, *settings.keyfiles]
    else:
        files = [str(DEV_CERT_DIR / CERT_FILE), str(DEV_CERT_DIR / KEY_FILE)]
    return files + ([settings.client_ca] if settings.client_ca else [])


def _check_reach(args: argparse.Namespace, settings: Settings, target: privileges.Target) -> None:
    """Refuse what cannot work as the user; warn about what only a reload will miss."""
    user = target.user
    musts: list[tuple[str, int, str]] = []  # path, access, what needs it and the fix
    reload_files = [(path, os.R_OK) for path in _reload_files(settings)]
    if args.workers > 1:
        fix = "make it readable by that user (chgrp and chmod 640), or leave out --workers"
        musts += [
            (path, mode, f"--workers read it as that user; {fix}") for path, mode in reload_files
        ]
        musts.append(
            (
                sys.executable,
                os.X_OK,
                "--workers run it as that user; install trio-tls where "
                "the user can reach it (a venv outside /root), or leave out --workers",
            )
        )
        if keylog_path := (args.key_log_file or os.environ.get("SSLKEYLOGFILE")):
            musts.append((keylog_path, os.W_OK, f"--workers append to it; chown {user} it"))
    path = settings.ticket_key_file
    if path is not None and settings.tickets:
        musts.append((path, os.R_OK, f"it is read again whenever it changes; chown {user} it"))
        if settings.owns_ticket_key_file:
            musts.append(
                (
                    os.path.dirname(os.path.abspath(path)),
                    os.W_OK,
                    f"the hourly rotation "
                    f"replaces {path} there; chown {user} the directory, or rotate it elsewhere "
                    "(--ticket-key-rotation external)",
                )
            )
    blocked = set(privileges.unreachable(target, [(p, mode) for p, mode, _ in musts]))
    for path, mode, why in musts:
        if path in blocked:
            raise UsageError(f"--user {user} cannot {_VERBS[mode]} {path}: {why}")
    if args.workers == 1:
        for path in privileges.unreachable(target, reload_files):
            log.warning(
                "a reload (SIGHUP) reads %s as user %s, who cannot read it: the previous "
                "configuration would keep serving; make it readable by that user (chgrp and "
                "chmod 640), or restart instead of reloading",
                path,
                user,
            )
    if args.pid_file is not None:
        directory = os.path.dirname(os.path.abspath(args.pid_file))
        if privileges.unreachable(target, [(directory, os.W_OK)]):
            log.warning(
                "pid file %s will stay behind at exit: user %s cannot write to %s (harmless: "
                "the next start takes it over; a directory the user owns avoids it, such as "
                "systemd's RuntimeDirectory=)",
                args.pid_file,
                user,
                directory,
            )


_VERBS = {os.R_OK: "read", os.W_OK: "write to", os.X_OK: "run"}


def _open_trace(
    args: argparse.Namespace, keylog: KeyLogFile | None, at_exit: contextlib.ExitStack
) -> IO[str] | None:
    """Where --trace goes: stderr with the log, or --trace-file apart from it (implying
    --trace). A worker writes to its supervisor's, passed down as --trace-fd."""
    if args.trace_fd is not None:
        return at_exit.enter_context(os.fdopen(args.trace_fd, "w", encoding="utf-8"))
    if args.trace_file is None:
        return sys.stderr if args.trace else None
    if args.trace_file == "-":
        return sys.__stdout__  # the trace's alone (_cmd_serve)
    try:
        fd = _open_trace_file(args.trace_file, secrets=keylog is not None)
    except (OSError, SecretFileError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot open --trace-file {args.trace_file}: {reason}") from None
    return at_exit.enter_context(os.fdopen(fd, "w", encoding="utf-8"))  # O_APPEND: appends


def _open_trace_file(path: str, *, secrets: bool) -> int:
    """Appended to, created 0600 (it names clients and, with a key log, holds its secrets).
    With secrets in it, an existing file must be private as the key log must."""
    if secrets:
        return open_for_append(path)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def _warn_about_per_ip_limit(args: argparse.Namespace, activated: Sequence[socket.socket]) -> None:
    """The per-address limit would throttle a load balancer's clients as one (peerlimit.py)."""
    limit = args.max_connections_per_ip
    if limit is None:
        limit = default_limit(args.max_connections)
    hosts = [sock.getsockname()[0] for sock in activated] or args.hosts
    warning = risk_warning(hosts, args.proxy_protocol is not None, limit)
    if warning is not None:
        log.warning("%s", warning)


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
    if isinstance(exc, OSError) and exc.errno == errno.EACCES and 0 < port < 1024:
        reason = (
            f"{reason}: ports under 1024 need privileges; start as root with --user NAME, "
            "grant CAP_NET_BIND_SERVICE (setcap, or systemd's AmbientCapabilities=), or let "
            "systemd bind it (socket activation, README: Deployment)"
        )
    return UsageError(f"cannot listen on {format_address((host, port))}: {reason}")


def _run_workers(
    args: argparse.Namespace,
    settings: Settings,
    activated: Sequence[socket.socket],
    settle: Callable[[], None],
) -> None:
    if len(activated) > 1:
        raise UsageError("--workers serves one socket; give the .socket unit one ListenStream=")
    try:
        sock = activated[0] if activated else workers.bind(args.host, args.port)
    except OSError as exc:
        raise _listen_error(args.host, args.port, exc) from None
    with sock:
        settle()
        worker_args = [*args.argv, "--workers", "1"]
        shared = []
        if args.trace_file is not None:  # one file for all: each worker writes whole lines
            shared.append(os.dup(args.trace_out.fileno()))  # a copy: not 1, which is theirs
            worker_args += ["--trace-fd", str(shared[0])]
        if settings.ticket_key_file is not None:
            # The supervisor owns the file (unless someone else does); workers only read it.
            worker_args += ["--ticket-key-file", settings.ticket_key_file]
            worker_args += ["--ticket-key-rotation", "external"]
        print(
            f"serving handler {args.handler!r} on {_url(*sock.getsockname()[:2])} "
            f"with {args.workers} workers",
            flush=True,
        )
        trio.run(_supervise, worker_args, args.workers, sock, settings, shared)


async def _supervise(
    worker_args: Sequence[str],
    count: int,
    sock: socket.socket,
    settings: Settings,
    shared: Sequence[int],
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
                    worker_args,
                    count,
                    sock,
                    shutdown,
                    SHUTDOWN_GRACE,
                    shared_fds=shared,
                    task_status=task_status,
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
    if args.trace_out is None:
        return None
    json_lines = args.trace_format == "json"
    return tracer(args.trace_out, json_lines=json_lines, reveal_secrets=keylog is not None)


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
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The system said no where no option is to blame (no temporary directory, say): still
        # one line, with the file the system named.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{ERROR_PREFIX}{where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
