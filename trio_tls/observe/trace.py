"""`--trace`: each connection's handshake as an annotated ladder, built on the engine's observer.

The engine reports facts as data (events.py: messages with their bytes, decisions with their
reasons, key schedule steps, the first record each way, alerts); this module only formats
them, one line per event, prefixed with the peer so that connections running at once stay
apart. Messages read as the RFC 5246 §7.3 diagram does: `C -> S` for what the client sent,
`C <- S` for ours, with their key fields named and the RFC section beside each. Once the server
has chosen TLS 1.3, the lines follow RFC 8446 instead (ladder13.py): its sections, its message
names, and the traffic keys that encrypt each message.

Secret values (the pre-master and master secrets, keys, IVs) are shown only when key logging is
on (`reveal_secrets`): whoever reads such a trace can decrypt the connection, exactly as with
the key log itself. The text form is coloured on a terminal; the JSON form writes one object per
event (schema in the README) for tools. What the client sent (its ALPN list, its certificate's
subject, text quoted in a reason) is escaped in the text form (wire/printable.py) and by json.dumps
in the JSON form, so a hostile peer can neither forge a line nor drive the terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sized
from typing import IO, Any

from ..engine.events import (
    AlertObserved,
    Decision,
    Direction,
    KeyDerived,
    MessageObserved,
    Observation,
    Observer,
    RecordObserved,
)
from ..engine.wire.extensions import (
    ApplicationLayerProtocolNegotiation,
    EarlyData,
    ExtendedMasterSecret,
    KeyShare,
    PreSharedKey,
    PskKeyExchangeModes,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
)
from ..engine.wire.messages import (
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ChangeCipherSpec,
    ClientHello,
    ClientKeyExchange,
    Finished,
    NewSessionTicket,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
)
from ..engine.wire.printable import byte_count, printable
from . import iana, ladder13

# The RFC section that defines each message, shown beside it.
_SECTIONS: dict[type, str] = {
    ClientHello: "RFC 5246 §7.4.1.2",
    ServerHello: "RFC 5246 §7.4.1.3",
    Certificate: "RFC 5246 §7.4.2",
    ServerKeyExchange: "RFC 8422 §5.4",
    CertificateRequest: "RFC 5246 §7.4.4",
    ServerHelloDone: "RFC 5246 §7.4.5",
    ClientKeyExchange: "RFC 8422 §5.7",
    CertificateVerify: "RFC 5246 §7.4.8",
    NewSessionTicket: "RFC 5077 §3.3",
    Finished: "RFC 5246 §7.4.9",
    ChangeCipherSpec: "RFC 5246 §7.1",
}


def message_section(message: object, tls13: bool = False) -> str:
    """The RFC section that defines a handshake message ("" for one not in the table), in the
    version the server chose (a ClientHello offering 1.3 is RFC 8446's either way)."""
    if tls13 or ladder13.is_tls13_server_hello(message):
        return ladder13.section(message)
    if isinstance(message, ClientHello) and ladder13.offers_tls13(message):
        return ladder13.SECTIONS[ClientHello]
    return _SECTIONS.get(type(message), "")


def message_title(message: object, tls13: bool = False) -> str:
    """The message's name as its RFC spells it (a HelloRetryRequest is a ServerHello)."""
    return ladder13.title(message) if tls13 else type(message).__name__


def alert_section(tls13: bool) -> str:
    return ladder13.ALERT_SECTION if tls13 else "RFC 5246 §7.2"


def record_section(observation: RecordObserved, tls13: bool) -> str:
    if tls13:
        return ladder13.RECORD_SECTION
    return "RFC 5288 §3" if observation.explicit_nonce else "RFC 7905 §2"


_COLOURS = {"C -> S": "36", "C <- S": "32", "why": "33", "key": "35", "record": "34", "alert": "31"}


# A hostile hello lists 32,767 suites or 16,383 extensions: the trace names the first ones.
MAX_NAMES = 64


def _names(values: tuple[int, ...], name: Callable[[int], iana.Code]) -> str:
    return _listed([ladder13.code_name(code) for code in map(name, values[:MAX_NAMES])], values)


def _listed(labels: list[str], values: Sized) -> str:
    """The first MAX_NAMES labels of `values`, and how many more there are."""
    named = ", ".join(labels[:MAX_NAMES])
    more = len(values) - MAX_NAMES
    return f"{named}, ... and {more} more" if more > 0 else named


def _tls13_offers(hello: ClientHello) -> list[str]:
    """What a ClientHello offering TLS 1.3 adds: versions, key shares (§4.2.8), PSK."""
    versions = hello.extension(SupportedVersions)
    assert versions is not None
    parts = [f"supported_versions: {_names(versions.versions, iana.version)}"]
    found = hello.extension(KeyShare)
    if found is not None:
        shares = [
            f"{ladder13.group_name(share.group)} ({byte_count(len(share.key_exchange))})"
            for share in found.shares[:MAX_NAMES]
        ]
        parts.append(f"key shares: {_listed(shares, found.shares) or 'none (the server picks)'}")
    modes = hello.extension(PskKeyExchangeModes)
    if modes is not None:
        parts.append(f"psk modes: {_names(modes.modes, iana.psk_key_exchange_mode)}")
    psk = hello.extension(PreSharedKey)
    if psk is not None:
        parts.append(f"pre_shared_key: {len(psk.identities)} identity(ies) with binders")
    if hello.extension(EarlyData) is not None:
        parts.append("early_data (refused: skipped)")
    return parts


def describe_message(
    message: object, tls13: bool = False, direction: Direction = "received"
) -> str:
    """The fields of a handshake message that a student would look for, in one line."""
    if tls13 or ladder13.is_tls13_server_hello(message):
        described = ladder13.describe(message, direction)
        if described is not None:
            return described
    if isinstance(message, ClientHello):
        suites = _names(message.cipher_suites, iana.cipher_suite)
        types = message.extensions.types()
        offers_tls13 = ladder13.offers_tls13(message)
        version = "legacy_version" if offers_tls13 else "client_version"
        parts = [
            f"{version} {message.client_version:#06x}",
            f"{len(message.cipher_suites)} suites: {suites}",
            f"extensions: {_names(types, iana.extension)}",
        ]
        if offers_tls13:
            parts += _tls13_offers(message)
        groups = message.extension(SupportedGroups)
        if groups is not None:
            parts.append(f"groups: {_names(groups.groups, iana.group)}")
        schemes = message.extension(SignatureAlgorithms)
        if schemes is not None:
            parts.append(f"signature schemes: {_names(schemes.schemes, iana.signature_scheme)}")
        sni = message.extension(ServerName)
        if sni is not None and sni.host_name:
            parts.append(f"SNI {sni.host_name}")
        alpn = message.extension(ApplicationLayerProtocolNegotiation)
        if alpn is not None:
            parts.append("ALPN " + ", ".join(printable(p) for p in alpn.protocols))
        flags = [
            name
            for name, cls in (
                ("extended_master_secret", ExtendedMasterSecret),
                ("renegotiation_info", RenegotiationInfo),
                ("session_ticket", SessionTicket),
            )
            if message.extension(cls) is not None
        ]
        if flags:
            parts.append("offers " + ", ".join(flags))
        if message.session_id:
            parts.append(f"session_id of {byte_count(len(message.session_id))}")
        return "; ".join(parts)
    if isinstance(message, ServerHello):
        extensions = _names(tuple(e.extension_type for e in message.extensions), iana.extension)
        sent = message.session_id
        session = f"; session_id of {byte_count(len(sent))}" if sent else ""
        suite = iana.cipher_suite(message.cipher_suite).name
        return f"{suite}; extensions: {extensions or 'none'}{session}"
    if isinstance(message, Certificate):
        return f"{len(message.certificate_list)} certificate(s), " + ", ".join(
            byte_count(len(der)) for der in message.certificate_list
        )
    if isinstance(message, ServerKeyExchange):
        return (
            f"{iana.group(message.named_curve).name} public key of "
            f"{byte_count(len(message.public))}, "
            f"signed with {iana.signature_scheme(message.signature_scheme).name} "
            f"({byte_count(len(message.signature))}) over both randoms and the parameters"
        )
    if isinstance(message, CertificateRequest):
        return (
            f"types {list(message.certificate_types)}; "
            f"{len(message.supported_signature_algorithms)} schemes; "
            f"{len(message.certificate_authorities)} CA name(s)"
        )
    if isinstance(message, ClientKeyExchange):
        return f"the client's ECDHE public key, {byte_count(len(message.public))}"
    if isinstance(message, CertificateVerify):
        scheme = iana.signature_scheme(message.signature_scheme).name
        return f"{scheme} signature over every handshake message so far"
    if isinstance(message, NewSessionTicket):
        size = byte_count(len(message.ticket))
        return f"ticket of {size}, lifetime hint {message.lifetime_hint} s"
    if isinstance(message, ChangeCipherSpec):
        return "every record after this one is protected with the new keys"
    if isinstance(message, Finished):
        size = byte_count(len(message.verify_data))
        return f"verify_data of {size} (PRF over the transcript hash)"
    return "empty"


class HandshakeTrace:
    """An observer for one connection that writes its ladder to `out` as events happen."""

    def __init__(
        self,
        peer: str,
        out: IO[str],
        *,
        json_lines: bool = False,
        reveal_secrets: bool = False,
        colour: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._peer = peer
        self._out = out
        self._json = json_lines
        self._reveal = reveal_secrets
        self._colour = out.isatty() if colour is None else colour
        self._clock = clock
        self._start = clock()
        self._epochs = ladder13.Epochs()

    def __call__(self, observation: Observation) -> None:
        entry = self._entry(observation)
        if entry is None:
            return
        entry = {"peer": self._peer, "ms": round((self._clock() - self._start) * 1000, 1), **entry}
        if self._json:
            self._out.write(json.dumps(entry) + "\n")
        else:
            self._out.write(self._text(entry) + "\n")
        self._out.flush()

    def _entry(self, observation: Observation) -> dict[str, Any] | None:
        keys = self._epochs.follow(observation)
        tls13 = self._epochs.tls13
        if isinstance(observation, MessageObserved):
            message, direction = observation.message, observation.direction
            entry = {
                "event": "message",
                "arrow": "C -> S" if direction == "received" else "C <- S",
                "message": message_title(message, tls13),
                "bytes": len(observation.encoded),
                "details": describe_message(message, tls13, direction),
                "rfc": message_section(message, tls13),
            }
            if keys is not None:  # TLS 1.3: which traffic keys encrypt it (§7.3)
                entry["keys"] = keys
            return entry
        if isinstance(observation, Decision):
            return {
                "event": "decision",
                "topic": observation.topic,
                "choice": observation.choice,
                "reason": observation.reason,
                "rfc": observation.rfc,
            }
        if isinstance(observation, KeyDerived):
            value = observation.value
            shown = value.hex() if self._reveal and value is not None else None
            return {
                "event": "key",
                "name": observation.name,
                "value": shown,
                "rfc": observation.rfc,
            }
        if isinstance(observation, RecordObserved):
            return {
                "event": "record",
                "direction": observation.direction,
                "length": observation.length,
                "sequence": observation.sequence,
                "nonce": observation.nonce.hex(),
                "explicit_nonce": observation.explicit_nonce.hex(),
                "additional_data": observation.additional_data.hex(),
                "tag_length": observation.tag_length,
                "rfc": record_section(observation, tls13),
            }
        if isinstance(observation, AlertObserved):
            return {
                "event": "alert",
                "direction": observation.direction,
                "level": "fatal" if observation.level == 2 else "warning",
                "alert": observation.name,
                "reason": observation.reason,
                "rfc": alert_section(tls13),
            }
        return None  # SecretsEstablished: the key log's business

    def _text(self, entry: dict[str, Any]) -> str:
        kind = entry["event"]
        if kind == "message":
            tag = entry["arrow"]
            keys = f", encrypted with the {entry['keys']} keys" if "keys" in entry else ""
            size = byte_count(entry["bytes"])
            body = f"{entry['message']} ({size}{keys}): {entry['details']}"
        elif kind == "decision":
            tag = "why"
            body = f"{entry['topic']}: {entry['choice']} — {entry['reason']}"
        elif kind == "key":
            tag = "key"
            value = entry["value"] or "hidden (shown with --key-log-file)"
            body = f"{ladder13.KEY_STEPS.get(entry['name'], entry['name'])}: {value}"
        elif kind == "record":
            tag = "record"
            tls13 = entry["rfc"] == ladder13.RECORD_SECTION
            body = _tls13_record(entry) if tls13 else _tls12_record(entry)
        else:
            tag = "alert"
            reason = f" ({entry['reason']})" if entry["reason"] else ""
            body = f"{entry['direction']} {entry['level']} {entry['alert']}{reason}"
        tag = f"\x1b[{_COLOURS[tag]}m{tag:6}\x1b[0m" if self._colour else f"{tag:6}"
        rfc = f"  [{entry['rfc']}]" if entry.get("rfc") else ""
        return f"{self._peer} +{entry['ms']:.1f}ms {tag} {printable(body)}{rfc}"


def _tls12_record(entry: dict[str, Any]) -> str:
    """RFC 5246 §6.2.3.3: the AAD is seq, type, version and length; GCM sends part of the
    nonce (RFC 5288 §3), ChaCha20 none (RFC 7905 §2)."""
    aad = entry["additional_data"]
    return (
        f"first application record {entry['direction']}: {byte_count(entry['length'])}, "
        f"seq {entry['sequence']}, nonce {entry['nonce']} (explicit part "
        f"{entry['explicit_nonce'] or 'none: iv xor seq'}), AAD seq {aad[:16]} type "
        f"0x{aad[16:18]} version 0x{aad[18:22]} length 0x{aad[22:26]}, tag "
        f"{entry['tag_length']} bytes"
    )


def _tls13_record(entry: dict[str, Any]) -> str:
    """RFC 8446 §5.2: no explicit nonce, and the AAD is the record header itself (type 23,
    legacy version 0x0303, the length of the encrypted inner plaintext with its tag)."""
    aad = entry["additional_data"]
    return (
        f"first application record {entry['direction']}: {byte_count(entry['length'])} "
        f"(+1 content type byte), seq {entry['sequence']}, nonce {entry['nonce']} (iv xor "
        f"seq), AAD = record header: type 0x{aad[:2]} version 0x{aad[2:6]} length "
        f"0x{aad[6:10]}, tag {entry['tag_length']} bytes"
    )


def tracer(
    out: IO[str], *, json_lines: bool = False, reveal_secrets: bool = False
) -> Callable[[str], Observer]:
    """A factory serve() calls with each connection's peer to get its trace observer."""

    def for_peer(peer: str) -> Observer:
        return HandshakeTrace(peer, out, json_lines=json_lines, reveal_secrets=reveal_secrets)

    return for_peer
