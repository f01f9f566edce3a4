"""The TLS 1.3 rungs of the ladder that `--trace` and the inspect page draw (RFC 8446).

A 1.3 handshake reuses three 1.2 message classes (ClientHello, ServerHello, CertificateVerify)
and the ChangeCipherSpec record, with other meanings: a ServerHello may be a HelloRetryRequest,
and the ChangeCipherSpec only soothes middleboxes (App. D.4). So the ladder follows the version
the server chose (`is_tls13_server_hello`) and, from the key schedule, which keys protect each
direction (`Epochs`): everything after the ServerHello is encrypted, first under the handshake
traffic keys, then under the application traffic keys, and a student should see where each
message falls.
"""

from __future__ import annotations

from typing import Literal

from ..engine.events import Direction, KeyDerived, MessageObserved, Observation
from ..engine.wire.enums import HELLO_RETRY_REQUEST_RANDOM, TLS13, KeyUpdateRequest
from ..engine.wire.extensions import (
    ApplicationLayerProtocolNegotiation,
    CertificateAuthorities,
    KeyShareRetry,
    KeyShareServer,
    SelectedIdentity,
    SelectedVersion,
    ServerName,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
)
from ..engine.wire.messages import CertificateVerify, ChangeCipherSpec, ClientHello, ServerHello
from ..engine.wire.messages13 import (
    Certificate13,
    CertificateRequest13,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished13,
    KeyUpdate,
    NewSessionTicket13,
)
from ..engine.wire.printable import byte_count, printable
from . import iana

Keys = Literal["handshake", "application"]

# RFC 8446 sections of the messages only 1.3 has, and of the shared ones as 1.3 uses them.
SECTIONS: dict[type, str] = {
    ClientHello: "RFC 8446 §4.1.2",
    ServerHello: "RFC 8446 §4.1.3",
    EncryptedExtensions: "RFC 8446 §4.3.1",
    CertificateRequest13: "RFC 8446 §4.3.2",
    Certificate13: "RFC 8446 §4.4.2",
    CertificateVerify: "RFC 8446 §4.4.3",
    Finished13: "RFC 8446 §4.4.4",
    EndOfEarlyData: "RFC 8446 §4.5",
    NewSessionTicket13: "RFC 8446 §4.6.1",
    KeyUpdate: "RFC 8446 §4.6.3",
    ChangeCipherSpec: "RFC 8446 App. D.4",
}
HELLO_RETRY_SECTION = "RFC 8446 §4.1.4"
ALERT_SECTION = "RFC 8446 §6"
RECORD_SECTION = "RFC 8446 §5.2, §5.3"

# Names in the RFC's words: the Python classes carry a "13" where 1.2 has a class of that name.
_TITLES: dict[type, str] = {
    Certificate13: "Certificate",
    CertificateRequest13: "CertificateRequest",
    Finished13: "Finished",
    NewSessionTicket13: "NewSessionTicket",
}


def offers_tls13(hello: ClientHello) -> bool:
    versions = hello.extension(SupportedVersions)
    return versions is not None and TLS13 in versions.versions


def is_tls13_server_hello(message: object) -> bool:
    """A ServerHello (or HelloRetryRequest) that chose TLS 1.3: only 1.3 sends supported_versions
    back (RFC 8446 §4.2.1)."""
    return isinstance(message, ServerHello) and message.extension(SelectedVersion) is not None


def is_hello_retry_request(message: object) -> bool:
    return isinstance(message, ServerHello) and message.random == HELLO_RETRY_REQUEST_RANDOM


def title(message: object) -> str:
    """The message's name as RFC 8446 spells it."""
    if is_hello_retry_request(message):
        return "HelloRetryRequest"
    return _TITLES.get(type(message), type(message).__name__)


def section(message: object) -> str:
    if is_hello_retry_request(message):
        return HELLO_RETRY_SECTION
    return SECTIONS.get(type(message), "")


def code_name(code: iana.Code) -> str:
    """A registry value as the trace names it: GREASE (RFC 8701) with its value."""
    return f"GREASE {code.value:#06x}" if code.grease else code.name


def group_name(value: int) -> str:
    return code_name(iana.group(value))


def describe(message: object, direction: Direction) -> str | None:
    """A 1.3 message in one line, as trace.describe_message does for 1.2 (None: not a 1.3 form)."""
    if isinstance(message, ServerHello):
        return _server_hello(message)
    if isinstance(message, EncryptedExtensions):
        return "extensions: " + (_server_extensions(message) or "none")
    if isinstance(message, CertificateRequest13):
        schemes = message.extensions.get(SignatureAlgorithms)
        authorities = message.extensions.get(CertificateAuthorities)
        count = len(schemes.schemes) if schemes else 0
        names = len(authorities.names) if authorities else 0
        return f"{count} signature schemes; {names} CA name(s)"
    if isinstance(message, Certificate13):
        return f"{len(message.entries)} certificate(s), " + ", ".join(
            byte_count(len(entry.cert_data)) for entry in message.entries
        )
    if isinstance(message, CertificateVerify):
        scheme = iana.signature_scheme(message.signature_scheme).name
        who = "client" if direction == "received" else "server"
        return f"{scheme} signature over the transcript hash, in the {who}'s context"
    if isinstance(message, Finished13):
        size = byte_count(len(message.verify_data))
        return f"verify_data of {size} (HMAC of the transcript hash under the finished key)"
    if isinstance(message, NewSessionTicket13):
        return (
            f"ticket of {byte_count(len(message.ticket))}, lifetime {message.lifetime} s, "
            f"nonce of {byte_count(len(message.nonce))}, with ticket_age_add: the PSK for a "
            "later psk_dhe_ke handshake"
        )
    if isinstance(message, KeyUpdate):
        asked = message.request_update == KeyUpdateRequest.update_requested
        ask = "update_requested" if asked else "update_not_requested"
        return f"{ask}: the sender's next records use the next traffic secret (§7.2)"
    if isinstance(message, EndOfEarlyData):
        return "the end of the client's 0-RTT data"
    if isinstance(message, ChangeCipherSpec):
        if direction == "received":
            return "the client's middlebox-compatibility record: dropped, no keys change (§5)"
        return "for middleboxes only: no keys change here; the peer drops it"
    return None


def _server_hello(message: ServerHello) -> str:
    suite = iana.cipher_suite(message.cipher_suite).name
    session = (
        f"; session_id echoed ({byte_count(len(message.session_id))})" if message.session_id else ""
    )
    retry = message.extensions.get(KeyShareRetry)
    if retry is not None:
        return (
            f"{suite}; asks for a {group_name(retry.selected_group)} key share: the client sent "
            f"none the server takes; supported_versions TLS 1.3{session}"
        )
    share = message.extensions.get(KeyShareServer)
    parts = [suite, "supported_versions TLS 1.3"]
    if share is not None:
        entry = share.entry
        parts.append(f"key_share {group_name(entry.group)} ({byte_count(len(entry.key_exchange))})")
    identity = message.extensions.get(SelectedIdentity)
    if identity is not None:
        parts.append(f"pre_shared_key: identity {identity.index} accepted")
    return "; ".join(parts) + session


def _server_extensions(message: EncryptedExtensions) -> str:
    parts = []
    for extension in message.extensions:
        if isinstance(extension, ApplicationLayerProtocolNegotiation):
            parts.append("ALPN " + ", ".join(printable(p) for p in extension.protocols))
        elif isinstance(extension, ServerName):
            parts.append("server_name (the certificate was chosen by the SNI)")
        elif isinstance(extension, SupportedGroups):
            parts.append("supported_groups " + ", ".join(map(group_name, extension.groups)))
        else:
            parts.append(iana.extension(extension.extension_type).name)
    return ", ".join(parts)


class Epochs:
    """Which keys protect each direction, followed from the observations (RFC 8446 §7.1, §7.3):
    ours switch when the schedule derives "s hs traffic" and "s ap traffic"; the client's at
    "c hs traffic" and after its Finished."""

    def __init__(self) -> None:
        self.tls13 = False
        self._keys: dict[Direction, Keys | None] = {"sent": None, "received": None}

    def follow(self, observation: Observation) -> Keys | None:
        """Note what the observation changes; for a 1.3 handshake message, its keys."""
        if isinstance(observation, KeyDerived):
            switched = _SWITCHES.get(observation.name)
            if switched is not None:
                self._keys[switched[0]] = switched[1]
            return None
        if not isinstance(observation, MessageObserved):
            return None
        message = observation.message
        if observation.direction == "sent" and is_tls13_server_hello(message):
            self.tls13 = True
        if not self.tls13 or isinstance(message, ChangeCipherSpec):
            return None
        keys = self._keys[observation.direction]
        if observation.direction == "received" and isinstance(message, Finished13):
            self._keys["received"] = "application"
        return keys


# The key schedule of §7.1 as the RFC draws it: what each KeyDerived step is, and from what.
KEY_STEPS: dict[str, str] = {
    "early secret": "Early Secret = HKDF-Extract(0, PSK or zeros)",
    "handshake secret": 'Handshake Secret = HKDF-Extract(Derive-Secret(Early, "derived"), '
    "(EC)DHE shared secret)",
    "c hs traffic": "client_handshake_traffic_secret = Derive-Secret(Handshake, "
    '"c hs traffic", ClientHello..ServerHello)',
    "s hs traffic": "server_handshake_traffic_secret = Derive-Secret(Handshake, "
    '"s hs traffic", ClientHello..ServerHello)',
    "master secret": 'Master Secret = HKDF-Extract(Derive-Secret(Handshake, "derived"), 0)',
    "c ap traffic": "client_application_traffic_secret_0 = Derive-Secret(Master, "
    '"c ap traffic", ClientHello..server Finished)',
    "s ap traffic": "server_application_traffic_secret_0 = Derive-Secret(Master, "
    '"s ap traffic", ClientHello..server Finished)',
    "exp master": 'exporter_master_secret = Derive-Secret(Master, "exp master", '
    "ClientHello..server Finished)",
    "res master": 'resumption_master_secret = Derive-Secret(Master, "res master", '
    "ClientHello..client Finished)",
}


_SWITCHES: dict[str, tuple[Direction, Keys]] = {
    "s hs traffic": ("sent", "handshake"),
    "c hs traffic": ("received", "handshake"),
    "s ap traffic": ("sent", "application"),
}
