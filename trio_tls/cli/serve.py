"""`trio-tls serve`: settings to config, listeners, workers, signals, reload, until stopped."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence

import attrs
import trio

from ..engine.config import ServerConfig
from ..engine.events import Observer
from ..observe.trace import tracer
from ..ops import systemd, workers
from ..ops.descriptors import ensure_descriptors
from ..ops.keylog import KeyLogFile
from ..ops.plugins import load_handler, parse_handler_options
from ..ops.reload import ConfigHolder
from ..ops.secretfiles import SecretFileError
from ..ops.settings import Notice, Settings, UsageError, build_config
from ..ops.shutdown import SIGNALS, Shutdown, ignore_hangups, watch_signals
from ..ops.ticketfile import FileTicketKeys, keep_rotating
from ..server.addresses import format_address
from ..server.handler import Handler, HandlerTraits
from ..server.listen import serve
from .parser import PROXY_PROTOCOL_VERSIONS

log = logging.getLogger("trio_tls")
SHUTDOWN_GRACE = 5.0


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
        holder.reload(lambda: _reloaded(settings, handler))
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
    with tempfile.TemporaryDirectory(prefix="trio-tls-") as private_dir:
        if args.workers > 1 and settings.tickets and settings.ticket_key_file is None:
            # One key file for all workers, so a ticket resumes on any of them.
            key_file = os.path.join(private_dir, "tickets.keys")
            settings = attrs.evolve(settings, ticket_key_file=key_file)
        config, notices = build_config(settings, HandlerTraits.of(handler).alpn_protocols)
        if args.listen_fd is None:  # a worker's supervisor has said it all already
            _tell(notices)
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
            f"serving handler {args.handler!r} on {https_url(*sock.getsockname()[:2])} "
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


def _tracer(
    args: argparse.Namespace, keylog: KeyLogFile | None
) -> Callable[[str], Observer] | None:
    if not args.trace:
        return None
    json_lines = args.trace_format == "json"
    return tracer(sys.stderr, json_lines=json_lines, reveal_secrets=keylog is not None)


def https_url(host: str, port: int) -> str:
    return f"https://{format_address((host, port))}/"
