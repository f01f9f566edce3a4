"""The `echo` handler: send every chunk back as it arrives, until the client closes.

Useful for testing the TLS layer itself: whatever goes in must come out byte for byte, in any
chunking, which exercises record fragmentation and reassembly in both directions.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from trio_tls.server.handler import Handler

CHUNK = 256 * 1024


def make_handler(options: Mapping[str, str]) -> Handler:
    """The echo handler takes no options; a stray one is a typo worth reporting."""
    if options:
        raise ValueError(f"echo: unknown option {sorted(options)[0]!r} (echo takes no options)")
    return echo


async def echo(stream: trio.abc.Stream) -> None:
    """Echo until EOF; back-pressure comes for free because send_all waits for the peer."""
    while data := await stream.receive_some(CHUNK):
        await stream.send_all(data)
