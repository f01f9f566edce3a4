"""The handler contract: what serve() runs on each connection once the handshake is done.

A handler is any async callable taking the TLSStream. Besides the call, it may declare two
things, as attributes (a class attribute on a handler class, usually):
- `alpn_protocols`: the protocol names it speaks, most preferred first; the server then offers
  those in ALPN unless `--alpn` says otherwise;
- `records_handshake = True`: serve() then records the handshake's observations for it on
  `stream.handshake_record`.
Both are optional, so a plain `async def` is a handler too. `HandlerTraits.of()` is the one
place that reads them; serve() and the command line use what it returns.
It may also have a `check_config(config)` method, which `trio-tls serve` calls at start with the
server's ServerConfig (ops/plugins.py, check_handler), raising ValueError for options that
could never work under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from .stream import TLSStream


class Handler(Protocol):
    """Serve one connection; the server closes the stream afterwards, whatever happens.

    It may declare `alpn_protocols`, `records_handshake` and `check_config` (the module's
    docstring).
    When the server shuts down it waits `shutdown_grace` seconds for handlers to return, then
    cancels them: clean up in `finally`, and let `trio.Cancelled` through (README, "Writing a
    handler plugin").
    """

    async def __call__(self, stream: TLSStream, /) -> None: ...


@attrs.frozen
class HandlerTraits:
    """What a handler declares besides its call, read once."""

    alpn_protocols: tuple[bytes, ...] = ()
    records_handshake: bool = False

    @classmethod
    def of(cls, handler: Handler) -> HandlerTraits:
        """The handler's declarations; the defaults for what it does not declare."""
        names: Iterable[str] = getattr(handler, "alpn_protocols", ())
        return cls(
            alpn_protocols=tuple(name.encode("ascii") for name in names),
            records_handshake=getattr(handler, "records_handshake", False) is True,
        )


HandlerFactory = Callable[[Mapping[str, str]], Handler]
"""What an entry point names: options in, ready handler out (ValueError on bad options)."""


class AbortConnection(Exception):
    """Raised by a handler to end its connection abortively: a fatal alert rather than
    close_notify, so the client knows the exchange was cut short (an upstream that refused, say).
    The server logs str() as the outcome, without a traceback: the handler knew what happened."""


class HandlerOptions(dict[str, str]):
    """The `--handler-opt` options: as a mapping a later KEY wins; `every(KEY)` gives all of a
    KEY's values in order, for the options a handler lets repeat (the proxy's `route`)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._every: dict[str, list[str]] = {}
        for key, value in pairs:
            self[key] = value
            self._every.setdefault(key, []).append(value)

    def every(self, key: str) -> list[str]:
        return list(self._every.get(key, ()))


def option_values(options: Mapping[str, str], key: str) -> list[str]:
    """Every value given for a repeatable option, whether the options came from the command line
    (HandlerOptions) or from a plain mapping (one value per key)."""
    if isinstance(options, HandlerOptions):
        return options.every(key)
    return [options[key]] if key in options else []
