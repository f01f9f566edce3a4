"""What the inspect page shows: one connection's handshake, built from what the engine recorded.

serve() hands a handler that declares `records_handshake = True` the connection's observations
with their times (`stream.handshake_record`, observe/recorder.py; secrets already removed). This
module turns them, and `stream.info`, into one frozen HandshakeReport: the ClientHello decoded
and fingerprinted from the exact bytes received (trio_tls.observe.clienthello), what was
negotiated, the engine's decisions with their reasons (the same Decision events `--trace`
prints), and the ladder: every message, decision, key schedule step, first record and alert in
order, with its time. `to_json()` is the `/json` body; the HTML page (page.py) renders the same
report. Messages are described by trace.py's describe_message and message_section, so the page
and `--trace` read alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from trio_tls.engine.events import (
    AlertObserved,
    ConnectionInfo,
    Decision,
    KeyDerived,
    MessageObserved,
    Observation,
    RecordObserved,
)
from trio_tls.engine.wire.enums import AlertLevel
from trio_tls.engine.wire.messages import ClientHello, Finished
from trio_tls.observe.clienthello import ClientHelloReport, inspect_client_hello, to_json
from trio_tls.observe.trace import describe_message, message_section

Kind = Literal["message", "alert", "decision", "key", "record"]


@attrs.frozen
class Rung:
    """One step of the ladder. Messages and alerts cross between the lanes (`direction` is
    "received" for client to server, "sent" for server to client); decisions, key schedule
    steps and record notes happen on the server (`direction` None)."""

    ms: float  # since the connection began
    kind: Kind
    direction: Literal["received", "sent"] | None
    title: str
    detail: str
    rfc: str
    length: int | None = None  # a message's bytes, its 4-byte header included


@attrs.frozen
class ConnectionSummary:
    """stream.info, as names a person reads (the client certificate as its subject)."""

    version: str
    cipher_suite: str
    group: str | None
    signature_scheme: str | None
    alpn: str | None
    sni: str | None
    resumed: bool
    extended_master_secret: bool
    peer: str | None
    client_certificate: str | None


@attrs.frozen
class HandshakeReport:
    negotiated: (
        ConnectionSummary | None
    )  # None before the handshake completes (never for a handler)
    client_hello: ClientHelloReport | None  # None when the handshake was not recorded
    decisions: tuple[Decision, ...]
    ladder: tuple[Rung, ...]
    handshake_ms: float | None  # until the last Finished, whoever sent it

    def to_json(self) -> dict[str, object]:
        result = to_json(self)
        assert isinstance(result, dict)
        return result


def build_report(
    info: ConnectionInfo | None,
    record: Sequence[tuple[float, Observation]] | None,
    max_entries: int | None = None,
) -> HandshakeReport:
    """The report; `max_entries` caps each list of the ClientHello's (a hostile one holds
    tens of thousands of suites or extensions), and the report says how many it left out."""
    steps = list(record or ())
    finished = [at for at, seen in steps if _is_message(seen, Finished)]
    return HandshakeReport(
        negotiated=_negotiated(info) if info is not None else None,
        client_hello=_client_hello(steps, max_entries),
        decisions=tuple(seen for _, seen in steps if isinstance(seen, Decision)),
        ladder=tuple(rung for at, seen in steps if (rung := _rung(at, seen)) is not None),
        handshake_ms=_ms(max(finished)) if finished else None,
    )


def _is_message(observation: Observation, cls: type) -> bool:
    return isinstance(observation, MessageObserved) and isinstance(observation.message, cls)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _negotiated(info: ConnectionInfo) -> ConnectionSummary:
    return ConnectionSummary(
        version=info.version,
        cipher_suite=info.cipher_suite,
        group=info.group,
        signature_scheme=info.signature_scheme,
        alpn=info.alpn,
        sni=info.sni,
        resumed=info.resumed,
        extended_master_secret=info.extended_master_secret,
        peer=info.peer,
        client_certificate=info.client_subject,
    )


def _client_hello(
    steps: list[tuple[float, Observation]], max_entries: int | None
) -> ClientHelloReport | None:
    """The first ClientHello received, decoded again from its exact bytes (the fingerprints
    must see what the client sent, not a re-encoding)."""
    for _, seen in steps:
        if isinstance(seen, MessageObserved) and isinstance(seen.message, ClientHello):
            return inspect_client_hello(seen.encoded, max_entries=max_entries)
    return None


def _rung(at: float, seen: Observation) -> Rung | None:
    ms = _ms(at)
    if isinstance(seen, MessageObserved):
        message = seen.message
        title = type(message).__name__
        if isinstance(message, ClientHello):  # the page decodes it in full elsewhere
            detail = (
                f"{len(message.cipher_suites)} cipher suites and {len(message.extensions)}"
                " extensions, each decoded under Your ClientHello"
            )
        else:
            detail = describe_message(message)
        rfc = message_section(message)
        return Rung(ms, "message", seen.direction, title, detail, rfc, len(seen.encoded))
    if isinstance(seen, AlertObserved):
        level = "fatal" if seen.level == AlertLevel.fatal else "warning"
        title = f"{level} alert {seen.name}"
        return Rung(ms, "alert", seen.direction, title, seen.reason, "RFC 5246 §7.2")
    if isinstance(seen, Decision):
        return Rung(ms, "decision", None, f"{seen.topic}: {seen.choice}", seen.reason, seen.rfc)
    if isinstance(seen, KeyDerived):
        return Rung(ms, "key", None, seen.name, "", seen.rfc)
    if isinstance(seen, RecordObserved):
        nonce = seen.explicit_nonce.hex() or "none (iv xor sequence number)"
        detail = (
            f"{seen.length} bytes, sequence number {seen.sequence}, nonce {seen.nonce.hex()} "
            f"(sent in clear: {nonce}), additional data {seen.additional_data.hex()}, "
            f"{seen.tag_length}-byte tag"
        )
        rfc = "RFC 5288 §3" if seen.explicit_nonce else "RFC 7905 §2"
        title = f"first application data record {seen.direction}"
        return Rung(ms, "record", None, title, detail, rfc)
    return None  # SecretsEstablished: a recorder never keeps it, and a page never shows it
