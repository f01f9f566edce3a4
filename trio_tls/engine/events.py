"""What a ServerConnection reports: events for its user, observations for an observer.

Events come out of `ServerConnection.next_event()` in order; NEED_DATA means "feed me more
bytes". Observations go to the optional observer callback as the handshake runs (messages as
decoded or encoded, the suite chosen, the secrets made), so a key log or a trace can be built on
top without the engine knowing about either. All are frozen: they are facts, not handles.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Literal

import attrs
from cryptography import x509

from .wire.enums import alert_name


class _Sentinel(enum.Enum):
    NEED_DATA = enum.auto()


NEED_DATA: Literal[_Sentinel.NEED_DATA] = _Sentinel.NEED_DATA
NeedData = Literal[_Sentinel.NEED_DATA]


@attrs.frozen
class ConnectionInfo:
    """The negotiated parameters of one connection, as a handler sees them on `stream.info`.

    version is "TLSv1.2" or "TLSv1.3"; the other names are the IANA registries': cipher_suite e.g.
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", group e.g. "x25519", signature_scheme e.g.
    "rsa_pss_rsae_sha256". sni and alpn are None when the client sent none or none was chosen.
    """

    version: str
    cipher_suite: str
    sni: str | None
    alpn: str | None
    resumed: bool
    extended_master_secret: bool
    group: str | None  # None when resumed: no key exchange took place
    signature_scheme: str | None
    # The client as serve() names it, "host:port" ("[host]:port" for IPv6); None when the
    # TLSStream was made without one (in a test, say).
    peer: str | None = None
    # The client's verified certificate chain, leaf first, when client authentication is on
    # and the client sent one (on a resumed session: the chain verified when it was made).
    # Not in the repr: cryptography's raises for a subject it cannot decode.
    client_certificate: tuple[x509.Certificate, ...] | None = attrs.field(default=None, repr=False)
    # Its leaf's subject as it may be shown in a log, a page or a terminal: escaped, or the
    # hex of its DER when it cannot be decoded (clientauth.subject_text).
    client_subject: str | None = None


@attrs.frozen
class HandshakeComplete:
    info: ConnectionInfo


@attrs.frozen
class ApplicationData:
    data: bytes


@attrs.frozen
class AlertReceived:
    level: int
    description: int

    @property
    def name(self) -> str:
        return alert_name(self.description)


@attrs.frozen
class ConnectionClosed:
    """The peer's side ended: `close_notify` is False when the transport closed without one."""

    close_notify: bool


@attrs.frozen
class SignatureNeeded:
    """The handshake waits for its ServerKeyExchange signature: only from a connection made
    with `defer_signatures=True`.

    The signature is most of a full handshake's CPU (an RSA-2048 private-key operation), and
    `cryptography` releases the GIL while it signs, so a server can run `sign()` on a worker
    thread and keep its event loop, and its second core, busy meanwhile. `sign()` touches no
    connection state; hand its result to `ServerConnection.complete_signature()`. Until then
    the connection processes nothing more.
    """

    sign: Callable[[], bytes] = attrs.field(repr=False)


Event = HandshakeComplete | ApplicationData | AlertReceived | ConnectionClosed | SignatureNeeded


Direction = Literal["received", "sent"]


@attrs.frozen
class MessageObserved:
    """A handshake message, or a ChangeCipherSpec, as decoded from or encoded for the wire
    (`encoded`: its bytes, a handshake message's 4-byte header included)."""

    direction: Direction
    message: object
    encoded: bytes = attrs.field(default=b"", repr=False)


@attrs.frozen
class Decision:
    """What the server chose, and why: `topic` (cipher suite, group, ...), the `choice`, the
    `reason` in words, and the `rfc` section that governs it. For traces and the inspect page:
    the engine reports its reasoning as data and never formats it."""

    topic: str
    choice: str
    reason: str
    rfc: str


@attrs.frozen
class KeyDerived:
    """A step of the key schedule (RFC 5246 §8.1, §6.3; RFC 7627 §4): its name, the section,
    and the value, which only a trace with key logging on may show."""

    name: str
    rfc: str
    value: bytes | None = attrs.field(repr=False)


@attrs.frozen
class RecordObserved:
    """The protection of the first application data record each way (RFC 5246 §6.2.3.3):
    the sequence number, the nonce (RFC 5288 §3 salt ‖ explicit, or RFC 7905 §2 iv ⊕ seq), the
    explicit part sent in clear (b"" for ChaCha20), the additional data, the tag length."""

    direction: Direction
    length: int
    sequence: int
    nonce: bytes
    explicit_nonce: bytes
    additional_data: bytes
    tag_length: int


@attrs.frozen
class AlertObserved:
    """An alert sent or received, with the rule that caused it when we sent it."""

    direction: Direction
    level: int
    description: int
    reason: str = ""

    @property
    def name(self) -> str:
        return alert_name(self.description)


@attrs.frozen
class SecretsEstablished:
    """A secret a key log records, tied to its client random, under its NSS key log label:
    CLIENT_RANDOM for a TLS 1.2 master secret; in TLS 1.3 one line per traffic secret
    (CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET, CLIENT_TRAFFIC_SECRET_0,
    SERVER_TRAFFIC_SECRET_0) and EXPORTER_SECRET, since 1.3 has no single master secret that
    decrypts everything."""

    client_random: bytes
    master_secret: bytes = attrs.field(repr=False)
    label: str = "CLIENT_RANDOM"


Observation = (
    MessageObserved | Decision | KeyDerived | RecordObserved | AlertObserved | SecretsEstablished
)
Observer = Callable[[Observation], None]
