"""`trio-tls serve`: settings to config, listeners, workers, signals, reload, until stopped."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

import attrs
import trio

from ..engine.config import ServerConfig
from ..engine.events import Observer
from ..observe.trace import tracer
from ..ops import pidfile, privileges, systemd, workers
from ..ops.certs import CERT_FILE, KEY_FILE
from ..ops.descriptors import ensure_descriptors
from ..ops.keylog import KeyLogFile
from ..ops.plugins import check_handler, load_handler, parse_handler_options
from ..ops.reload import ConfigHolder
from ..ops.secretfiles import SecretFileError, open_for_append, will_run_as
from ..ops.settings import DEV_CERT_DIR, Notice, Settings, UsageError, build_config
from ..ops.shutdown import SIGNALS, Shutdown, ignore_hangups, watch_signals
from ..ops.ticketfile import FileTicketKeys, create_key_file, keep_rotating
from ..server.addresses import format_address
from ..server.handler import Handler, HandlerTraits
from ..server.listen import serve
from ..server.peerlimit import default_limit, risk_warning
from .parser import PROXY_PROTOCOL_VERSIONS

log = logging.getLogger("trio_tls")
SHUTDOWN_GRACE = 5.0


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        certfiles=args.certfile,
        keyfiles=args.keyfile,
        keyfile_password_env=args.keyfile_password_env,
        tls_versions=args.tls_versions,
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
    )


def _tell(notices: Sequence[Notice], *, news: bool = True) -> None:
    """Say what settings found: warnings to the log, news (fingerprints) on stdout. A reload
    gives only its warnings: its log line already names the new certificates."""
    for notice in notices:
        if notice.warning:
            log.warning("%s", notice.text)
        elif news:
            print(notice.text)


def _reloaded(settings: Settings, handler: Handler) -> ServerConfig:
    config, notices = build_config(settings, HandlerTraits.of(handler).alpn_protocols)
    _tell(notices, news=False)
    return config


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
        await holder.reload(lambda: _reloaded(settings, handler))
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
                urls = " and ".join(https_url(*lst.socket.getsockname()[:2]) for lst in listeners)
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


def cmd_serve(args: argparse.Namespace) -> None:
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
        config, notices = build_config(settings, HandlerTraits.of(handler).alpn_protocols)
        if args.listen_fd is None:  # a worker's supervisor has said it all already
            _tell(notices)
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
        return sys.__stdout__  # the trace's alone (cmd_serve)
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
            f"serving handler {args.handler!r} on {https_url(*sock.getsockname()[:2])} "
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


def _tracer(
    args: argparse.Namespace, keylog: KeyLogFile | None
) -> Callable[[str], Observer] | None:
    if args.trace_out is None:
        return None
    json_lines = args.trace_format == "json"
    return tracer(args.trace_out, json_lines=json_lines, reveal_secrets=keylog is not None)


def https_url(host: str, port: int) -> str:
    return f"https://{format_address((host, port))}/"
