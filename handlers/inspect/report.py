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

import types
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
from trio_tls.engine.wire.extensions import KeyShare, KeyShareRetry, KeyShareServer
from trio_tls.engine.wire.messages import ClientHello, Finished, ServerHello
from trio_tls.engine.wire.messages13 import Finished13
from trio_tls.observe.clienthello import ClientHelloReport, inspect_client_hello, to_json
from trio_tls.observe.ladder13 import KEY_STEPS, Epochs, group_name, is_tls13_server_hello
from trio_tls.observe.trace import (
    alert_section,
    describe_message,
    message_section,
    message_title,
    record_section,
)

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
    # TLS 1.3: the traffic keys that encrypted the message, "handshake" or "application"
    # (RFC 8446 §7.3); None for what went in clear, and in TLS 1.2.
    keys: str | None = None


@attrs.frozen
class Share:
    """One key share (RFC 8446 §4.2.8): its group's name and the size of its key_exchange."""

    group: str
    length: int


@attrs.frozen
class KeyExchange:
    """How a TLS 1.3 key exchange went: the shares of the client's first ClientHello, the group a
    HelloRetryRequest asked for (None when the first hello had a share the server took) and the
    shares of the second hello, then the group chosen and the server's share of it. An
    X25519MLKEM768 share is 1,216 bytes from the client (an ML-KEM-768 encapsulation key and an
    X25519 key) and 1,120 from the server (a ciphertext and an X25519 key)."""

    offered: tuple[Share, ...]
    hello_retry_request: str | None
    offered_again: tuple[Share, ...]
    group: str | None
    server_share: Share | None


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
    key_exchange: KeyExchange | None = None  # TLS 1.3 only

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
    finished = [at for at, seen in steps if _is_message(seen, Finished | Finished13)]
    return HandshakeReport(
        negotiated=_negotiated(info) if info is not None else None,
        client_hello=_client_hello(steps, max_entries),
        decisions=tuple(seen for _, seen in steps if isinstance(seen, Decision)),
        ladder=_ladder(steps),
        handshake_ms=_ms(max(finished)) if finished else None,
        key_exchange=_key_exchange(steps, max_entries),
    )


def _is_message(observation: Observation, cls: type | types.UnionType) -> bool:
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


def _key_exchange(
    steps: list[tuple[float, Observation]], max_entries: int | None
) -> KeyExchange | None:
    """The key shares each way, read from the hellos (None unless the server chose TLS 1.3)."""
    messages = [seen.message for _, seen in steps if isinstance(seen, MessageObserved)]
    hellos = [m for m in messages if isinstance(m, ClientHello)]
    answers = [m for m in messages if isinstance(m, ServerHello)]
    if not hellos or not answers or not is_tls13_server_hello(answers[0]):
        return None
    retry = answers[0].extensions.get(KeyShareRetry)
    chosen = answers[-1].extensions.get(KeyShareServer)
    server_share = _share(chosen.entry.group, chosen.entry.key_exchange) if chosen else None
    return KeyExchange(
        offered=_shares(hellos[0], max_entries),
        hello_retry_request=group_name(retry.selected_group) if retry else None,
        offered_again=_shares(hellos[1], max_entries) if retry and len(hellos) > 1 else (),
        group=server_share.group if server_share else None,
        server_share=server_share,
    )


def _shares(hello: ClientHello, max_entries: int | None) -> tuple[Share, ...]:
    """Its key shares, at most `max_entries` (Your ClientHello counts any left out)."""
    found = hello.extension(KeyShare)
    shares = found.shares[:max_entries] if found else ()
    return tuple(_share(share.group, share.key_exchange) for share in shares)


def _share(group: int, key_exchange: bytes) -> Share:
    return Share(group_name(group), len(key_exchange))


def _ladder(steps: list[tuple[float, Observation]]) -> tuple[Rung, ...]:
    """The rungs in order, each in the terms of the version chosen by then."""
    epochs = Epochs()
    rungs = []
    for at, seen in steps:
        keys = epochs.follow(seen)
        rung = _rung(at, seen, epochs.tls13, keys)
        if rung is not None:
            rungs.append(rung)
    return tuple(rungs)


def _rung(at: float, seen: Observation, tls13: bool, keys: str | None) -> Rung | None:
    ms = _ms(at)
    if isinstance(seen, MessageObserved):
        message = seen.message
        title = message_title(message, tls13)
        if isinstance(message, ClientHello):  # the page decodes it in full elsewhere
            detail = (
                f"{len(message.cipher_suites)} cipher suites and {len(message.extensions)}"
                " extensions, each decoded under Your ClientHello"
            )
        else:
            detail = describe_message(message, tls13, seen.direction)
        rfc = message_section(message, tls13)
        size = len(seen.encoded)
        return Rung(ms, "message", seen.direction, title, detail, rfc, size, keys)
    if isinstance(seen, AlertObserved):
        level = "fatal" if seen.level == AlertLevel.fatal else "warning"
        title = f"{level} alert {seen.name}"
        return Rung(ms, "alert", seen.direction, title, seen.reason, alert_section(tls13))
    if isinstance(seen, Decision):
        return Rung(ms, "decision", None, f"{seen.topic}: {seen.choice}", seen.reason, seen.rfc)
    if isinstance(seen, KeyDerived):
        return Rung(ms, "key", None, seen.name, KEY_STEPS.get(seen.name, ""), seen.rfc)
    if isinstance(seen, RecordObserved):
        nonce = seen.explicit_nonce.hex() or "none (iv xor sequence number)"
        detail = (
            f"{seen.length} bytes, sequence number {seen.sequence}, nonce {seen.nonce.hex()} "
            f"(sent in clear: {nonce}), additional data {seen.additional_data.hex()}, "
            f"{seen.tag_length}-byte tag"
        )
        rfc = record_section(seen, tls13)
        title = f"first application data record {seen.direction}"
        return Rung(ms, "record", None, title, detail, rfc)
    return None  # SecretsEstablished: a recorder never keeps it, and a page never shows it
