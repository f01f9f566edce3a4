"""Find connection handlers through the `trio_tls.handlers` entry point group.

A handler (server/handler.py, the contract) is what runs on a connection once the handshake is
done. Any installed distribution can add one by declaring an entry point in this group that
names a *factory*: it receives the `--handler-opt KEY=VALUE` options and returns the async
handler. Going through entry points even for the built-in handlers keeps the core from knowing
any of them by name, so a third-party handler is exactly as first-class as `hello`. Every
failure to find or build a handler becomes a PluginError with a one-line message, because it
surfaces at the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, cast

import attrs

from ..server.handler import Handler, HandlerOptions

if TYPE_CHECKING:
    from ..engine.config import ServerConfig

ENTRY_POINT_GROUP = "trio_tls.handlers"


class PluginError(Exception):
    """A handler could not be found or built; str() is one line naming the handler."""


class UnknownHandlerError(PluginError):
    """No installed distribution declares a handler by that name."""


@attrs.frozen
class HandlerInfo:
    """One discoverable handler, as `trio-tls handlers` shows it."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def _entry_points() -> list[EntryPoint]:
    # Sorted, and first one wins on a duplicate name, so listing and loading always agree.
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def installed_handlers() -> dict[str, HandlerInfo]:
    """All handlers installed in this environment, sorted by name."""
    found: dict[str, HandlerInfo] = {}
    for ep in _entry_points():
        dist = ep.dist
        found.setdefault(
            ep.name,
            HandlerInfo(
                name=ep.name,
                value=ep.value,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
            ),
        )
    return found


def load_handler(name: str, options: Mapping[str, str] | None = None) -> Handler:
    """Import the named handler's factory and build the handler with options."""
    matches = [ep for ep in _entry_points() if ep.name == name]
    if not matches:
        installed = ", ".join(installed_handlers()) or "none"
        raise UnknownHandlerError(f"unknown handler {name!r}; installed: {installed}")
    ep = matches[0]
    try:
        factory = ep.load()
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot load handler {name!r} ({ep.value}): {exc}") from exc
    if not callable(factory):
        raise PluginError(f"handler {name!r} ({ep.value}) is not a callable factory")
    try:
        if not isinstance(options, HandlerOptions):
            options = HandlerOptions((options or {}).items())
        handler = factory(options)
    except (ValueError, TypeError) as exc:
        raise PluginError(f"cannot create handler {name!r}: {exc}") from exc
    if not callable(handler):
        raise PluginError(
            f"handler {name!r} factory returned {type(handler).__name__}, not a callable"
        )
    return cast(Handler, handler)


def check_handler(handler: Handler, config: ServerConfig) -> None:
    """The handler's own start-up check against the server's settings, if it has one (the
    proxy refuses a route that could never match): PluginError, one line, before listening."""
    check = getattr(handler, "check_config", None)
    if check is None:
        return
    try:
        check(config)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc


def parse_handler_options(pairs: Iterable[str]) -> HandlerOptions:
    """Turn repeated `KEY=VALUE` strings into options; a later KEY overrides an earlier one.

    Only the first `=` splits, so values may contain `=` (a base64 token, a query string).
    """
    options: list[tuple[str, str]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"handler option {pair!r} is not KEY=VALUE")
        if not key:
            raise ValueError(f"handler option {pair!r} has an empty key")
        options.append((key, value))
    return HandlerOptions(options)
