"""The per-connection log line's outcome (connlog.describe_failure): each cause in its words.

test_server.py checks whole lines as serve() writes them; here each branch is pinned down,
including the ones a real connection reaches only rarely (a transport error with no TLS cause).
"""

from __future__ import annotations

import pytest
import trio

from trio_tls.engine.events import AlertReceived, ConnectionInfo
from trio_tls.engine.wire.enums import AlertDescription, AlertLevel
from trio_tls.engine.wire.errors import RemoteProtocolError, UnexpectedMessage
from trio_tls.server.connection_log import connection_line, describe_failure, handshake_line
from trio_tls.server.deadlines import IdleTimeout, WriteTimeout
from trio_tls.server.stream import PeerAlert, PeerClosed


def broken_by(cause: BaseException) -> trio.BrokenResourceError:
    """What TLSStream raises: BrokenResourceError with the cause chained, maybe twice."""
    broken = trio.BrokenResourceError(str(cause))
    broken.__cause__ = cause
    return broken


@pytest.mark.parametrize(
    ("cause", "handshake_done", "outcome"),
    [
        (
            UnexpectedMessage("unknown record content type 153"),
            False,
            "failed: unexpected_message (unknown record content type 153)",
        ),
        (
            RemoteProtocolError("the transport closed during the handshake", alert=None),
            False,
            "failed: no alert (the transport closed during the handshake)",
        ),
        (
            IdleTimeout("no data from the peer for 60 s"),
            True,
            "idle timeout (no data from the peer for 60 s)",
        ),
        (
            WriteTimeout("the peer took nothing for 30 s"),
            True,
            "write timeout (the peer took nothing for 30 s)",
        ),
        (PeerClosed("the peer closed the connection"), True, "closed by the peer"),
        (
            PeerClosed("the peer closed the connection during the handshake"),
            False,
            "failed: the peer closed the connection during the handshake",
        ),
        (
            PeerAlert(AlertReceived(AlertLevel.fatal, AlertDescription.unknown_ca)),
            True,
            "failed: the peer sent a fatal unknown_ca alert",
        ),
    ],
)
def test_each_cause_is_named(cause: BaseException, handshake_done: bool, outcome: str) -> None:
    """Guards each known cause's branch of describe_failure: the outcome names the first cause
    it knows in the chain (our alert, a deadline, the peer's close or its alert)."""
    assert describe_failure(cause, handshake_done=handshake_done) == outcome
    assert describe_failure(broken_by(cause), handshake_done=handshake_done) == outcome
    assert describe_failure(broken_by(broken_by(cause)), handshake_done=handshake_done) == outcome


@pytest.mark.parametrize("handshake_done", [False, True])
def test_an_unknown_cause_is_named_by_the_error_itself(handshake_done: bool) -> None:
    """Guards the fallback of describe_failure: with no cause it knows (a transport error, a
    bug), the outcome is the error's own message."""
    reset = broken_by(ConnectionResetError("Connection reset by peer"))
    assert describe_failure(reset, handshake_done=handshake_done) == (
        "failed: Connection reset by peer"
    )


def test_an_error_without_a_message_is_named_by_its_type() -> None:
    """Guards the fallback's fallback: an error with an empty message is named by its type."""
    bare = trio.BrokenResourceError()
    bare.__cause__ = OSError()
    assert describe_failure(bare, handshake_done=True) == "failed: BrokenResourceError"


def test_the_outermost_known_cause_wins() -> None:
    """Guards the walk down the chain: a protocol error that a transport error caused is
    reported as the protocol error, the first cause found from the outside in."""
    inner = PeerClosed("the peer closed the connection")
    outer = UnexpectedMessage("the transport closed in the middle of a record")
    outer.__cause__ = inner
    assert describe_failure(broken_by(outer), handshake_done=True) == (
        "failed: unexpected_message (the transport closed in the middle of a record)"
    )


def test_the_line_shows_what_the_peer_chose_escaped() -> None:
    """SNI, ALPN, the client's subject and an outcome quoting the peer cannot break the line
    or reach the terminal raw (engine/wire/printable.py)."""
    hostile = "x\n2026-12-07 10:00:00 INFO forged\x1b[2J"
    info = ConnectionInfo(
        version="TLSv1.2",
        cipher_suite="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        sni=hostile,
        alpn=hostile,
        resumed=False,
        extended_master_secret=True,
        group="x25519",
        signature_scheme="rsa_pss_rsae_sha256",
        client_subject="CN=x\\x0a",
    )
    outcome = describe_failure(broken_by(UnexpectedMessage(hostile)), handshake_done=True)
    for line in (
        connection_line("127.0.0.1:1", info, 1, 2, 0.5, outcome),
        handshake_line("127.0.0.1:1", info, 0.5),
    ):
        assert line.isprintable(), line
        assert "x\\x0a2026-12-07 10:00:00 INFO forged\\x1b[2J" in line
    assert "client='CN=x\\x0a'" in connection_line("p", info, 1, 2, 0.5, "closed")
