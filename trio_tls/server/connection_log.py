"""The per-connection log line: who connected, what was negotiated, how much moved, how long it
took, and how it ended, in words an operator can act on.

An outcome names its cause: the alert we sent (by its RFC name), the alert the client sent (a
client that rejects our certificate says `unknown_ca` or `bad_certificate`), the deadline that
passed, or the handler's error. A client that closes without close_notify after the handshake is
not a failure: browsers and Python's ssl do it all the time. What the peer chose (SNI, ALPN,
its certificate's subject, text its messages put into an error) is escaped (wire/printable.py).
"""

from __future__ import annotations

from ..engine.events import ConnectionInfo
from ..engine.wire.errors import TLSError
from ..engine.wire.printable import printable
from .deadlines import StreamTimeout
from .stream import PeerAlert, PeerClosed


def describe_failure(exc: BaseException, *, handshake_done: bool) -> str:
    """The outcome of a connection whose stream broke with `exc`."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TLSError):
            alert = cause.alert.name if cause.alert is not None else "no alert"
            return f"failed: {alert} ({cause})"
        if isinstance(cause, StreamTimeout):
            return f"{cause.kind} timeout ({cause})"
        if isinstance(cause, PeerClosed):
            return "closed by the peer" if handshake_done else f"failed: {cause}"
        if isinstance(cause, PeerAlert):
            return f"failed: {cause}"
        cause = cause.__cause__
    return f"failed: {str(exc) or type(exc).__name__}"


def connection_line(
    peer: str,
    info: ConnectionInfo | None,
    received: int,
    sent: int,
    seconds: float,
    outcome: str,
    requested_sni: str | None = None,
) -> str:
    """`peer sni=… alpn=… suite=… resumed=… in=… out=… time=…: outcome` (- when unknown).

    Without a handshake, sni= is what the client's ClientHello asked for, if it got that far."""
    if info is None:
        negotiated = f"sni={requested_sni or '-'} alpn=- suite=- resumed=-"
    else:
        negotiated = (
            f"sni={_shown(info.sni)} alpn={_shown(info.alpn)} suite={info.cipher_suite} "
            f"resumed={'yes' if info.resumed else 'no'}"
        )
        if info.client_subject is not None:
            negotiated += f" client='{info.client_subject}'"
    return (
        f"{peer} {negotiated} in={received} out={sent} time={seconds * 1000:.1f}ms: "
        f"{printable(outcome)}"
    )


def _shown(value: str | None) -> str:
    """A peer's choice as the log shows it: escaped (wire/printable.py), `-` when there is none."""
    return printable(value) if value else "-"


def handshake_line(peer: str, info: ConnectionInfo, seconds: float) -> str:
    """The DEBUG line after a handshake: everything negotiated, and how long it took."""
    return (
        f"{peer} handshake in {seconds * 1000:.1f}ms: {info.version} {info.cipher_suite} "
        f"group={info.group or '-'} signature={info.signature_scheme or '-'} "
        f"sni={_shown(info.sni)} alpn={_shown(info.alpn)} resumed={info.resumed} "
        f"extended_master_secret={info.extended_master_secret}"
    )
