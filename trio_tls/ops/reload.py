"""Reload without downtime: new handshakes get the configuration read now, open ones keep theirs.

SIGHUP (or the supervisor's reload order to its workers, workers.py) re-reads every file the
configuration came from: certificates, keys, ticket keys, and whatever settings.build_config
reads besides. serve() asks the ConfigHolder for the current ServerConfig once per connection,
when it arrives, so a connection keeps the config it started with and a reload costs new
handshakes one attribute read. A file that fails to load is logged, and the previous
configuration keeps serving: a typo during a certificate renewal must not take the site down.

The files are read on a thread, never on the event loop, so handshakes go on meanwhile however
slow the disk; and a file that is not a regular one (a FIFO, a device) is refused rather than
waited on (secretfiles.open_regular). A reload that still takes longer than RELOAD_TIMEOUT (a
hung network file system) is given up, its thread abandoned: the signals that come after it,
SIGTERM among them, are not kept waiting any longer.

Two things carry over instead of being rebuilt, because rebuilding would forget state that
clients hold: the session cache, and the ticket keys object. In-memory keys would be new ones
that open no ticket issued so far; file keys already follow their file (ticketfile.py), so the
reload only checks that the file still loads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import trio

from ..engine.config import CertificateError, ServerConfig
from .certs import fingerprint_sha256
from .secretfiles import SecretFileError
from .settings import UsageError
from .ticketfile import TicketKeyFileError

log = logging.getLogger("trio_tls")

# What a broken file raises while the configuration is built: the operator's mistake, one line.
FILE_ERRORS = (UsageError, CertificateError, SecretFileError, TicketKeyFileError, OSError)
RELOAD_TIMEOUT = 10.0


class ConfigHolder:
    """The current ServerConfig; call it to get it (what serve() takes as `config`)."""

    def __init__(self, config: ServerConfig) -> None:
        self.current = config

    def __call__(self) -> ServerConfig:
        return self.current

    async def reload(self, build: Callable[[], ServerConfig]) -> bool:
        """Swap in `build()`'s configuration (built on a thread) for new handshakes; on failure
        keep the old one."""
        try:
            with trio.fail_after(RELOAD_TIMEOUT):
                fresh = await trio.to_thread.run_sync(build, abandon_on_cancel=True)
        except trio.TooSlowError:
            log.error(  # noqa: TRY400
                "reload failed, still serving the previous configuration: reading the files "
                "took more than %g seconds",
                RELOAD_TIMEOUT,
            )
            return False
        except FILE_ERRORS as exc:
            # One line, no traceback: the operator's file is wrong, not the server.
            log.error("reload failed, still serving the previous configuration: %s", exc)  # noqa: TRY400
            return False
        except Exception:
            log.exception("reload failed, still serving the previous configuration")
            return False
        self.current = attrs.evolve(
            fresh,
            session_cache=self.current.session_cache,
            ticket_keys=self.current.ticket_keys,
        )
        fingerprints = ", ".join(fingerprint_sha256(c.chain[0]) for c in fresh.certificates)
        log.info("reloaded: new handshakes use certificates %s", fingerprints)
        return True
