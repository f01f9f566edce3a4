"""The words of each refusal: the message of the error the engine raises for a hostile input.

The hostile table (test_hostile.py) pins the alert each fault sends; this module pins what the
error *says* for one row of each kind, since an operator reads it: the log line prints it beside
the alert (`failed: decrypt_error (the client's Finished does not verify)`) and the trace shows
it as the reason of the alert we sent. The rows are run again from that table, by id.
"""

from __future__ import annotations

import attrs
import pytest

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.events import AlertObserved, Observation
from trio_tls.engine.sessions import SessionCache, SessionState
from trio_tls.engine.wire.enums import AlertLevel
from trio_tls.engine.wire.errors import RemoteProtocolError

from .scripted_client import ScriptedClient
from .test_hostile import TABLE, ConfigName, advance, configs, drain

__all__ = ["configs"]  # the hostile table's configurations, a fixture

ROWS = {row.id: row for row in TABLE}

MESSAGES = {
    # the record layer (record/framing.py, record/protection.py)
    "unknown-content-type-99": "unknown record content type 99",
    "record-version-tls10-after-server-hello": "record version 0x0301",
    "record-length-0xffff": "record of 65535 bytes",
    "empty-handshake-record": "empty handshake record",
    "client-key-exchange-first": "handshake message of type 16 here",
    "handshake-length-2**24-1": "handshake message type 1 of 16777215 bytes",
    "plaintext-record-2**14+1": "plaintext record of 16385 bytes",
    "plaintext-finished-after-change-cipher-spec": "record too short to hold its nonce and tag",
    "sealed-record-over-2**14": "ciphertext for 16385 bytes of plaintext",
    "flipped-bit-in-sealed-finished": "record authentication failed",
    # the connection (connection.py)
    "33-empty-application-records": "too many empty records in a row",
    "application-data-first": "application data before the handshake finished",
    "alert-of-3-bytes": "alert record is not exactly one alert",
    "five-warning-alerts-after-hello": "too many warning alerts in a row",
    "five-renegotiations-in-a-row": "too many renegotiation attempts in a row",
    # the states (engine/handshake/)
    "change-cipher-spec-first": "ChangeCipherSpec in state ExpectClientHello",
    "second-change-cipher-spec": "ChangeCipherSpec in state ExpectFinished",
    "supported-versions-only-tls13": "supported_versions does not list TLS 1.2",
    "client-version-tls10": "client version 0x0301 is below TLS 1.2",
    "compression-without-null": "the client does not offer null compression",
    "renegotiation-info-not-empty": "renegotiation_info is not empty on an initial handshake",
    "ec-point-formats-without-uncompressed": "the client does not accept uncompressed points",
    "no-common-group": "no ECDHE group in common with the client",
    "no-signature-algorithms": "no signature_algorithms, and the SHA-1 default is not allowed",
    "no-common-suite": "no cipher suite, certificate and signature scheme fit the client",
    "alpn-no-overlap": "none of the client's ALPN protocols is served here",
    "session-id-without-its-suite": "the client offers a session without its cipher suite",
    "client-certificate-required-but-empty": "the client sent no certificate, and one is required",
    "verify-data-of-11-bytes": "Finished verify_data has the wrong length",
    "wrong-verify-data": "the client's Finished does not verify",
}


@pytest.mark.parametrize("row_id", list(MESSAGES))
def test_the_refusal_says_why(row_id: str, configs: dict[ConfigName, ServerConfig]) -> None:
    """Guards the message of each kind of refusal, and that the fatal alert's reason given to
    the observer (the trace) is that same message."""
    row = ROWS[row_id]
    seen: list[Observation] = []
    server = ServerConnection(configs[row.config], seen.append)
    client = ScriptedClient(**row.client)
    advance(server, client, row.phase)
    server.receive_data(row.inject(client))
    with pytest.raises(RemoteProtocolError) as failure:
        drain(server)
    assert str(failure.value) == MESSAGES[row_id]
    fatal = [o for o in seen if isinstance(o, AlertObserved) and o.level == AlertLevel.fatal]
    assert fatal == [AlertObserved("sent", AlertLevel.fatal, row.alert, MESSAGES[row_id])]


def test_refusals_outside_the_table_say_why(rsa_config: ServerConfig) -> None:
    """Guards the messages of two refusals the table does not hold, as they need a config of
    their own: an unknown name under --strict-sni (unrecognized_name), and a session made with
    the extended master secret offered without it (RFC 7627 §5.3: handshake_failure)."""
    strict = attrs.evolve(rsa_config, strict_sni=True)
    server = ServerConnection(strict)
    server.receive_data(ScriptedClient(sni="unknown.example").client_hello())
    with pytest.raises(RemoteProtocolError, match=r"^no certificate for 'unknown\.example'$"):
        drain(server)

    cache = SessionCache()
    cache.store(b"s" * 32, SessionState(0xC02F, bytes(48), True, "localhost", 1e9))
    resuming = attrs.evolve(rsa_config, session_cache=cache, clock=lambda: 1e9)
    server = ServerConnection(resuming)
    server.receive_data(ScriptedClient(ems=False).client_hello(session_id=b"s" * 32))
    with pytest.raises(
        RemoteProtocolError, match=r"^resuming an extended-master-secret session without it$"
    ):
        drain(server)
