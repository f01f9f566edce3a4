"""The `trio-tls` command: serve, certs, handlers, ticket-keys.

Everything a user can get wrong (a missing or unreadable certificate, a wrong key password, a
key that does not match, a port in use, an unknown handler) ends as one line on stderr and a
non-zero exit, never a traceback: those are configuration mistakes, not bugs.

    parser     the subcommands and options
    serve      `trio-tls serve`: from settings to a running server, until a signal stops it
    commands   `trio-tls certs`, `trio-tls handlers`, `trio-tls ticket-keys`

`main` (the `trio-tls` entry point) is here: it parses, dispatches, and turns every operator
mistake into one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..engine.config import CertificateError
from ..ops.plugins import PluginError
from ..ops.settings import UsageError
from ..ops.ticketfile import TicketKeyFileError
from ..server.listen import DEFAULT_HOST
from .commands import cmd_certs, cmd_handlers, cmd_ticket_keys
from .parser import ERROR_PREFIX, build_parser
from .serve import cmd_serve


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.command == "serve":
        args.hosts = args.hosts or [DEFAULT_HOST]
        args.host = args.hosts[0]
    command = {
        "serve": cmd_serve,
        "certs": cmd_certs,
        "handlers": cmd_handlers,
        "ticket-keys": cmd_ticket_keys,
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
